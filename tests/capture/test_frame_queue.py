"""Frame queue policies: live drops the oldest (counted), recordings block (lossless)."""

from __future__ import annotations

import threading
import time

import numpy as np

from inspector.capture.frame_queue import FrameQueue, QueuePolicy
from inspector.types.frames import Frame, utc_now


def make_frame(frame_id: int, camera: str = "cam0") -> Frame:
    return Frame(camera, frame_id, np.zeros((4, 4, 3), np.uint8), utc_now(), time.monotonic_ns())


def drain(frames: FrameQueue) -> list[int]:
    ids = []
    while (frame := frames.get_nowait()) is not None:
        ids.append(frame.frame_id)
    return ids


def test_drop_oldest_keeps_newest_and_counts_drops() -> None:
    frames = FrameQueue(3, QueuePolicy.DROP_OLDEST)
    for frame_id in range(10):
        assert frames.put(make_frame(frame_id))
    assert frames.dropped == 7
    assert frames.accepted == 10
    assert drain(frames) == [7, 8, 9]


def test_block_waits_for_space_and_loses_nothing() -> None:
    frames = FrameQueue(2, QueuePolicy.BLOCK)
    done = threading.Event()

    def produce() -> None:
        for frame_id in range(50):
            frames.put(make_frame(frame_id))
        frames.close()
        done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    time.sleep(0.1)
    assert not done.is_set(), "producer should be blocked on a full queue"
    assert frames.depth == 2
    received: list[int] = []
    while not frames.finished:
        frame = frames.get_nowait()
        if frame is None:
            time.sleep(0.001)
            continue
        received.append(frame.frame_id)
    producer.join(timeout=5)
    assert received == list(range(50))
    assert frames.dropped == 0


def test_blocked_put_gives_up_when_stopped() -> None:
    frames = FrameQueue(1, QueuePolicy.BLOCK)
    stop = threading.Event()
    assert frames.put(make_frame(0), stop)
    result: list[bool] = []
    producer = threading.Thread(target=lambda: result.append(frames.put(make_frame(1), stop)))
    producer.start()
    time.sleep(0.05)
    stop.set()
    producer.join(timeout=2)
    assert result == [False]
    assert drain(frames) == [0]


def test_closed_queue_refuses_and_finishes_when_drained() -> None:
    frames = FrameQueue(4, QueuePolicy.BLOCK)
    frames.put(make_frame(0))
    frames.close()
    assert not frames.put(make_frame(1))
    assert not frames.finished
    assert drain(frames) == [0]
    assert frames.finished
