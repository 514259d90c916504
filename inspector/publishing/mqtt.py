"""Defect events to MQTT at QoS 1, a retained status with a Last Will, stats at QoS 0.

paho runs its network loop in its own thread; the pipeline only queues
messages, so a slow or absent broker never stalls inspection. Events that the
broker has not acknowledged yet are counted as pending, and a finishing run
waits for them with :meth:`MqttPublisher.wait_for_acks`.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from inspector.config import MqttSettings
from inspector.errors import BrokerError, ConfigError
from inspector.publishing.topics import (
    camera_status_topic,
    defects_topic,
    stats_topic,
    status_topic,
)

Protocol = Literal["5", "3.1.1"]

ONLINE = "online"
OFFLINE = "offline"

_MAX_INFLIGHT = 100  # paho's default of 20 would throttle bursts from a many-tile frame
_SESSION_EXPIRY_S = 3600  # keep the broker-side session across outages up to an hour
_CLOSE_ACK_TIMEOUT_S = 2.0  # a stop must not hang on a dead broker; the Will covers that case
_UNSUPPORTED_PROTOCOL = 0x84  # MQTT 5 CONNACK; paho maps a 3.1.1 broker's rc 1 to it as well

log = structlog.get_logger(__name__)

# Called on paho's network thread with (event_id, time.monotonic_ns() of the ack); keep it short.
AckListener = Callable[[str, int], None]


def default_client_id(line_id: str) -> str:
    # Unique per process, so two daemons (or a crashed one's stale session) on
    # one broker never take over each other's connection.
    return f"inspector-{line_id}-{socket.gethostname()}-{os.getpid()}"


def build_client(
    settings: MqttSettings, client_id: str, protocol: Protocol, *, persistent_session: bool
) -> mqtt.Client:
    """A paho client with the configured credentials, TLS and reconnect back-off."""
    v5 = protocol == "5"
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        # paho rejects clean_session for MQTT 5, whose clean_start goes to connect().
        clean_session=None if v5 else not persistent_session,
        protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
    )
    if settings.username is not None:
        password = settings.password.get_secret_value() if settings.password else None
        client.username_pw_set(settings.username, password)
    if settings.tls is not None:
        tls = settings.tls
        try:
            client.tls_set(
                ca_certs=str(tls.ca_file) if tls.ca_file else None,
                certfile=str(tls.cert_file) if tls.cert_file else None,
                keyfile=str(tls.key_file) if tls.key_file else None,
            )
        except (OSError, ValueError) as exc:
            raise ConfigError(f"mqtt.tls: cannot load TLS files: {exc}") from None
        if tls.insecure:
            client.tls_insecure_set(True)
    client.connect_timeout = settings.connect_timeout_s
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client


def session_options(protocol: Protocol) -> dict[str, Any]:
    """connect() arguments that keep the broker session (and QoS 1 state) over a reconnect."""
    if protocol != "5":
        return {}  # 3.1.1 takes clean_session=False in the constructor instead
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = _SESSION_EXPIRY_S
    return {"clean_start": False, "properties": properties}


@dataclass
class _Handshake:
    """The outcome of one connection attempt, settled by the first callback that knows it."""

    done: threading.Event = field(default_factory=threading.Event)
    ok: bool = False
    reason: str = "no CONNACK"
    code: int | None = None
    dropped: bool = False

    def settle(self, ok: bool, reason: str, code: int | None = None, dropped: bool = False) -> None:
        if not self.done.is_set():
            self.ok, self.reason, self.code, self.dropped = ok, reason, code, dropped
            self.done.set()


class MqttPublisher:
    """Publishes one line's defect events, status and stats to an MQTT broker."""

    def __init__(
        self,
        settings: MqttSettings,
        line_id: str,
        client_id: str | None = None,
        on_ack: AckListener | None = None,
    ) -> None:
        self._settings = settings
        self._client_id = client_id or settings.client_id or default_client_id(line_id)
        self._defects_topic = defects_topic(line_id)
        self._status_topic = status_topic(line_id)
        self._stats_topic = stats_topic(line_id)
        self._line_id = line_id
        self._client: mqtt.Client | None = None
        self._protocol: Protocol | None = None
        self._handshake = _Handshake()
        self._cond = threading.Condition()
        self._connected = False
        self._ever_connected = False
        self._closing = False
        self._published = 0
        self._acknowledged = 0
        self._rejected = 0
        self._on_ack = on_ack
        self._pending: dict[int, str] = {}  # mid -> event_id, events not yet acknowledged
        # on_publish can run on paho's thread before publish() has returned the
        # mid to us; such early acks (mid -> when) wait here until _send() claims them.
        self._early_acks: dict[int, int] = {}
        # Status and stats messages in flight: their acks must not be taken for early event
        # acks, or a recycled mid would later mark an unsent event as delivered.
        self._untracked: set[int] = set()
        self._log = log.bind(host=settings.host, port=settings.port, line=line_id)

    def connect(self) -> None:
        """Connect and wait for the broker's CONNACK, or raise :class:`BrokerError`.

        Once connected, paho reconnects by itself after a drop; a second call does nothing.
        """
        if self._client is not None:
            return
        wanted = self._settings.protocol
        first: Protocol = "3.1.1" if wanted == "3.1.1" else "5"
        handshake = self._attempt(first)
        if not handshake.ok and wanted == "auto" and self._refused_v5(handshake):
            self._log.info("mqtt broker refused MQTT 5, trying 3.1.1", reason=handshake.reason)
            handshake = self._attempt("3.1.1")
        if not handshake.ok:
            raise BrokerError(self._failure(handshake.reason))

    @staticmethod
    def _refused_v5(handshake: _Handshake) -> bool:
        # A 3.1.1-only broker either answers rc 1 ("unacceptable protocol
        # version") or just closes the socket before any CONNACK.
        return handshake.dropped or handshake.code == _UNSUPPORTED_PROTOCOL

    def _failure(self, reason: str) -> str:
        where = f"{self._settings.host}:{self._settings.port}"
        return f"cannot connect to MQTT broker {where}: {reason}"

    def _attempt(self, protocol: Protocol) -> _Handshake:
        client = build_client(self._settings, self._client_id, protocol, persistent_session=True)
        client.will_set(self._status_topic, OFFLINE, qos=1, retain=True)
        client.max_inflight_messages_set(_MAX_INFLIGHT)
        client.max_queued_messages_set(0)  # unbounded: never refuse (or block) the pipeline
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_connect_fail = self._on_connect_fail
        # An exception escaping a callback would kill paho's network thread and
        # with it every reconnect; paho logs it instead with this set.
        client.suppress_exceptions = True
        handshake = _Handshake()
        with self._cond:
            self._client, self._protocol, self._handshake = client, protocol, handshake
        timeout = self._settings.connect_timeout_s
        try:
            client.connect(
                self._settings.host,
                self._settings.port,
                keepalive=self._settings.keepalive_s,
                **session_options(protocol),
            )
        except (OSError, ValueError) as exc:  # refused, unresolvable, TLS handshake, timeout
            handshake.settle(False, str(exc) or type(exc).__name__)
            with self._cond:
                self._client, self._protocol = None, None
            return handshake
        client.loop_start()
        if not handshake.done.wait(timeout):
            handshake.settle(False, f"no CONNACK within {timeout:g} s")
        if not handshake.ok:
            self._discard(client)
            with self._cond:
                self._client, self._protocol = None, None
        return handshake

    @staticmethod
    def _discard(client: mqtt.Client) -> None:
        # disconnect() first: it moves paho's state to DISCONNECTING, which is
        # what lets loop_stop() end the reconnect loop instead of retrying.
        client.disconnect()
        client.loop_stop()

    def _on_connect(
        self,
        client: mqtt.Client,
        _: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        props: Any,
    ) -> None:
        if client is not self._client:
            return
        if reason_code.is_failure:
            self._log.warning("mqtt connection refused", reason=str(reason_code))
            self._handshake.settle(False, str(reason_code), code=reason_code.value)
            return
        with self._cond:
            again, self._ever_connected = self._ever_connected, True
            self._connected = True
            closing = self._closing
        self._log.info(
            "mqtt reconnected" if again else "mqtt connected",
            protocol=self._protocol,
            client_id=self._client_id,
            session_present=flags.session_present,
        )
        if not closing:
            self._send(client, self._status_topic, ONLINE, qos=1, retain=True)
        self._handshake.settle(True, "connected")

    def _on_disconnect(
        self, client: mqtt.Client, _: Any, flags: Any, reason_code: ReasonCode, props: Any
    ) -> None:
        if client is not self._client:
            return
        with self._cond:
            was_connected, self._connected = self._connected, False
            closing = self._closing
        self._handshake.settle(False, f"connection closed: {reason_code}", dropped=True)
        if was_connected and not closing:
            self._log.warning(
                "mqtt connection lost, reconnecting", reason=str(reason_code), pending=self.pending
            )

    def _on_connect_fail(self, client: mqtt.Client, _: Any) -> None:
        if client is self._client:
            self._log.warning("mqtt reconnect failed, retrying")

    def _send(
        self,
        client: mqtt.Client,
        topic: str,
        payload: str | bytes,
        qos: int,
        retain: bool,
        event_id: str | None = None,
    ) -> mqtt.MQTTMessageInfo:
        """Publish one message; events (those with an ``event_id``) are tracked until acked."""
        info = client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise BrokerError(f"cannot queue MQTT message on {topic}: {mqtt.error_string(info.rc)}")
        with self._cond:
            acked_ns = self._early_acks.pop(info.mid, None)
            if event_id is None:
                if acked_ns is None:
                    self._untracked.add(info.mid)
                return info
            self._published += 1
            if acked_ns is None:
                self._pending[info.mid] = event_id
                return info
            self._acknowledged += 1
            self._cond.notify_all()
        if self._on_ack is not None:
            self._on_ack(event_id, acked_ns)
        return info

    def _on_publish(
        self, client: mqtt.Client, _: Any, mid: int, reason_code: ReasonCode, props: Any
    ) -> None:
        acked_ns = time.monotonic_ns()
        if reason_code.is_failure:  # MQTT 5 only: acked, but the broker dropped it
            self._log.warning("mqtt broker rejected a message", mid=mid, reason=str(reason_code))
        with self._cond:
            event_id = self._pending.pop(mid, None)
            if event_id is None:
                if mid in self._untracked:
                    self._untracked.discard(mid)
                else:
                    self._early_acks[mid] = acked_ns
                return
            self._acknowledged += 1
            self._rejected += int(reason_code.is_failure)
            self._cond.notify_all()
        if self._on_ack is not None:
            self._on_ack(event_id, acked_ns)

    def _require_client(self) -> mqtt.Client:
        if self._client is None:
            raise RuntimeError("MqttPublisher.connect() has not been called")
        return self._client

    def publish_event(self, event: Mapping[str, Any]) -> int:
        """Queue one defect event (QoS 1, not retained); returns its MQTT message id.

        A message published while the connection is down is kept by paho and
        sent after the reconnect. NaN or infinite numbers raise ValueError:
        they are not JSON, and consumers would reject the event.
        """
        payload = json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return self.publish_payload(str(event["event_id"]), payload.encode())

    def publish_payload(self, event_id: str, payload: bytes) -> int:
        """Queue one already-serialised event (from the outbox); tracked until acked."""
        info = self._send(
            self._require_client(), self._defects_topic, payload, qos=1, retain=False,
            event_id=event_id,
        )  # fmt: skip
        return info.mid

    def publish_stats(self, stats: Mapping[str, Any]) -> None:
        """Publish periodic figures at QoS 0: a lost sample is replaced by the next."""
        payload = json.dumps(stats, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        client = self._require_client()
        if self.connected:  # QoS 0 while down would only be dropped by paho anyway
            self._send(client, self._stats_topic, payload.encode(), qos=0, retain=False)

    def publish_camera_status(self, camera: str, status: Mapping[str, Any]) -> None:
        """Retained QoS 1, so a dashboard that connects later still sees each camera's state."""
        payload = json.dumps(status, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        topic = camera_status_topic(self._line_id, camera)
        self._send(self._require_client(), topic, payload.encode(), qos=1, retain=True)

    def wait_for_acks(self, timeout: float) -> int:
        """Block until every event is acknowledged or ``timeout`` passes; returns those pending."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return len(self._pending)

    @property
    def protocol(self) -> Protocol | None:
        """``"5"`` or ``"3.1.1"``: what the broker accepted; None before :meth:`connect`."""
        return self._protocol

    @property
    def connected(self) -> bool:
        with self._cond:
            return self._connected

    @property
    def published(self) -> int:
        with self._cond:
            return self._published

    @property
    def acknowledged(self) -> int:
        with self._cond:
            return self._acknowledged

    @property
    def rejected(self) -> int:
        """Events an MQTT 5 broker acknowledged with an error reason code (counted as acked too)."""
        with self._cond:
            return self._rejected

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    def close(self) -> None:
        """Leave a retained ``offline``, disconnect cleanly (no Will) and stop paho's thread.

        Events still pending are dropped: call :meth:`wait_for_acks` first.
        """
        with self._cond:
            if self._closing:
                return
            self._closing = True
        client = self._client
        if client is None:
            return
        if self.connected:
            info = self._send(client, self._status_topic, OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(_CLOSE_ACK_TIMEOUT_S)
                acked = info.is_published()
            except (RuntimeError, ValueError):  # paho raises once the connection has gone
                acked = False
            if not acked:
                self._log.warning("mqtt offline status not acknowledged before disconnect")
        self._discard(client)
        self._log.info("mqtt disconnected", protocol=self._protocol, pending=self.pending)

    def __enter__(self) -> MqttPublisher:
        if self._client is None:
            self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
