"""Defect events to MQTT at QoS 1, a retained status with a Last Will, stats at QoS 0.

paho runs its network loop in its own thread; the pipeline only queues
messages, so a slow or absent broker never stalls inspection. Events that the
broker has not acknowledged yet are counted as pending, and a finishing run
waits for them with :meth:`MqttPublisher.wait_for_acks`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from inspector.errors import BrokerError, ConfigError
from inspector.publishing.acks import AckListener, AckTracker
from inspector.publishing.connection import (
    Handshake,
    Protocol,
    build_client,
    default_client_id,
    is_permanent,
    session_options,
    wait_before_retry,
)
from inspector.publishing.settings import MqttSettings
from inspector.publishing.topics import (
    camera_status_topic,
    defects_topic,
    snapshot_topic,
    stats_topic,
    status_topic,
)

ONLINE = "online"
OFFLINE = "offline"

_MAX_INFLIGHT = 100  # paho's default of 20 would throttle bursts from a many-tile frame
_RETRY_MAX_S = 30.0  # back-off ceiling while the broker is down at start
_CLOSE_ACK_TIMEOUT_S = 2.0  # a stop must not hang on a dead broker; the Will covers that case
_UNSUPPORTED_PROTOCOL = 0x84  # MQTT 5 CONNACK; paho maps a 3.1.1 broker's rc 1 to it as well

log = structlog.get_logger(__name__)


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
        self._handshake = Handshake()
        self._cond = threading.Condition()
        self._connected = False
        self._ever_connected = False
        self._closing = False
        self._acks = AckTracker(on_ack)
        self._log = log.bind(host=settings.host, port=settings.port, line=line_id)
        self._down_reason: str | None = None  # why the broker is not connected yet, at start
        self._connector: threading.Thread | None = None
        self._stop_trying = threading.Event()
        # Retained camera states reported before the first connection: sent once it is up.
        self._unsent_status: dict[str, bytes] = {}

    def connect(self) -> None:
        """Connect and wait for the broker's CONNACK, or raise :class:`BrokerError` (the broker
        is down or slow) or :class:`ConfigError` (refused credentials, an unverified
        certificate: retrying will not help).

        Once connected, paho reconnects by itself after a drop; a second call does nothing.
        """
        if self._client is not None:
            return
        handshake = self._negotiate()
        if not handshake.ok:
            raise self._error(handshake)

    def connect_in_background(self, on_connected: Callable[[], object]) -> None:
        """Connect now if the broker answers, else keep trying on a thread until it does.

        ``on_connected`` runs once, on the calling or the retrying thread, after the first
        CONNACK. A permanent refusal at the first try still raises :class:`ConfigError`: a
        line PC that boots before its broker must inspect, one with a wrong password must not
        pretend to.
        """
        handshake = self._negotiate()
        if handshake.ok:
            on_connected()
            return
        if handshake.permanent:
            raise self._error(handshake)
        self._down_reason = handshake.reason
        self._log.warning(
            "mqtt broker down at start, retrying; events wait on disk", reason=handshake.reason
        )
        self._connector = threading.Thread(
            target=self._keep_trying, args=(on_connected,), name="mqtt-connect", daemon=True
        )
        self._connector.start()

    def _keep_trying(self, on_connected: Callable[[], object]) -> None:
        delay_s = 1.0
        host, port = self._settings.host, self._settings.port
        while True:
            wait_before_retry(host, port, delay_s, lambda: not self._stop_trying.is_set())
            if self._stop_trying.is_set():
                return
            handshake = self._negotiate()
            if handshake.ok:
                with self._cond:
                    unsent, self._unsent_status = self._unsent_status, {}
                    self._down_reason = None
                for topic, payload in unsent.items():
                    self._send(self._require_client(), topic, payload, qos=1, retain=True)
                on_connected()
                return
            self._down_reason = handshake.reason
            if handshake.permanent:
                self._log.error("mqtt broker refuses this client", reason=handshake.reason)
            delay_s = min(2 * delay_s, _RETRY_MAX_S)

    def _negotiate(self) -> Handshake:
        """One connection attempt, with MQTT 3.1.1 after a refused 5 when the protocol is auto."""
        wanted = self._settings.protocol
        first: Protocol = "3.1.1" if wanted == "3.1.1" else "5"
        handshake = self._attempt(first)
        if not handshake.ok and wanted == "auto" and self._refused_v5(handshake):
            self._log.info("mqtt broker refused MQTT 5, trying 3.1.1", reason=handshake.reason)
            handshake = self._attempt("3.1.1")
        return handshake

    def _error(self, handshake: Handshake) -> BrokerError | ConfigError:
        message = self._failure(handshake.reason)
        if handshake.permanent:
            return ConfigError(f"{message} (check mqtt.username, mqtt.password and mqtt.tls)")
        return BrokerError(message)

    @staticmethod
    def _refused_v5(handshake: Handshake) -> bool:
        # A 3.1.1-only broker either answers rc 1 ("unacceptable protocol
        # version") or just closes the socket before any CONNACK.
        return handshake.dropped or handshake.code == _UNSUPPORTED_PROTOCOL

    def _failure(self, reason: str) -> str:
        where = f"{self._settings.host}:{self._settings.port}"
        return f"cannot connect to MQTT broker {where}: {reason}"

    def _attempt(self, protocol: Protocol) -> Handshake:
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
        handshake = Handshake()
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
            handshake.settle(False, str(exc) or type(exc).__name__, permanent=is_permanent(exc))
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
                "mqtt connection lost, reconnecting",
                reason=str(reason_code),
                pending=self._acks.pending,
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
        self._acks.sent(info.mid, event_id)
        return info

    def _on_publish(
        self, client: mqtt.Client, _: Any, mid: int, reason_code: ReasonCode, props: Any
    ) -> None:
        if reason_code.is_failure:  # MQTT 5 only: acked, but the broker dropped it
            self._log.warning("mqtt broker rejected a message", mid=mid, reason=str(reason_code))
        self._acks.acked(mid, rejected=reason_code.is_failure)

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

    def publish_payload(self, event_id: str, payload: bytes, topic: str | None = None) -> int:
        """Queue one already-serialised event (from the outbox) on ``topic`` (default: the
        defects topic), QoS 1; tracked until acked."""
        info = self._send(
            self._require_client(), topic or self._defects_topic, payload, qos=1, retain=False,
            event_id=event_id,
        )  # fmt: skip
        return info.mid

    def publish_stats(self, stats: Mapping[str, Any]) -> None:
        """Publish periodic figures at QoS 0: a lost sample is replaced by the next."""
        payload = json.dumps(stats, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        if self.connected:  # QoS 0 while down would only be dropped by paho anyway
            self._send(self._require_client(), self._stats_topic, payload.encode(), qos=0,
                       retain=False)  # fmt: skip

    def publish_camera_status(self, camera: str, status: Mapping[str, Any]) -> None:
        """Retained QoS 1, so a dashboard that connects later still sees each camera's state."""
        payload = json.dumps(status, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        topic = camera_status_topic(self._line_id, camera)
        with self._cond:
            if self._client is None or self._down_reason is not None:
                self._unsent_status[topic] = payload.encode()  # the latest state per camera
                return
        self._send(self._require_client(), topic, payload.encode(), qos=1, retain=True)

    def publish_snapshot(self, camera: str, jpeg: bytes) -> None:
        """Retained QoS 0 (Frigate's convention): the newest picture replaces the last one, and
        one lost while the broker is down is not worth keeping."""
        if self.connected:
            topic = snapshot_topic(self._line_id, camera)
            self._send(self._require_client(), topic, jpeg, qos=0, retain=True)

    def wait_for_acks(self, timeout: float) -> int:
        """Block until every event is acknowledged or ``timeout`` passes; returns those pending."""
        return self._acks.wait(timeout)

    @property
    def protocol(self) -> Protocol | None:
        """``"5"`` or ``"3.1.1"``: what the broker accepted; None before :meth:`connect`."""
        return self._protocol

    @property
    def down_reason(self) -> str | None:
        """Why the broker has not been reached yet (a start without it); None once it has."""
        return self._down_reason

    @property
    def connected(self) -> bool:
        with self._cond:
            return self._connected

    @property
    def acks(self) -> AckTracker:
        """The events published, acknowledged, rejected and still pending."""
        return self._acks

    def close(self) -> None:
        """Leave a retained ``offline``, disconnect cleanly (no Will) and stop paho's thread.

        Events still pending are dropped: call :meth:`wait_for_acks` first.
        """
        with self._cond:
            if self._closing:
                return
            self._closing = True
        self._stop_trying.set()
        if self._connector is not None:
            self._connector.join(self._settings.connect_timeout_s + 1)
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
        self._log.info("mqtt disconnected", protocol=self._protocol, pending=self._acks.pending)

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
