"""The whole path, wired: capture threads -> batcher -> engine -> postprocess -> event sink.

Threads and bounded queues, one direction. Each stage is an object with one
job; this module only connects them, starts them, and decides when a run is
over: a recording ends the run once its last frame has been published, a live
camera runs until ``stop`` is set.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import structlog

from inspector.capture.capture_thread import CaptureThread
from inspector.capture.frame_queue import FrameQueue, QueuePolicy
from inspector.capture.source import FrameSource
from inspector.config import CameraSettings, QueuePolicyName, Settings
from inspector.engines import Engine
from inspector.engines.base import AsyncEngine
from inspector.engines.preprocess import TileNormalizer
from inspector.errors import InspectorError
from inspector.frames import Image, iso_utc, utc_now
from inspector.pipeline.batcher import Batch, Batcher, BatcherThread, BufferPool, FrameJob
from inspector.pipeline.events import defect_event, new_run_id
from inspector.pipeline.postprocess import VerdictRule, merge_regions
from inspector.pipeline.stats import PipelineStats, RateWindow
from inspector.tiling import TileMask, Tiler

log = structlog.get_logger(__name__)

_POLL_S = 0.2


class EventSink(Protocol):
    def publish_event(self, event: Mapping[str, Any]) -> object: ...

    def publish_stats(self, stats: Mapping[str, Any]) -> None: ...

    def publish_camera_status(self, camera: str, status: Mapping[str, Any]) -> None: ...


class PipelineError(InspectorError):
    """A stage failed while running (engine error, source failure of a recording)."""


@dataclass(frozen=True, slots=True)
class Camera:
    settings: CameraSettings
    source: FrameSource  # opened by the caller (a live one may be down, and is retried)
    corrector: Callable[[Image], Image] | None = None  # flat-field, undistortion
    mm_per_px: float | None = None  # scale on the conveyor plane: events get bbox_mm
    roi_mask: TileMask | None = None  # only the product's tiles are inferred


@dataclass(frozen=True, slots=True)
class RunSummary:
    run_id: str
    frames_captured: int
    frames_dropped: int
    frames_inferred: int
    tiles_inferred: int
    events: int
    elapsed_s: float
    stats: dict[str, Any]


def queue_policy(camera: Camera) -> QueuePolicy:
    name = camera.settings.policy
    if name is QueuePolicyName.AUTO:
        return QueuePolicy.DROP_OLDEST if camera.source.live else QueuePolicy.BLOCK
    return QueuePolicy(name.value)


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        cameras: Sequence[Camera],
        engine: Engine,
        sink: EventSink,
        run_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.cameras = list(cameras)
        self._by_id = {camera.settings.id: camera for camera in self.cameras}
        self.engine = engine
        self.sink = sink
        self.run_id = run_id or new_run_id()
        self.stop_event = threading.Event()
        self.stats = PipelineStats()
        self.rule = VerdictRule(engine.card)
        self._errors: list[BaseException] = []

        ready = threading.Condition()
        self.queues = [
            FrameQueue(camera.settings.queue_size, queue_policy(camera), ready)
            for camera in self.cameras
        ]
        self.capture_threads = [
            CaptureThread(
                camera.settings.id,
                camera.source,
                frames,
                self.stop_event,
                realtime=camera.settings.realtime,
                on_state=self._camera_state,
                correct=camera.corrector,
            )
            for camera, frames in zip(self.cameras, self.queues, strict=True)
        ]
        batching = settings.batching
        card = engine.card
        # in_flight batches waiting for the engine, one being inferred, one being filled.
        self.pool = BufferPool(
            batching.in_flight + 2,
            (batching.max_batch, card.channels, card.input.height, card.input.width),
        )
        self._to_engine: queue.Queue[Batch | None] = queue.Queue(maxsize=batching.in_flight)
        self._results: queue.Queue[tuple[Batch, np.ndarray] | None] = queue.Queue()
        self.batcher = Batcher(
            self.queues,
            Tiler(settings.tiling.size, settings.tiling.stride, settings.tiling.roi),
            TileNormalizer(card.input),
            self.pool,
            batching.max_batch,
            batching.max_wait_ms,
            emit=self._to_engine.put,
            masks={c.settings.id: c.roi_mask for c in self.cameras if c.roi_mask is not None},
        )
        self._batcher_thread = BatcherThread(self.batcher)
        self._engine_thread = threading.Thread(target=self._infer_loop, name="engine", daemon=True)
        self._stats_thread = threading.Thread(target=self._stats_loop, name="stats", daemon=True)
        self._log = log.bind(line=settings.line.id, run_id=self.run_id)

    # -- public -------------------------------------------------------------------------

    def run(self) -> RunSummary:
        """Run until every source has ended and its results are handed to the sink, or stop()."""
        self._log.info(
            "pipeline_started",
            cameras=[camera.settings.id for camera in self.cameras],
            model=self.engine.card.name,
            max_batch=self.settings.batching.max_batch,
        )
        threads = [*self.capture_threads, self._batcher_thread, self._engine_thread]
        for thread in threads:
            thread.start()
        self._stats_thread.start()
        try:
            self._collect()
        finally:
            self.stop_event.set()
            for thread in threads:
                thread.join(timeout=10)
        self._raise_first_error()
        return self.summary()

    def stop(self) -> None:
        """Stop capturing; frames already queued are still inferred and published."""
        self.stop_event.set()

    def summary(self) -> RunSummary:
        return RunSummary(
            run_id=self.run_id,
            frames_captured=sum(t.captured for t in self.capture_threads),
            frames_dropped=self.frames_dropped(),
            frames_inferred=self.stats.frames_inferred,
            tiles_inferred=self.stats.tiles_inferred,
            events=self.stats.events,
            elapsed_s=round(self.stats.elapsed_s(), 3),
            stats=self.stats_snapshot(),
        )

    def frames_dropped(self) -> int:
        """Dropped by a drop_oldest queue, plus lost by the cameras themselves."""
        return sum(q.dropped for q in self.queues) + sum(c.source.lost for c in self.cameras)

    @property
    def engine_queue_depth(self) -> int:
        return self._to_engine.qsize()

    def stats_snapshot(self, window: RateWindow | None = None) -> dict[str, Any]:
        """Totals and rates (since ``window``'s last look, else since start), with queues."""
        snapshot = self.stats.snapshot(window)
        snapshot["line"] = self.settings.line.id
        snapshot["run_id"] = self.run_id
        snapshot["queues"] = {
            camera.settings.id: {
                "depth": q.depth,
                "dropped": q.dropped,
                "lost": camera.source.lost,
                "captured": t.captured,
            }
            for camera, q, t in zip(self.cameras, self.queues, self.capture_threads, strict=True)
        }
        snapshot["dropped_frames"] = self.frames_dropped()
        snapshot["engine_queue"] = self._to_engine.qsize()
        return snapshot

    # -- stages -------------------------------------------------------------------------

    def _infer_loop(self) -> None:
        if isinstance(self.engine, AsyncEngine):
            self._infer_in_flight(self.engine)
            return
        while True:
            batch = self._to_engine.get()
            if batch is None or self._errors:
                if batch is not None:
                    self.pool.release(batch.buffer)
                    continue  # drain, so the batcher never blocks on a full queue
                self._results.put(None)
                return
            if batch.size == 0:
                self._pass_through(batch)
                continue
            started = time.perf_counter()
            try:
                outputs = self.engine.infer(batch.inputs)
            except Exception as exc:
                self._fail(exc)
                self.pool.release(batch.buffer)
                continue
            self.stats.record_batch(batch.size, (time.perf_counter() - started) * 1e3)
            # The engine returned new memory, so the input buffer can be refilled now.
            self.pool.release(batch.buffer)
            self._results.put((batch, self.rule.probabilities(outputs)))

    def _infer_in_flight(self, engine: AsyncEngine) -> None:
        """Keep the engine's contexts busy: submit while one is free, collect the oldest
        when all are busy or when no new batch is waiting."""
        pending: deque[tuple[Batch, float]] = deque()

        def collect_oldest() -> None:
            batch, started = pending.popleft()
            try:
                outputs = engine.collect()
            except Exception as exc:
                self._fail(exc)
                return
            self.stats.record_batch(batch.size, (time.perf_counter() - started) * 1e3)
            self._results.put((batch, self.rule.probabilities(outputs)))

        while True:
            try:
                batch = self._to_engine.get(block=not pending)
            except queue.Empty:
                collect_oldest()
                continue
            if batch is None or self._errors:
                if batch is not None:
                    self.pool.release(batch.buffer)
                    continue
                while pending:
                    collect_oldest()
                self._results.put(None)
                return
            if batch.size == 0:
                while pending:  # keep the frames in order behind the batches in flight
                    collect_oldest()
                self._pass_through(batch)
                continue
            if engine.full:
                collect_oldest()
            started = time.perf_counter()
            try:
                engine.submit(batch.inputs)
            except Exception as exc:
                self._fail(exc)
                continue
            finally:
                self.pool.release(batch.buffer)  # submit copied it into the engine's memory
            pending.append((batch, started))

    def _pass_through(self, batch: Batch) -> None:
        """A batch of frames with no product tile in view: nothing to infer, still reported."""
        self.pool.release(batch.buffer)
        self._results.put((batch, np.empty((0, len(self.rule.labels)), np.float32)))

    def _collect(self) -> None:
        while True:
            try:
                item = self._results.get(timeout=_POLL_S)
            except queue.Empty:
                if self._batcher_thread.error is not None:
                    self._fail(self._batcher_thread.error)
                continue
            if item is None:
                return
            batch, probabilities = item
            for span in batch.spans:
                job = span.job
                if job.scores is None:
                    job.scores = self._blank_scores(job, probabilities.shape[1])
                rows = slice(span.first, span.first + span.count)
                targets = rows if job.active is None else job.active[rows]
                job.scores[targets] = probabilities[span.offset : span.offset + span.count]
                job.remaining -= span.count
                if job.remaining == 0:
                    self._finish_frame(job)

    def _blank_scores(self, job: FrameJob, classes: int) -> np.ndarray:
        if job.active is None:
            return np.empty((job.grid.count, classes), np.float32)
        # Tiles outside the product mask are not inferred: they count as certainly ok.
        scores = np.zeros((job.grid.count, classes), np.float32)
        scores[:, self.rule.ok_index] = 1.0
        return scores

    def _finish_frame(self, job: FrameJob) -> None:
        assert job.scores is not None
        labels, scores = self.rule.verdicts(job.scores)
        regions = merge_regions(job.grid, labels, scores, self.rule.labels)
        now_ns = time.monotonic_ns()
        latency_ms = (now_ns - job.frame.captured_ns) / 1e6
        if regions:
            card = self.engine.card
            camera = self._by_id[job.frame.camera_id]
            event = defect_event(
                line=self.settings.line.id,
                run_id=self.run_id,
                frame=job.frame,
                tiles=job.inferred,
                regions=regions,
                model_name=card.name,
                model_sha256=card.sha256,
                published_at=utc_now(),
                latency_ms=latency_ms,
                mm_per_px=camera.mm_per_px,
                conveyor_mm=self._conveyor_mm(camera.settings, job),
            )
            self.sink.publish_event(event)
            self._log.debug(
                "defects_found",
                camera=job.frame.camera_id,
                frame_id=job.frame.frame_id,
                classes=sorted({region.label for region in regions}),
            )
        self.stats.record_frame(latency_ms, event=bool(regions))

    def _conveyor_mm(self, camera: CameraSettings, job: FrameJob) -> float | None:
        """Belt travel since the run began, at this frame's capture."""
        if camera.conveyor_mm_per_frame is not None:
            return camera.conveyor_mm_per_frame * job.frame.frame_id
        if camera.conveyor_mm_per_s is not None:
            return camera.conveyor_mm_per_s * (job.frame.captured_ns - self.stats.started_ns) / 1e9
        return None

    def _stats_loop(self) -> None:
        interval = self.settings.mqtt.stats_interval_s
        window = self.stats.rate_window()
        while not self.stop_event.wait(interval):
            try:
                self.sink.publish_stats(self.stats_snapshot(window))
            except Exception as exc:  # stats are best effort; events are not
                self._log.warning("stats_publish_failed", error=str(exc))

    def _camera_state(self, capture: CaptureThread, state: str, error: str | None) -> None:
        """Called on a capture thread when its camera goes up, is lost, ends or fails."""
        status = {
            "camera": capture.camera_id,
            "state": state,
            "error": error,
            "errors": capture.errors,
            "reconnects": capture.reconnects,
            "corrupt_frames": capture.corrupt,
            "captured": capture.captured,
            "at": iso_utc(utc_now()),
        }
        try:
            self.sink.publish_camera_status(capture.camera_id, status)
        except Exception as exc:  # status is informative; inspection goes on without it
            self._log.warning("camera_status_publish_failed", error=str(exc))

    # -- errors -------------------------------------------------------------------------

    def _fail(self, exc: BaseException) -> None:
        if not self._errors:
            self._log.error("pipeline_failed", error=str(exc), error_type=type(exc).__name__)
        self._errors.append(exc)
        self.stop_event.set()

    def _raise_first_error(self) -> None:
        errors = list(self._errors)
        errors += [t.error for t in self.capture_threads if t.error is not None]
        if self._batcher_thread.error is not None:
            errors.append(self._batcher_thread.error)
        if not errors:
            return
        first = errors[0]
        if isinstance(first, InspectorError):
            raise first
        raise PipelineError(f"{type(first).__name__}: {first}") from first
