"""One verdict per part, by a deadline: schema ``inspector.verdict/1`` (DESIGN.md).

A PLC that ejects bad parts needs an answer for every part, in time. The tracker holds,
per camera and in capture order, the frames a queue took in and that have no verdict yet.
Each is decided by its inference result (``ok`` or ``nok``), by a drop (a ``drop_oldest``
queue gave it up: the part passed uninspected), or by its deadline: at ``captured_at +
deadline_ms`` a ``late`` verdict carrying the line's fail-safe action goes out, and the real
verdict follows with ``"late": true``.

The deadline is kept by a thread of the tracker's own, never by the inference thread: that
is the thread that is late. Verdicts leave in frame order per camera (the first verdict of
each part; a real verdict that follows a late one comes when it is ready), one at a time,
through the ``emit`` callback.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import structlog

from inspector.types.frames import Frame, iso_utc, utc_now
from inspector.types.results import FrameResult

log = structlog.get_logger(__name__)

VERDICT_SCHEMA = "inspector.verdict/1"
OnLate = Literal["reject", "pass"]
Emit = Callable[[dict[str, Any]], None]

_NEVER_NS = 2**63  # "no deadline": later than any monotonic clock reading


@dataclass(frozen=True, slots=True)
class _Outcome:
    verdict: Literal["ok", "nok"] | None  # None: dropped, never inspected
    classes: tuple[str, ...]
    inspected: bool
    ready_ns: int


@dataclass(slots=True, eq=False)
class _Part:
    frame: Frame
    event_id: str
    deadline_ns: int  # _NEVER_NS without a deadline
    late_sent: bool = False
    outcome: _Outcome | None = None


def _key(frame: Frame) -> tuple[str, int, int]:
    # The frame id alone may repeat after a camera restarts its block IDs; with the capture
    # time it cannot.
    return frame.camera_id, frame.frame_id, frame.captured_ns


class VerdictTracker:
    """Thread-safe: ``captured``/``dropped`` come from capture threads (under their queue's
    lock: they only record), ``result`` from a sink thread, deadlines from its own thread."""

    def __init__(
        self,
        line: str,
        deadline_ms: float | None,
        on_late: OnLate,
        emit: Emit,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.line, self.on_late, self._emit, self._clock = line, on_late, emit, clock
        self.deadline_ns = None if deadline_ms is None else int(deadline_ms * 1e6)
        self.deadline_ms = deadline_ms
        self._parts: dict[str, deque[_Part]] = {}
        self._index: dict[tuple[str, int, int], _Part] = {}
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        # Held while a batch of verdicts goes out, so two threads never interleave theirs.
        self._emitting = threading.Lock()
        self._next_wake_ns = _NEVER_NS
        self._dirty = False  # a drop waits for the timer thread to send its verdict
        self._closed = False
        self.unmatched = 0  # results for frames the tracker never heard of
        self._thread = threading.Thread(target=self._keep_deadlines, name="verdicts", daemon=True)
        self._thread.start()

    # -- what happens to frames --------------------------------------------------------------

    def captured(self, frame: Frame, event_id: str) -> None:
        """A queue took the frame in: its deadline runs from its capture."""
        with self._lock:
            if not self._closed:
                self._track(frame, event_id)

    def _track(self, frame: Frame, event_id: str) -> _Part:
        deadline_ns = _NEVER_NS
        if self.deadline_ns is not None:
            deadline_ns = frame.captured_ns + self.deadline_ns
        part = _Part(frame, event_id, deadline_ns)
        self._parts.setdefault(frame.camera_id, deque()).append(part)
        self._index[_key(frame)] = part
        if deadline_ns < self._next_wake_ns:
            self._next_wake_ns = deadline_ns
            self._wake.notify()
        return part

    def dropped(self, frame: Frame) -> None:
        """A ``drop_oldest`` queue gave the frame up: the part passes uninspected. Its late
        verdict goes out from the timer thread (this runs under the queue's lock)."""
        with self._lock:
            part = self._index.get(_key(frame))
            if part is None or part.outcome is not None:
                return
            part.outcome = _Outcome(None, (), False, self._clock())
            self._dirty = True
            self._wake.notify()

    def result(self, result: FrameResult) -> None:
        """The frame's inference is done: its verdict goes out now, or once the parts captured
        before it have theirs."""
        frame = result.frame
        classes = tuple(dict.fromkeys(region.label for region in result.regions))
        outcome = _Outcome(result.verdict, classes, result.tiles > 0, self._clock())
        with self._emitting:
            with self._lock:
                part = self._index.get(_key(frame))
                if part is None:  # never heard of (a pipeline without capture hooks): now, then
                    self.unmatched += 1
                    part = self._track(frame, result.event_id)
                if part.outcome is not None:
                    return
                part.outcome = outcome
                messages = self._walk(outcome.ready_ns)
            self._send(messages)

    def close(self) -> None:
        """Stop the timer; every part still without a verdict gets a late one (the run ends
        without deciding it), and those already late get nothing more."""
        with self._lock:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout=5)
        with self._emitting:
            with self._lock:
                messages = self._walk(_NEVER_NS)
                undecided = len(self._index)
                self._parts.clear()
                self._index.clear()
            self._send(messages)
        if undecided:
            log.warning("verdicts_never_decided", parts=undecided, note="late verdicts were sent")

    @property
    def pending(self) -> int:
        """Parts captured whose real verdict has not gone out yet."""
        with self._lock:
            return len(self._index)

    # -- the deadline thread -------------------------------------------------------------------

    def _keep_deadlines(self) -> None:
        while True:
            with self._lock:
                while not self._closed and not self._dirty:
                    wait_ns = self._next_wake_ns - self._clock()
                    if wait_ns <= 0:
                        break
                    self._wake.wait(None if self._next_wake_ns == _NEVER_NS else wait_ns / 1e9)
                if self._closed:
                    return
            with self._emitting:
                with self._lock:
                    messages = self._walk(self._clock())
                self._send(messages)

    # -- deciding ----------------------------------------------------------------------------

    def _walk(self, now_ns: int) -> list[dict[str, Any]]:
        """Under the lock: every verdict that can go out at ``now_ns``, in order, and the time
        of the next deadline. A part whose first verdict has not gone out holds back the parts
        behind it, unless its deadline has passed: then its late verdict goes out."""
        messages: list[dict[str, Any]] = []
        next_ns = _NEVER_NS
        for camera, parts in self._parts.items():
            kept: deque[_Part] = deque()
            blocked = False
            for part in parts:
                outcome = part.outcome
                if part.late_sent:
                    self._after_late(part, messages, kept)
                    continue
                if blocked:
                    kept.append(part)
                    continue
                if outcome is not None and outcome.ready_ns <= part.deadline_ns:
                    if outcome.verdict is None:  # dropped before its deadline
                        messages.append(self._late(part, dropped=True))
                    else:
                        messages.append(self._message(part, outcome, late=False))
                    del self._index[_key(part.frame)]
                    continue
                if outcome is not None or now_ns >= part.deadline_ns:
                    # Missed its deadline: the fail-safe first, then (if it was inspected at
                    # all) the real verdict on the next pass.
                    messages.append(self._late(part, dropped=outcome is not None and
                                               outcome.verdict is None))  # fmt: skip
                    part.late_sent = True
                    self._after_late(part, messages, kept)
                    continue
                blocked = True  # waiting for its result, within its deadline
                next_ns = min(next_ns, part.deadline_ns)
                kept.append(part)
            self._parts[camera] = kept
        self._next_wake_ns = next_ns
        self._dirty = False
        return messages

    def _after_late(self, part: _Part, messages: list[dict[str, Any]], kept: deque[_Part]) -> None:
        """A part whose late verdict is out: its real verdict once decided (none for a frame
        that was dropped), and it leaves the tracker; until then it waits in ``kept``."""
        outcome = part.outcome
        if outcome is None:
            kept.append(part)
            return
        if outcome.verdict is not None:
            messages.append(self._message(part, outcome, late=True))
        del self._index[_key(part.frame)]

    def _send(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            try:
                self._emit(message)
            except Exception as exc:  # one verdict's listener must not cost the others
                log.warning("verdict_emit_failed", error=str(exc), event_id=message["event_id"])

    # -- the message -------------------------------------------------------------------------

    def _base(self, part: _Part) -> dict[str, Any]:
        frame = part.frame
        deadline_at: datetime | None = None
        if self.deadline_ms is not None:
            deadline_at = frame.captured_at + timedelta(milliseconds=self.deadline_ms)
        now_ns = self._clock()
        return {
            "schema": VERDICT_SCHEMA,
            "line": self.line,
            "camera": frame.camera_id,
            "frame_id": frame.frame_id,
            "part_id": frame.frame_id if frame.part_id is None else frame.part_id,
            "captured_at": iso_utc(frame.captured_at),
            "deadline_at": None if deadline_at is None else iso_utc(deadline_at),
            "published_at": iso_utc(utc_now()),
            "latency_ms": round((now_ns - frame.captured_ns) / 1e6, 3),
            "event_id": part.event_id,
        }

    def _late(self, part: _Part, dropped: bool) -> dict[str, Any]:
        message = self._base(part)
        message.update(verdict="late", classes=[], late=True, action=self.on_late,
                       inspected=False)  # fmt: skip
        if dropped:
            message["dropped"] = True  # the queue gave it up: no real verdict follows
        return message

    def _message(self, part: _Part, outcome: _Outcome, late: bool) -> dict[str, Any]:
        message = self._base(part)
        message.update(
            verdict=outcome.verdict,
            classes=list(outcome.classes),
            late=late,
            action="reject" if outcome.verdict == "nok" else "pass",
            inspected=outcome.inspected,
        )
        return message
