"""Which published events the broker has acknowledged (QoS 1 PUBACKs), by MQTT message id.

paho calls ``on_publish`` on its network thread, sometimes before ``publish()`` has even
returned the message id to the publisher; both orders are handled here, under one lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# Called on paho's network thread with (event_id, time.monotonic_ns() of the ack); keep it short.
AckListener = Callable[[str, int], None]


class AckTracker:
    def __init__(self, on_ack: AckListener | None = None) -> None:
        self._cond = threading.Condition()
        self._on_ack = on_ack
        self._published = 0
        self._acknowledged = 0
        self._rejected = 0
        self._pending: dict[int, str] = {}  # mid -> event_id, events not yet acknowledged
        # Acks that arrived before sent() claimed their mid (mid -> when).
        self._early: dict[int, int] = {}
        # Status and stats messages in flight: their acks must not be taken for early event
        # acks, or a recycled mid would later mark an unsent event as delivered.
        self._untracked: set[int] = set()

    def sent(self, mid: int, event_id: str | None) -> None:
        """A message was queued; events (with an ``event_id``) are tracked until acked."""
        with self._cond:
            acked_ns = self._early.pop(mid, None)
            if event_id is None:
                if acked_ns is None:
                    self._untracked.add(mid)
                return
            self._published += 1
            if acked_ns is None:
                self._pending[mid] = event_id
                return
            self._acknowledged += 1
            self._cond.notify_all()
        if self._on_ack is not None:
            self._on_ack(event_id, acked_ns)

    def acked(self, mid: int, rejected: bool) -> None:
        acked_ns = time.monotonic_ns()
        with self._cond:
            event_id = self._pending.pop(mid, None)
            if event_id is None:
                if mid in self._untracked:
                    self._untracked.discard(mid)
                else:
                    self._early[mid] = acked_ns
                return
            self._acknowledged += 1
            self._rejected += int(rejected)
            self._cond.notify_all()
        if self._on_ack is not None:
            self._on_ack(event_id, acked_ns)

    def wait(self, timeout: float) -> int:
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
