"""Batching: tiles from consecutive frames and several cameras share one engine call.

A batch leaves when it holds ``max_batch`` tiles or when ``max_wait_ms`` has
passed since its first tile, so a partial batch never waits forever. Cameras
are served round-robin, one frame at a time, so a busy camera cannot starve a
slow one, and a slow one never holds a batch back (waits are bounded).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from inspector.capture.frame_queue import FrameQueue
from inspector.engines.normalize import TileNormalizer
from inspector.tiling import TileMask, Tiler
from inspector.types.frames import Frame
from inspector.types.tiles import TileGrid

FloatArray = npt.NDArray[np.float32]


@dataclass(slots=True, eq=False)
class FrameJob:
    """A frame in flight: its tiles go out in batches, its scores come back the same way."""

    frame: Frame
    grid: TileGrid
    scores: FloatArray | None = None
    remaining: int = 0
    dequeued_ns: int = 0
    active: npt.NDArray[np.int64] | None = None  # grid indices inferred; None: all of them

    @property
    def inferred(self) -> int:
        return self.grid.count if self.active is None else len(self.active)


@dataclass(slots=True)
class TileSpan:
    """``count`` tiles of ``job``, from its inferred tile ``first``, at ``offset`` in the batch."""

    job: FrameJob
    first: int
    offset: int
    count: int


@dataclass(slots=True, eq=False)
class Batch:
    buffer: FloatArray  # preallocated (max_batch, C, H, W); only [:size] is valid
    size: int = 0
    spans: list[TileSpan] = field(default_factory=list)
    opened_ns: int = 0

    @property
    def inputs(self) -> FloatArray:
        return self.buffer[: self.size]


class BufferPool:
    """Preallocated batch buffers handed out and returned, so steady state allocates nothing.

    The pool size bounds how many batches exist at once: when inference falls
    behind, the batcher waits here, and the frame queues apply their policy.
    """

    def __init__(self, count: int, shape: tuple[int, ...]) -> None:
        self._free: queue.Queue[FloatArray] = queue.Queue()
        for _ in range(count):
            self._free.put(np.empty(shape, dtype=np.float32))

    def acquire(self) -> FloatArray:
        return self._free.get()

    def release(self, buffer: FloatArray) -> None:
        self._free.put(buffer)


BatchSink = Callable[[Batch | None], None]
TileWriter = Callable[[int, int, FloatArray], object]  # (first, count, out): tiles into out


class Batcher:
    """Pulls frames, tiles and normalises them into batch buffers, hands full batches on.

    Adaptive: an idle engine (``engine_idle()``) gets the open batch at once, with whatever
    tiles are waiting; tiles accumulate only while the engine is busy, and ``max_wait_ms``
    bounds only that wait. So a quiet line sees the latency of one frame's inference, and
    a busy one full batches. ``emit(None)`` is sent once, after every queue is finished
    and the last partial batch has been emitted.
    """

    def __init__(
        self,
        queues: Sequence[FrameQueue],
        tiler: Tiler,
        normalizer: TileNormalizer,
        pool: BufferPool,
        max_batch: int,
        max_wait_ms: float,
        emit: BatchSink,
        masks: dict[str, TileMask] | None = None,
        engine_idle: Callable[[], bool] = lambda: False,
    ) -> None:
        if not queues:
            raise ValueError("a batcher needs at least one frame queue")
        self.queues = list(queues)
        self.ready = self.queues[0].ready
        if any(q.ready is not self.ready for q in self.queues):
            raise ValueError("all frame queues of a batcher must share one Condition")
        self.tiler = tiler
        self.normalizer = normalizer
        self.pool = pool
        self.max_batch = max_batch
        self.max_wait_ns = int(max_wait_ms * 1e6)
        self.emit = emit
        self.masks = masks or {}
        self.engine_idle = engine_idle
        self._next_queue = 0
        self._batch: Batch | None = None

    def run(self) -> None:
        while True:
            timeout = self._time_left_s()
            frame = self._wait_for_frame(timeout)
            if frame is not None:
                self._add(frame)
                if self._idle_engine_waits() and not any(q.depth for q in self.queues):
                    self._flush()  # nothing else to add now: the idle engine takes what is here
            elif all(q.finished for q in self.queues):
                self._flush()
                self.emit(None)
                return
            elif self._batch is not None and (
                self._time_left_s() == 0.0 or self._idle_engine_waits()
            ):
                self._flush()

    def _idle_engine_waits(self) -> bool:
        return self._batch is not None and self._batch.size > 0 and self.engine_idle()

    def _time_left_s(self) -> float | None:
        """Seconds until the open batch must leave; None when no batch is open."""
        if self._batch is None:
            return None
        due_ns = self._batch.opened_ns + self.max_wait_ns
        return max(0.0, (due_ns - time.monotonic_ns()) / 1e9)

    def _wait_for_frame(self, timeout: float | None) -> Frame | None:
        # None (no open batch) still wakes periodically, to notice queues closing.
        deadline = time.monotonic() + (timeout if timeout is not None else 0.5)
        with self.ready:
            while True:
                frame = self._take_round_robin()
                if frame is not None or all(q.finished for q in self.queues):
                    return frame
                if self._idle_engine_waits():
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.ready.wait(left)

    def _take_round_robin(self) -> Frame | None:
        count = len(self.queues)
        for step in range(count):
            index = (self._next_queue + step) % count
            frame = self.queues[index].get_nowait()
            if frame is not None:
                self._next_queue = (index + 1) % count
                return frame
        return None

    def _add(self, frame: Frame) -> None:
        grid = self.tiler.grid(frame.height, frame.width)
        mask = self.masks.get(frame.camera_id)
        active = mask.active(grid) if mask is not None else None
        origins = grid.origins if active is None else grid.origins[active]
        write_tiles = self._tile_writer(frame.image, grid, origins, active)
        job = FrameJob(
            frame=frame,
            grid=grid,
            remaining=len(origins),
            dequeued_ns=time.monotonic_ns(),
            active=active,
        )
        if len(origins) == 0:  # nothing of the product in view: the frame is done, and clean
            self._empty_frame(job)
            return
        first = 0
        while first < len(origins):
            batch = self._open_batch()
            count = min(len(origins) - first, self.max_batch - batch.size)
            write_tiles(first, count, batch.buffer[batch.size : batch.size + count])
            batch.spans.append(TileSpan(job=job, first=first, offset=batch.size, count=count))
            batch.size += count
            first += count
            if batch.size == self.max_batch:
                self._flush()

    def _tile_writer(
        self,
        image: npt.NDArray[np.uint8],
        grid: TileGrid,
        origins: npt.NDArray[np.int64],
        active: npt.NDArray[np.int64] | None,
    ) -> TileWriter:
        """How this frame's inferred tiles ``first .. first + count`` reach a batch slot."""
        planes = self.normalizer.planes(image, grid.size)
        if planes is not None:  # the hot path: straight from the frame's channel planes
            return lambda first, count, out: self.normalizer.normalize_planes(
                planes, origins[first : first + count], out
            )
        # Tiles of another size than the model's are cut once, then resized and normalised.
        tiles = self.tiler.extract(image, grid)
        if active is not None:
            tiles = tiles[active]
        return lambda first, count, out: self.normalizer.normalize(
            tiles[first : first + count], out
        )

    def _empty_frame(self, job: FrameJob) -> None:
        # A zero-tile span in the open batch carries the frame to post-processing in order.
        batch = self._open_batch()
        batch.spans.append(TileSpan(job=job, first=0, offset=batch.size, count=0))

    def _open_batch(self) -> Batch:
        if self._batch is None:
            self._batch = Batch(buffer=self.pool.acquire(), opened_ns=time.monotonic_ns())
        return self._batch

    def _flush(self) -> None:
        batch, self._batch = self._batch, None
        if batch is None or (batch.size == 0 and not batch.spans):
            if batch is not None:
                self.pool.release(batch.buffer)
            return
        self.emit(batch)


class BatcherThread(threading.Thread):
    def __init__(self, batcher: Batcher) -> None:
        super().__init__(name="batcher", daemon=True)
        self.batcher = batcher
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.batcher.run()
        except BaseException as exc:  # surfaced by the pipeline, which stops the run
            self.error = exc
            self.batcher.emit(None)
