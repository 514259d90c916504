"""Bounded frame queues with an explicit, named buffering policy.

A live camera keeps producing whether or not inference keeps up, and an old
frame of a moving conveyor is worth less than a new one: DROP_OLDEST discards
the oldest queued frame and counts it. A recording can wait, and every frame
of an acceptance test matters: BLOCK makes the reader wait for space.

All queues of one pipeline share one Condition, so the batcher can sleep until
*any* camera has a frame without polling.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from enum import StrEnum

from inspector.types.frames import Frame


class QueuePolicy(StrEnum):
    DROP_OLDEST = "drop_oldest"
    BLOCK = "block"


# Told of each frame offered to the queue, and of each it gives up (dropped to make room, or
# refused by a stopping BLOCK queue): called under the queue's lock on the capture thread, so
# it must be quick and must not touch the queue.
FrameListener = Callable[[Frame], None]


class FrameQueue:
    def __init__(
        self,
        capacity: int,
        policy: QueuePolicy,
        ready: threading.Condition | None = None,
        on_offer: FrameListener | None = None,
        on_drop: FrameListener | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.policy = policy
        self.ready = ready or threading.Condition()
        self._frames: deque[Frame] = deque()
        self._closed = False
        self.accepted = 0
        self.dropped = 0
        self._on_offer = on_offer
        self._on_drop = on_drop

    def put(self, frame: Frame, stop: threading.Event | None = None) -> bool:
        """Queue a frame; False if it was not queued (queue closed, or stop set while blocked)."""
        with self.ready:
            if self._closed:
                return False
            if self._on_offer is not None:
                # First, under the lock: a listener hears of a frame before the batcher can
                # take it, and while a BLOCK queue makes it wait (its age counts from capture).
                self._on_offer(frame)
            if self.policy is QueuePolicy.BLOCK:
                while len(self._frames) >= self.capacity:
                    if self._closed or (stop is not None and stop.is_set()):
                        if self._on_drop is not None:
                            self._on_drop(frame)  # offered, never to be inspected
                        return False
                    # Timed wait so a stop request is noticed even if nobody notifies.
                    self.ready.wait(timeout=0.1)
            elif len(self._frames) >= self.capacity:
                dropped = self._frames.popleft()
                self.dropped += 1
                if self._on_drop is not None:
                    self._on_drop(dropped)
            self._frames.append(frame)
            self.accepted += 1
            self.ready.notify_all()
            return True

    def get_nowait(self) -> Frame | None:
        with self.ready:
            if not self._frames:
                return None
            frame = self._frames.popleft()
            self.ready.notify_all()  # a blocked producer may have room now
            return frame

    def close(self) -> None:
        """The producer is done: no more frames will come."""
        with self.ready:
            self._closed = True
            self.ready.notify_all()

    @property
    def depth(self) -> int:
        return len(self._frames)

    @property
    def finished(self) -> bool:
        """Closed and drained: the consumer will never get another frame from it."""
        with self.ready:
            return self._closed and not self._frames
