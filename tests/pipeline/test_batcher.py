"""Batcher: full batches, partial batches on timeout, round-robin fairness, split frames."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from inspector.capture.frame_queue import FrameQueue, QueuePolicy
from inspector.engines.normalize import TileNormalizer
from inspector.pipeline.batcher import Batch, Batcher, BatcherThread, BufferPool
from inspector.tiling import TileMask, Tiler
from inspector.types.card import InputSpec
from inspector.types.frames import Frame, utc_now
from tests.fixtures.models import normalize_reference

TILE = 8
SPEC = InputSpec(
    name="input", height=TILE, width=TILE, color="rgb", scale=255.0,
    mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
)  # fmt: skip


def make_frame(camera: str, frame_id: int, tiles_wide: int = 2) -> Frame:
    # Pixel value encodes the frame id, so a test can tell which frame a tile came from.
    image = np.full((TILE, TILE * tiles_wide, 3), frame_id % 256, np.uint8)
    return Frame(camera, frame_id, image, utc_now(), time.monotonic_ns())


class Collector:
    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self.ended = threading.Event()
        self.times: list[float] = []

    def __call__(self, batch: Batch | None) -> None:
        if batch is None:
            self.ended.set()
            return
        self.times.append(time.monotonic())
        self.batches.append(batch)


def make_batcher(
    cameras: list[str], max_batch: int, max_wait_ms: float, capacity: int = 64
) -> tuple[dict[str, FrameQueue], Batcher, Collector]:
    ready = threading.Condition()
    queues = {camera: FrameQueue(capacity, QueuePolicy.BLOCK, ready) for camera in cameras}
    collector = Collector()
    pool = BufferPool(64, (max_batch, 3, TILE, TILE))
    batcher = Batcher(
        list(queues.values()), Tiler(TILE, TILE), TileNormalizer(SPEC), pool,
        max_batch, max_wait_ms, collector,
    )  # fmt: skip
    return queues, batcher, collector


def test_full_batches_then_final_partial_batch_at_end() -> None:
    queues, batcher, collector = make_batcher(["cam0"], max_batch=4, max_wait_ms=10_000)
    for frame_id in range(5):  # 5 frames x 2 tiles = 10 tiles -> 4 + 4 + 2
        queues["cam0"].put(make_frame("cam0", frame_id))
    queues["cam0"].close()
    batcher.run()
    assert collector.ended.is_set()
    assert [b.size for b in collector.batches] == [4, 4, 2]
    # Tiles keep frame order and their normalised values (pixel/255).
    values = np.concatenate([b.inputs[:, 0, 0, 0] for b in collector.batches])
    assert np.allclose(values * 255, [0, 0, 1, 1, 2, 2, 3, 3, 4, 4])


def test_frame_split_across_batches_keeps_span_bookkeeping() -> None:
    queues, batcher, collector = make_batcher(["cam0"], max_batch=3, max_wait_ms=10_000)
    for frame_id in range(2):
        queues["cam0"].put(make_frame("cam0", frame_id, tiles_wide=2))
    queues["cam0"].close()
    batcher.run()
    first, second = collector.batches
    assert [(s.job.frame.frame_id, s.first, s.offset, s.count) for s in first.spans] == [
        (0, 0, 0, 2),
        (1, 0, 2, 1),
    ]
    assert [(s.job.frame.frame_id, s.first, s.offset, s.count) for s in second.spans] == [
        (1, 1, 0, 1)
    ]


def test_partial_batch_leaves_after_max_wait() -> None:
    queues, batcher, collector = make_batcher(["cam0"], max_batch=64, max_wait_ms=50)
    thread = BatcherThread(batcher)
    thread.start()
    put_at = time.monotonic()
    queues["cam0"].put(make_frame("cam0", 0))
    deadline = time.monotonic() + 5
    while not collector.batches and time.monotonic() < deadline:
        time.sleep(0.005)
    assert collector.batches, "a partial batch must not wait forever"
    waited = collector.times[0] - put_at
    assert 0.04 <= waited < 2.0
    assert collector.batches[0].size == 2
    queues["cam0"].close()
    thread.join(timeout=5)
    assert collector.ended.is_set()
    assert thread.error is None


def test_cameras_are_served_round_robin() -> None:
    queues, batcher, collector = make_batcher(["fast", "slow"], max_batch=2, max_wait_ms=10_000)
    for frame_id in range(6):
        queues["fast"].put(make_frame("fast", frame_id))
    for frame_id in range(2):
        queues["slow"].put(make_frame("slow", 100 + frame_id))
    for q in queues.values():
        q.close()
    batcher.run()
    order = [b.spans[0].job.frame.camera_id for b in collector.batches]
    assert order[:4] == ["fast", "slow", "fast", "slow"]
    assert order.count("fast") == 6


def test_slow_camera_does_not_hold_back_a_fast_one() -> None:
    queues, batcher, collector = make_batcher(["fast", "silent"], max_batch=2, max_wait_ms=10_000)
    thread = BatcherThread(batcher)
    thread.start()
    for frame_id in range(3):
        queues["fast"].put(make_frame("fast", frame_id))
    deadline = time.monotonic() + 5
    while len(collector.batches) < 3 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert len(collector.batches) == 3  # full batches leave although "silent" sent nothing
    for q in queues.values():
        q.close()
    thread.join(timeout=5)
    assert collector.ended.is_set()


@pytest.mark.parametrize("tile_size", [TILE, 2 * TILE])  # frame planes; cut + resize
@pytest.mark.parametrize("masked", [False, True])
def test_every_slot_holds_its_own_tile(tile_size: int, masked: bool) -> None:
    """Split frames, a product mask and both normalisation routes: slot by slot, the batch
    holds exactly the tile its span says, normalised as the reference does."""
    rng = np.random.default_rng(tile_size)
    frames = [rng.integers(0, 256, (2 * tile_size, 3 * tile_size, 3), np.uint8) for _ in range(3)]
    tiler = Tiler(tile_size, tile_size)
    grid = tiler.grid(*frames[0].shape[:2])
    mask = None
    if masked:  # product in the left two columns only
        product = np.zeros(frames[0].shape[:2], bool)
        product[:, : 2 * tile_size] = True
        mask = TileMask(product)
    ready = threading.Condition()
    frame_queue = FrameQueue(8, QueuePolicy.BLOCK, ready)
    collector = Collector()
    batcher = Batcher(
        [frame_queue], tiler, TileNormalizer(SPEC), BufferPool(16, (5, 3, TILE, TILE)),
        5, 10_000, collector, masks={"cam0": mask} if mask is not None else None,
    )  # fmt: skip
    for frame_id, image in enumerate(frames):
        frame_queue.put(Frame("cam0", frame_id, image, utc_now(), time.monotonic_ns()))
    frame_queue.close()
    batcher.run()

    checked = 0
    for batch in collector.batches:
        for span in batch.spans:
            job = span.job
            indices = np.arange(grid.count) if job.active is None else job.active
            for k in range(span.count):
                x, y, s, _ = grid.rect(int(indices[span.first + k]))
                tile = job.frame.image[y : y + s, x : x + s]
                if s != TILE:
                    tile = cv2.resize(tile, (TILE, TILE), interpolation=cv2.INTER_AREA)
                expected = normalize_reference(tile[None], SPEC)[0]
                np.testing.assert_allclose(batch.buffer[span.offset + k], expected, atol=1e-5)
                checked += 1
    assert checked == len(frames) * (4 if masked else 6)


def test_an_idle_engine_gets_a_partial_batch_at_once_a_busy_one_waits() -> None:
    """The adaptive rule: tiles wait for company only while the engine is busy."""
    engine_idle = threading.Event()
    queues, batcher, collector = make_batcher(["cam0"], max_batch=8, max_wait_ms=3_000)
    batcher.engine_idle = engine_idle.is_set
    thread = BatcherThread(batcher)
    thread.start()
    try:
        engine_idle.set()
        sent = time.monotonic()
        queues["cam0"].put(make_frame("cam0", 0))  # 2 tiles of a batch of 8
        deadline = time.monotonic() + 2.5  # well inside max_wait: only idleness sends it
        while not collector.batches and time.monotonic() < deadline:
            time.sleep(0.005)
        assert [b.size for b in collector.batches] == [2]
        assert collector.times[0] - sent < 2.5
        engine_idle.clear()  # busy: the next frames wait for more tiles or for max_wait
        queues["cam0"].put(make_frame("cam0", 1))
        time.sleep(0.3)
        assert len(collector.batches) == 1
        engine_idle.set()  # it frees up: the batcher is woken and sends what it holds
        with batcher.ready:
            batcher.ready.notify_all()
        deadline = time.monotonic() + 2.5
        while len(collector.batches) < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert [b.size for b in collector.batches] == [2, 2]
    finally:
        queues["cam0"].close()
        thread.join(5)
