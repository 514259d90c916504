"""Publishing: defect events, line status and stats over MQTT."""

from inspector.publishing.mqtt import MqttPublisher
from inspector.publishing.topics import (
    DEFECTS_WILDCARD,
    defects_topic,
    stats_topic,
    status_topic,
)

__all__ = [
    "DEFECTS_WILDCARD",
    "MqttPublisher",
    "defects_topic",
    "stats_topic",
    "status_topic",
]
