"""The ``sparkplug`` sink: the line as a Sparkplug B 3.0 edge node, each camera a device.

One publisher thread owns every metric and the sequence number, so ``seq`` runs 0-255 in the
order the broker gets the messages; the pipeline's calls (and the verdicts, from their own
thread) only hand over a few numbers and return. paho's callbacks do the same, except the
will: its ``bdSeq`` must be set before paho's loop reconnects, so ``on_disconnect`` sets it.

Births carry every metric; DDATA only what changed since the last message of that device
(under load, several updates already queued become one DDATA). A clean close sends DDEATHs
and NDEATH; a daemon that dies leaves the NDEATH will with the broker.
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import paho.mqtt.client as mqtt
import structlog

from inspector.errors import ConfigError
from inspector.publishing.connection import Protocol as MqttProtocol
from inspector.publishing.connection import build_client
from inspector.publishing.settings import MqttSettings
from inspector.sections import StateFolder
from inspector.types.results import FrameResult, SinkHealth, SinkMetric, Verdict
from inspector_sparkplug.payload import DataType, Metric, decode_commands, encode_payload
from inspector_sparkplug.settings import SparkplugSettings, checked_id
from inspector_sparkplug.state import Device, keep_bdseq, next_bdseq, now_ms

NAMESPACE = "spBv1.0"
BDSEQ = "bdSeq"
REBIRTH = "Node Control/Rebirth"
_COUNTS = {"ok": "Verdict/OkCount", "nok": "Verdict/NokCount", "late": "Verdict/LateCount"}
_BATCH = 256  # queued updates folded into one round of DDATA
_CLOSE_S = 5.0  # a stop must not hang on a dead broker: the will covers that case
_NDEATH_ACK_S = 2.0
# A camera that reconnects stays born (no DDEATH flapping); a recording that ended is still
# being inspected, its verdicts follow: its DDEATH comes with the close.
_DOWN_STATES = {"failed"}

log = structlog.get_logger(__name__)


class _Card(Protocol):
    @property
    def name(self) -> str: ...


class OpenContext(Protocol):
    """What :meth:`SparkplugSink.open` reads of the daemon's sink context."""

    @property
    def line_id(self) -> str: ...
    @property
    def camera_ids(self) -> Sequence[str]: ...
    @property
    def card(self) -> _Card: ...
    @property
    def broker(self) -> MqttSettings: ...
    @property
    def state(self) -> StateFolder | None: ...


class SparkplugSink:
    name = "sparkplug"
    lossless = False  # SCADA shows the latest values; inspection never waits for it

    def __init__(
        self,
        settings: SparkplugSettings,
        line_id: str,
        camera_ids: Sequence[str],
        model_name: str,
        broker: MqttSettings,
        bdseq_file: Path | None = None,
        verdicts_from_frames: bool = False,
    ) -> None:
        """Connects in the background (paho retries a broker that is down) and births the
        node and its devices on every connection. ``verdicts_from_frames``: count each
        inspected frame as a part, for a line whose pipeline decides no verdicts."""
        self.group = settings.group_id
        self.edge = settings.edge_node_id or line_id
        for label, value in (("edge_node_id (the line id)", self.edge), *_cameras(camera_ids)):
            try:
                checked_id(value)
            except ValueError as exc:
                raise ConfigError(f"sparkplug.{label}: {exc}") from None
        self._model_name = model_name
        self._devices = {camera: Device.new(model_name) for camera in camera_ids}
        self._inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._inbox_size = settings.inbox_size
        self._bdseq_file = bdseq_file
        self._verdicts_from_frames = verdicts_from_frames
        self._drop_lock = threading.Lock()
        self._bdseq_lock = threading.Lock()
        self._bdseq = next_bdseq(bdseq_file)
        self._seq = 0
        self._born = False
        self._connected = False
        self._closing = False
        self._down_reason = "not connected yet"
        self.published = self.dropped = self.rebirths = self.bad_commands = self.errors = 0
        self.client_id = (
            f"{broker.client_id}-sparkplug"
            if broker.client_id
            else f"inspector-sparkplug-{self.edge}-{socket.gethostname()}-{os.getpid()}"
        )
        # Sparkplug asks for a clean session: a host must never get a stale session's commands.
        protocol: MqttProtocol = "5" if broker.protocol == "5" else "3.1.1"
        self._client = build_client(broker, self.client_id, protocol, persistent_session=False)
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._set_will()
        self._worker = threading.Thread(target=self._run, name="sparkplug", daemon=True)
        self._worker.start()
        options: dict[str, Any] = {"clean_start": True} if protocol == "5" else {}
        self._client.connect_async(broker.host, broker.port, broker.keepalive_s, **options)
        self._client.loop_start()

    @classmethod
    def open(cls, settings: SparkplugSettings, context: OpenContext) -> SparkplugSink:
        state = getattr(context, "state", None)
        bdseq_file = state.place("sparkplug-bdseq") if isinstance(state, StateFolder) else None
        return cls(
            settings,
            context.line_id,
            tuple(context.camera_ids),
            context.card.name,
            context.broker,
            bdseq_file,
            verdicts_from_frames=getattr(context, "verdicts", True) is False,
        )

    def topic(self, kind: str, device: str | None = None) -> str:
        base = f"{NAMESPACE}/{self.group}/{kind}/{self.edge}"
        return base if device is None else f"{base}/{device}"

    # -- what the pipeline hands over (any thread; never waits) ----------------------------

    def _hand(self, kind: str, item: Any) -> None:
        if kind not in ("birth", "down", "rebirth", "close") and (
            self._closing or self._inbox.qsize() >= self._inbox_size
        ):
            with self._drop_lock:  # two threads hand over: the count must not lose any
                self.dropped += 1
            return
        self._inbox.put((kind, item))

    def verdict(self, verdict: Verdict) -> None:
        model = verdict.get("model")
        model_name = model.get("name") if isinstance(model, Mapping) else None
        self._hand("verdict", (str(verdict["camera"]), str(verdict["verdict"]), model_name))

    def frame_result(self, result: FrameResult) -> None:
        # Two numbers, not the result: the queue must never hold a frame's pixels.
        camera = result.frame.camera_id
        self._hand("frame", (camera, int(result.frame.frame_id)))
        if self._verdicts_from_frames:
            self._hand("verdict", (camera, result.verdict, None))

    def camera_status(self, camera: str, status: Mapping[str, Any]) -> None:
        self._hand("status", (camera, str(status.get("state"))))

    def stats(self, stats: Mapping[str, Any]) -> None:
        line_p99 = _p99(stats)
        cameras = stats.get("cameras")
        per_camera = (
            {str(c): _p99(v) for c, v in cameras.items() if isinstance(v, Mapping)}
            if isinstance(cameras, Mapping)
            else {}
        )
        self._hand("stats", (line_p99, per_camera))

    # -- paho's callbacks (its loop thread) -----------------------------------------------

    def _set_will(self) -> None:
        at = now_ms()
        death = encode_payload(at, [Metric(BDSEQ, DataType.UINT64, self._bdseq, at)], None)
        self._client.will_set(self.topic("NDEATH"), death, qos=1, retain=False)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._down_reason = f"refused: {reason}"
            return
        with self._bdseq_lock:
            bdseq = self._bdseq
            keep_bdseq(self._bdseq_file, bdseq)
        client.subscribe(self.topic("NCMD"), qos=1)  # before NBIRTH, as the specification asks
        self._connected = True
        self._hand("birth", bdseq)

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        self._down_reason = "broker unreachable"

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self._connected = False
        self._down_reason = f"disconnected: {reason}"
        self._hand("down", None)
        if not self._closing:
            # A new session is a new bdSeq, and paho's next CONNECT carries this will.
            with self._bdseq_lock:
                self._bdseq = (self._bdseq + 1) % 256
                self._set_will()

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            commands = decode_commands(bytes(msg.payload))
        except ValueError:
            self.bad_commands += 1
            return
        if any(c.name == REBIRTH and c.value is True for c in commands):
            self._hand("rebirth", None)

    # -- the publisher thread ------------------------------------------------------------

    def _run(self) -> None:
        while True:
            work = [self._inbox.get()]
            with contextlib.suppress(queue.Empty):
                while len(work) < _BATCH:
                    work.append(self._inbox.get_nowait())
            for kind, item in work:
                try:
                    if kind in ("verdict", "frame", "status", "stats"):
                        self._apply(kind, item)
                        continue
                    self._flush()
                    if kind == "close":
                        self._finish()
                        return
                    if kind == "down":
                        self._born = False
                    elif kind in ("birth", "rebirth"):
                        self.rebirths += kind == "rebirth"
                        self._birth()
                except Exception as exc:  # one bad update must not stop the publisher
                    self.errors += 1
                    log.warning("sparkplug: update failed", kind=kind, error=str(exc))
            self._flush()

    def _device(self, camera: str) -> Device:
        device = self._devices.get(camera)
        if device is None:  # a camera the context did not name: a device all the same
            checked_id(camera)
            device = self._devices[camera] = Device.new(self._model_name)
            if self._born:
                self._publish_device("DBIRTH", camera, device, list(device.values))
        return device

    def _apply(self, kind: str, item: Any) -> None:
        at = now_ms()
        if kind == "verdict":
            camera, verdict, model_name = item
            device = self._device(camera)
            device.set("Verdict/Last", verdict, at)
            if verdict in _COUNTS:
                name = _COUNTS[verdict]
                count = device.values[name]
                device.set(name, (count if isinstance(count, int) else 0) + 1, at)
            if isinstance(model_name, str):
                device.set("Model/Name", model_name, at)
        elif kind == "frame":
            camera, frame_id = item
            self._device(camera).set("Frame/LastId", frame_id, at)
        elif kind == "stats":
            line_p99, per_camera = item
            for camera, device in self._devices.items():
                p99 = per_camera.get(camera, line_p99)
                if p99 is not None:
                    device.set("Latency/P99Ms", p99, at)
        elif kind == "status":
            camera, state = item
            device = self._device(camera)
            if state in _DOWN_STATES and device.alive:
                self._flush()  # what it did before it went
                device.alive = False
                if self._born:
                    self._publish_device("DDEATH", camera, device, [])
            elif state == "up" and not device.alive:
                device.alive = True
                if self._born:
                    self._publish_device("DBIRTH", camera, device, list(device.values))

    def _flush(self) -> None:
        if not self._born:
            return  # the next birth carries every value
        for camera, device in self._devices.items():
            if device.alive and device.changed:
                self._publish_device("DDATA", camera, device, list(device.changed))

    def _birth(self) -> None:
        """NBIRTH (seq 0, this session's bdSeq) and a DBIRTH per live camera."""
        if not self._connected:
            return
        at = now_ms()
        with self._bdseq_lock:
            bdseq = self._bdseq
        node = [
            Metric(BDSEQ, DataType.UINT64, bdseq, at),
            Metric(REBIRTH, DataType.BOOLEAN, False, at),
        ]
        self._seq = 0
        self._publish(self.topic("NBIRTH"), encode_payload(at, node, 0))
        self._born = True
        for camera, device in self._devices.items():
            if device.alive:
                self._publish_device("DBIRTH", camera, device, list(device.values))

    def _publish_device(self, kind: str, camera: str, device: Device, names: list[str]) -> None:
        at = now_ms()
        self._seq = (self._seq + 1) % 256
        payload = encode_payload(at, device.metrics(names, at), self._seq)
        device.changed.clear()
        self._publish(self.topic(kind, camera), payload)

    def _publish(self, topic: str, payload: bytes, qos: int = 0) -> mqtt.MQTTMessageInfo:
        info = self._client.publish(topic, payload, qos=qos, retain=False)
        self.published += info.rc == mqtt.MQTT_ERR_SUCCESS
        return info

    def _finish(self) -> None:
        """DDEATH for each live camera, then NDEATH with this session's bdSeq (QoS 1, waited
        for: the clean DISCONNECT that follows tells the broker to forget the will)."""
        if not (self._born and self._connected):
            return
        for camera, device in self._devices.items():
            if device.alive:
                self._publish_device("DDEATH", camera, device, [])
        with self._bdseq_lock:
            bdseq = self._bdseq
        at = now_ms()
        death = encode_payload(at, [Metric(BDSEQ, DataType.UINT64, bdseq, at)], None)
        info = self._publish(self.topic("NDEATH"), death, qos=1)
        with contextlib.suppress(ValueError, RuntimeError):
            info.wait_for_publish(_NDEATH_ACK_S)
        self._born = False

    # -- the daemon's view ---------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    def health(self) -> SinkHealth:
        if not self._worker.is_alive() and not self._closing:
            return SinkHealth("down", "sparkplug: publisher stopped")
        if not self._connected:
            return SinkHealth("degraded", f"broker: down ({self._down_reason})")
        return SinkHealth()

    def metrics(self) -> list[SinkMetric]:
        return [
            SinkMetric("inspector_sparkplug_connected", "1 while the Sparkplug edge node is "
                       "connected", "gauge", int(self._connected)),
            SinkMetric("inspector_sparkplug_messages", "Sparkplug messages published",
                       "counter", self.published),
            SinkMetric("inspector_sparkplug_dropped", "Updates dropped: the publisher's queue "
                       "was full", "counter", self.dropped),
            SinkMetric("inspector_sparkplug_rebirths", "Rebirths a host asked for (NCMD)",
                       "counter", self.rebirths),
        ]  # fmt: skip

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._inbox.put(("close", None))
        self._worker.join(_CLOSE_S)
        self._client.disconnect()
        self._client.loop_stop()


def _cameras(camera_ids: Sequence[str]) -> list[tuple[str, str]]:
    return [(f"cameras.{camera}", camera) for camera in camera_ids]


def _p99(stats: Mapping[str, Any]) -> float | None:
    latency = stats.get("latency_ms")
    p99 = latency.get("p99") if isinstance(latency, Mapping) else None
    return float(p99) if isinstance(p99, int | float) and not isinstance(p99, bool) else None
