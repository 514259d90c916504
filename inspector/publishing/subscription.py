"""A subscriber that (re)subscribes on every connect and queues what arrives.

Used by ``inspector watch`` to print a line's events and by ``inspector replay``
to count the events that actually reached the broker.
"""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from inspector.errors import BrokerError
from inspector.publishing.connection import Protocol, build_client
from inspector.publishing.settings import MqttSettings


class Subscription:
    def __init__(
        self,
        settings: MqttSettings,
        topic: str,
        client_prefix: str = "inspector-watch",
        on_notice: Callable[[str], None] | None = None,
    ) -> None:
        self.settings, self.topic = settings, topic
        # "auto" means 3.1.1 here: every broker speaks it, and a reader needs nothing of 5.
        self.protocol: Protocol = "5" if settings.protocol == "5" else "3.1.1"
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.ready = threading.Event()
        self.error: str | None = None
        self.stopping = False
        self._notice = on_notice or (lambda _message: None)
        client_id = f"{client_prefix}-{uuid.uuid4().hex[:12]}"
        self.client = build_client(settings, client_id, self.protocol, persistent_session=False)
        self.client.suppress_exceptions = True
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = lambda _c, _u, msg: self.messages.put(msg)

    def _fail(self, reason: str) -> None:
        if not self.ready.is_set():
            self.error = reason
            self.ready.set()

    def _on_connect(self, client: mqtt.Client, _: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        if rc.is_failure:
            self._fail(str(rc))
        else:
            client.subscribe(self.topic, qos=1)

    def _on_subscribe(
        self, _c: mqtt.Client, _u: Any, _mid: int, codes: list[ReasonCode], _p: Any
    ) -> None:
        failed = [str(code) for code in codes if code.is_failure]
        if failed:
            self._fail(f"subscription to {self.topic} refused: {', '.join(failed)}")
        elif self.ready.is_set():
            self._notice("reconnected")
        self.ready.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        if self.ready.is_set() and self.error is None and not self.stopping:
            self._notice(f"connection lost ({rc}), reconnecting")
        self._fail(f"connection closed: {rc}")

    def start(self) -> None:
        """Connect and wait for the SUBACK, or raise :class:`BrokerError`."""
        s = self.settings
        try:
            self.client.connect(s.host, s.port, keepalive=s.keepalive_s)
        except (OSError, ValueError) as exc:
            raise BrokerError(f"cannot connect to MQTT broker {s.host}:{s.port}: {exc}") from None
        self.client.loop_start()
        if not self.ready.wait(s.connect_timeout_s):
            self.error = f"no CONNACK/SUBACK within {s.connect_timeout_s:g} s"
        if self.error is not None:
            self.stop()
            raise BrokerError(f"cannot connect to MQTT broker {s.host}:{s.port}: {self.error}")

    def stop(self) -> None:
        self.stopping = True
        self.client.disconnect()
        self.client.loop_stop()
