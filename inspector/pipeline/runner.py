"""The whole path, wired: capture threads -> batcher -> inference -> results -> sinks.

Threads and bounded queues, one direction. Each stage is an object with one
job; this module only connects them, starts them, and decides when a run is
over: a recording ends the run once its last frame has been published, a live
camera runs until ``stop`` is set.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from inspector.capture.capture_thread import CaptureThread
from inspector.capture.frame_queue import FrameListener, FrameQueue, QueuePolicy
from inspector.capture.source import FrameSource
from inspector.capture.sources.base import QueuePolicyName
from inspector.capture.sources.registry import CameraSettings
from inspector.config import Settings
from inspector.engines import Engine
from inspector.engines.normalize import TileNormalizer
from inspector.errors import InspectorError
from inspector.pipeline.batcher import Batch, Batcher, BatcherThread, BufferPool
from inspector.pipeline.events import event_id, new_run_id
from inspector.pipeline.inference import InferenceLoop, Result
from inspector.pipeline.results import CameraGeometry, ResultAssembler
from inspector.pipeline.stats import PipelineStats, RateWindow
from inspector.pipeline.verdict_stage import VerdictStage
from inspector.postprocess import VerdictRule
from inspector.sinks.base import ResultSink, VerdictSink
from inspector.tiling import TileMask, Tiler
from inspector.types.frames import Frame, Image, iso_utc, utc_now
from inspector.types.results import FrameResult

log = structlog.get_logger(__name__)

_POLL_S = 0.2


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
        sink: ResultSink,
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
        # One verdict per part, where the line asks for them: decided here, carried by the
        # sinks that carry verdicts (the fan-out hands each to them).
        self.verdicts: VerdictStage | None = None
        if settings.verdicts.enabled:
            emit = sink.verdict if isinstance(sink, VerdictSink) else (lambda verdict: None)
            self.verdicts = VerdictStage(
                settings.verdicts, settings.line.id, [c.settings.id for c in self.cameras], emit
            )

        ready = threading.Condition()
        self.queues = [
            FrameQueue(
                camera.settings.queue_size,
                queue_policy(camera),
                ready,
                *self._capture_listeners(),
            )
            for camera in self.cameras
        ]
        self.capture_threads = [
            CaptureThread(
                camera.settings.id,
                camera.source,
                frames,
                self.stop_event,
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
        self._results: queue.Queue[Result | None] = queue.Queue()
        self.batcher = Batcher(
            self.queues,
            Tiler(settings.tiling.size, settings.tiling.stride, settings.tiling.roi),
            TileNormalizer(card.input),
            self.pool,
            batching.max_batch,
            batching.max_wait_ms,
            emit=self._to_engine.put,
            masks={c.settings.id: c.roi_mask for c in self.cameras if c.roi_mask is not None},
            engine_idle=lambda: inference.waiting and self._to_engine.empty(),
        )
        self._batcher_thread = BatcherThread(self.batcher)
        inference = InferenceLoop(
            engine, self._to_engine, self._results, self.pool, self.rule, self.stats,
            fail=self._fail, failed=lambda: bool(self._errors), on_idle=self._wake_batcher,
        )  # fmt: skip
        self._engine_thread = threading.Thread(target=inference.run, name="engine", daemon=True)
        self.assembler = ResultAssembler(
            settings.line.id,
            self.run_id,
            engine.card,
            {c.settings.id: CameraGeometry(c.settings, c.mm_per_px) for c in self.cameras},
            self.stats,
            deliver=self._deliver,
        )
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
            if self.verdicts is not None:
                self.verdicts.close()  # the parts never decided get theirs before the sinks close
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

    def _capture_listeners(self) -> tuple[FrameListener | None, ...]:
        """What a queue tells the verdict stage (the parts' deadlines): each frame offered to
        it and each it gives up, with the event id the frame has."""
        verdicts = self.verdicts
        if verdicts is None:
            return None, None
        line, run_id = self.settings.line.id, self.run_id

        def offered(frame: Frame) -> None:
            verdicts.captured(frame, event_id(line, frame.camera_id, run_id, frame.frame_id))

        def dropped(frame: Frame) -> None:
            verdicts.dropped(frame, event_id(line, frame.camera_id, run_id, frame.frame_id))

        return offered, dropped

    def _deliver(self, result: FrameResult) -> None:
        self.sink.frame_result(result)
        if self.verdicts is not None:
            self.verdicts.result(result)

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
            self.assembler.add(*item)

    def _stats_loop(self) -> None:
        interval = self.settings.mqtt.stats_interval_s
        window = self.stats.rate_window()
        while not self.stop_event.wait(interval):
            self.sink.stats(self.stats_snapshot(window))

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
        self.sink.camera_status(capture.camera_id, status)

    # -- errors -------------------------------------------------------------------------

    def _wake_batcher(self) -> None:
        """The engine has nothing to do: the batcher may send its open batch now."""
        with self.batcher.ready:
            self.batcher.ready.notify_all()

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
