"""What the operator's page shows, kept current by the ``ui`` sink and read by the app.

The sink's fan-out thread writes (a reference to each camera's newest result, counts,
events, camera states, stats); the server's threads read. Nothing here encodes on the
sink's thread: the page's picture of a camera is drawn and encoded when a page asks for it,
at most ``frame_fps`` times a second per camera however many pages ask, and only the newest
result is kept, so a line with no page open pays for a reference and a few counters.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from inspector.evidence.pictures import encode_jpeg
from inspector.types.results import FrameResult, SinkHealth, SinkMetric
from inspector.ui.picture import tile_verdict_picture
from inspector.ui.refusals import Refusals

WINDOW_S = 3600  # the counts cover the last hour
BUCKET_S = 60  # in minutes: the chart's bars
TRIGGER_WAIT_S = 2.0  # a triggered camera without a frame for this long is waiting for a part
_LINE_EVERY_S = 1.0  # broker and outbox figures: asked of the sinks at most this often

HealthSource = Callable[[], Mapping[str, SinkHealth]]
FigureSource = Callable[[], Mapping[str, Sequence[SinkMetric]]]


@dataclass(frozen=True, slots=True)
class CameraInfo:
    id: str
    triggered: bool = False  # trigger mode: no frame between parts is no fault


@dataclass(slots=True)
class _Camera:
    info: CameraInfo
    state: str = "starting"
    error: str | None = None
    reconnects: int = 0
    frames: int = 0
    result: FrameResult | None = None
    result_at: float = 0.0
    jpeg: bytes | None = None
    jpeg_frames: int = -1  # ``frames`` when ``jpeg`` was drawn
    jpeg_at: float = float("-inf")


@dataclass(slots=True)
class _Bucket:
    minute: int
    ok: int = 0
    nok: int = 0
    classes: Counter[str] = field(default_factory=Counter)


class LiveState:
    def __init__(
        self,
        line: str,
        cameras: Sequence[CameraInfo],
        model: Mapping[str, Any],
        labels: Sequence[str],
        *,
        frame_width: int = 640,
        frame_fps: float = 4.0,
        jpeg_quality: int = 70,
        events_kept: int = 100,
        evidence_url: str | None = "/evidence/",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.line, self.model, self.labels = line, dict(model), tuple(labels)
        self.frame_width, self.jpeg_quality = frame_width, jpeg_quality
        self.frame_interval_s = 1.0 / frame_fps
        self.evidence_url = evidence_url
        self.clock = clock
        self._lock = threading.Lock()
        self._encoding = threading.Lock()  # one picture at a time: a bound on the page's CPU
        self._cameras = {info.id: _Camera(info) for info in cameras}
        self._events: deque[dict[str, Any]] = deque(maxlen=events_kept)
        self._buckets: deque[_Bucket] = deque(maxlen=WINDOW_S // BUCKET_S + 1)
        self._stats: dict[str, Any] = {}
        self._health: HealthSource | None = None
        self._figures: FigureSource | None = None
        self._line_cache: tuple[float, dict[str, Any]] | None = None
        self._status_cache: tuple[int, float, bytes] | None = None
        self.version = 0  # bumped on every change: a live page pushes when it moves
        self.frames_encoded = 0
        self.live_pages = 0  # open event streams (the app counts them)
        self.refused = Refusals()  # what the app and its server turned away, for /metrics
        self.closing = threading.Event()  # set before the server stops: live streams end

    # -- written by the sink ---------------------------------------------------------------

    def add_result(self, result: FrameResult) -> None:
        now = self.clock()
        with self._lock:
            camera = self._camera(result.frame.camera_id)
            camera.result, camera.result_at = result, now
            camera.frames += 1
            bucket = self._bucket(now)
            if result.regions:
                bucket.nok += 1
                bucket.classes.update(region.label for region in result.regions)
            else:
                bucket.ok += 1
            if result.event is not None:
                self._events.appendleft(self._event_view(result.event))
            self.version += 1

    def camera_status(self, camera: str, status: Mapping[str, Any]) -> None:
        with self._lock:
            view = self._camera(camera)
            view.state = str(status.get("state", view.state))
            error = status.get("error")
            view.error = str(error) if error else None
            view.reconnects = int(status.get("reconnects", view.reconnects) or 0)
            self.version += 1

    def stats(self, stats: Mapping[str, Any]) -> None:
        latency = stats.get("latency_ms") or {}
        with self._lock:
            self._stats = {
                "fps": stats.get("fps", 0.0),
                "tiles_per_s": stats.get("tiles_per_s", 0.0),
                "latency_p50_ms": latency.get("p50", 0.0),
                "latency_p99_ms": latency.get("p99", 0.0),
                "dropped": stats.get("dropped_frames", 0),
                "frames_inferred": stats.get("frames_inferred", 0),
                "uptime_s": stats.get("uptime_s", 0.0),
            }
            self.version += 1

    def watch_line(self, health: HealthSource, figures: FigureSource) -> None:
        """Where the broker's and the outbox's state come from (the other sinks)."""
        self._health, self._figures = health, figures

    def _camera(self, camera: str) -> _Camera:
        if camera not in self._cameras:  # one the configuration did not name (tests, embedding)
            self._cameras[camera] = _Camera(CameraInfo(camera))
        return self._cameras[camera]

    def _bucket(self, now: float) -> _Bucket:
        minute = int(now // BUCKET_S)
        if not self._buckets or self._buckets[-1].minute != minute:
            self._buckets.append(_Bucket(minute))
        return self._buckets[-1]

    def _event_view(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The event as published, with URLs for its evidence pictures where the page serves
        them (the evidence sink named them; it may still be writing them)."""
        view = dict(event)
        evidence = event.get("evidence")
        if isinstance(evidence, Mapping) and self.evidence_url is not None:
            prefix = self.evidence_url
            frame, crops = evidence.get("frame"), evidence.get("crops") or []
            view["evidence"] = {
                **evidence,
                "frame_url": prefix + quote(str(frame)) if frame else None,
                "crop_urls": [prefix + quote(str(crop)) for crop in crops],
            }
        return view

    # -- read by the app -------------------------------------------------------------------

    def events(self, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` defect events, newest first."""
        with self._lock:
            return [self._events[i] for i in range(min(limit, len(self._events)))]

    def counts(self) -> dict[str, Any]:
        """OK and NOK frames and defects per class over the last hour, and per minute."""
        now_minute = int(self.clock() // BUCKET_S)
        first = now_minute - WINDOW_S // BUCKET_S + 1
        with self._lock:
            buckets = [b for b in self._buckets if b.minute >= first]
            per_minute = {b.minute: (b.ok, b.nok) for b in buckets}
            classes: Counter[str] = Counter()
            for bucket in buckets:
                classes.update(bucket.classes)
        return {
            "window_s": WINDOW_S,
            "bucket_s": BUCKET_S,
            "ok": sum(b.ok for b in buckets),
            "nok": sum(b.nok for b in buckets),
            "classes": {label: classes[label] for label in sorted(classes)},
            # Oldest first, one per minute, empty minutes included: what the chart draws.
            "minutes": [list(per_minute.get(m, (0, 0))) for m in range(first, now_minute + 1)],
        }

    def status(self) -> dict[str, Any]:
        now = self.clock()
        with self._lock:
            cameras = [self._camera_view(camera, now) for camera in self._cameras.values()]
            stats = dict(self._stats)
            newest = [self._events[i] for i in range(min(10, len(self._events)))]
            version = self.version
        return {
            "line": self.line,
            "version": version,
            "model": self.model,
            "cameras": cameras,
            "counts": self.counts(),
            "stats": stats,
            **self._line_state(now),
            "events": newest,
            "live_pages": self.live_pages,
        }

    def status_json(self, max_age_s: float = 0.2) -> tuple[int, bytes]:
        """``status()`` as JSON, shared by every page that asks within ``max_age_s``."""
        now = self.clock()
        cached = self._status_cache
        if cached is not None and (cached[0] == self.version or now - cached[1] < max_age_s):
            return cached[0], cached[2]
        status = self.status()
        body = json.dumps(status, separators=(",", ":")).encode()
        self._status_cache = (status["version"], now, body)
        return status["version"], body

    def _camera_view(self, camera: _Camera, now: float) -> dict[str, Any]:
        result = camera.result
        state = {"up": "ok"}.get(camera.state, camera.state)
        if state == "ok" and camera.info.triggered and now - camera.result_at > TRIGGER_WAIT_S:
            state = "waiting for trigger"
        return {
            "id": camera.info.id,
            "state": state,
            "error": camera.error,
            "reconnects": camera.reconnects,
            "frames": camera.frames,
            "frame_id": result.frame.frame_id if result is not None else None,
            "verdict": result.verdict if result is not None else None,
            "classes": sorted({r.label for r in result.regions}) if result is not None else [],
            "frame_url": (
                f"/api/frame/{quote(camera.info.id)}?n={camera.frames}"
                if result is not None
                else None
            ),
        }

    def _line_state(self, now: float) -> dict[str, Any]:
        """The broker and the outbox as the MQTT sink reports them, asked once a second."""
        cached = self._line_cache
        if cached is not None and now - cached[0] < _LINE_EVERY_S:
            return cached[1]
        health = dict(self._health()) if self._health is not None else {}
        figures = {
            metric.name: metric.value
            for metrics in (self._figures() if self._figures is not None else {}).values()
            for metric in metrics
        }
        mqtt = health.get("mqtt")
        if "inspector_broker_connected" in figures:
            connected = bool(figures["inspector_broker_connected"])
            detail = mqtt.detail if mqtt is not None else ""
            broker = {"state": "connected" if connected else "down", "detail": detail}
        else:
            broker = {"state": "off", "detail": "no MQTT sink"}
        if "inspector_outbox_backlog" in figures:
            errors = int(figures.get("inspector_outbox_write_errors", 0))
            outbox = {
                "state": "failing" if errors else "ok",
                "backlog": int(figures["inspector_outbox_backlog"]),
                "dropped": int(figures.get("inspector_outbox_dropped", 0)),
                "write_errors": errors,
            }
        else:
            outbox = {"state": "off", "backlog": 0, "dropped": 0, "write_errors": 0}
        sinks = {name: {"state": h.state, "detail": h.detail} for name, h in health.items()}
        line = {"broker": broker, "outbox": outbox, "sinks": sinks}
        self._line_cache = (now, line)
        return line

    def cached_jpeg(self, camera: str) -> bytes | None:
        """The picture already drawn, when it is still the one to show: no drawing, no wait
        (the server's loop answers it without a worker thread)."""
        with self._lock:
            view = self._cameras.get(camera)
            if view is None or view.jpeg is None:
                return None
            fresh = view.jpeg_frames == view.frames
            if fresh or self.clock() - view.jpeg_at < self.frame_interval_s:
                return view.jpeg
            return None

    def frame_jpeg(self, camera: str) -> bytes | None:
        """The page's picture of ``camera``'s newest frame: drawn again only when a newer
        frame came and the last drawing is older than the frame interval."""
        with self._lock:
            view = self._cameras.get(camera)
            if view is None or view.result is None:
                return None
        with self._encoding:
            with self._lock:
                result, frames = view.result, view.frames
                now = self.clock()
                fresh = view.jpeg_frames == frames or now - view.jpeg_at < self.frame_interval_s
                if view.jpeg is not None and fresh:
                    return view.jpeg
            assert result is not None
            picture = tile_verdict_picture(
                result.frame.image, result.grid, result.tile_labels, result.tile_inferred,
                self.labels, self.frame_width,
            )  # fmt: skip
            jpeg = encode_jpeg(picture, self.jpeg_quality)
            with self._lock:
                view.jpeg, view.jpeg_frames, view.jpeg_at = jpeg, frames, now
                self.frames_encoded += 1
            return jpeg
