"""Publishing: defect events, line status and stats over MQTT.

Import from the modules themselves (``inspector.publishing.mqtt``, ``.topics``): this
package imports nothing, so ``inspector watch --help`` does not load paho and pydantic.
"""
