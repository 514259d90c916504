"""SIGINT and SIGTERM turned into a stop that no number of signals can deadlock.

A Python signal handler runs on the main thread between two bytecodes, possibly while that
thread holds a lock the handler would take: a second SIGTERM that arrived inside
``Pipeline.stop`` -> ``Event.set`` waited forever on the Event's own lock (the daemon stayed up
for 20 minutes until SIGKILL). Logging takes locks too. So the handler here only writes the
signal's number to a pipe, which takes no lock, and a thread of its own reads the pipe and acts:

1st signal  stop capturing; what was captured is still inferred and delivered (``on_stop``);
2nd signal  nothing more (``timeout``, a second Ctrl-C, ``kill`` after ``systemctl stop``);
3rd signal  stop waiting for the broker (``on_hurry``): undelivered events stay in the
            outbox on disk, delivered at the next start; nothing is cut short on disk.

Each one is one log line; once a stop was asked for, signals that come after the run are
ignored. systemd's ``TimeoutStopSec`` SIGKILL stays the hard stop: the
outbox and the evidence index are SQLite, and a kill loses nothing they hold.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import structlog

log = structlog.get_logger(__name__)

HURRY_AT = 3  # the signal that stops the wait for the broker's acks
_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_CLOSE = 0  # no signal has number 0: the reader's "we are done"


class StopSignals:
    """Counts SIGINT/SIGTERM and acts on them off the signal handler (see the module)."""

    def __init__(self, on_stop: Callable[[], None], on_hurry: Callable[[], None]) -> None:
        self._on_stop = on_stop
        self._on_hurry = on_hurry
        self.received = 0
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)  # a full pipe must never block the handler
        self._thread = threading.Thread(target=self._read, name="stop-signals", daemon=True)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        # A full pipe (64 KiB of unread signals) fails: the stop is already on its way.
        with contextlib.suppress(OSError):
            os.write(self._write_fd, bytes([signum]))

    def _read(self) -> None:
        while data := os.read(self._read_fd, 64):
            for signum in data:
                if signum == _CLOSE:
                    return
                self.received += 1
                try:
                    self._act(signal.Signals(signum).name)
                except Exception as exc:  # the next signal must still be heard
                    log.error("stop_failed", error=str(exc), error_type=type(exc).__name__)

    def _act(self, name: str) -> None:
        if self.received == 1:
            log.info("stop_requested", signal=name)
            self._on_stop()
        elif self.received == HURRY_AT:
            log.warning(
                "stop_hurried",
                signal=name,
                detail="no longer waiting for the broker; undelivered events stay in the outbox",
            )
            self._on_hurry()
        else:
            log.info("stop_already_requested", signal=name, signals=self.received)

    def _unread(self) -> bool:
        """A signal written after the close marker (the thread no longer reads)."""
        os.set_blocking(self._read_fd, False)
        try:
            return bool(os.read(self._read_fd, 64))
        except BlockingIOError:
            return False

    @contextmanager
    def installed(self) -> Iterator[StopSignals]:
        """Handle SIGINT and SIGTERM for the duration; the previous handlers come back after."""
        previous: list[Any] = [signal.signal(signum, self._handle) for signum in _SIGNALS]
        self._thread.start()
        try:
            yield self
        finally:
            os.write(self._write_fd, bytes([_CLOSE]))
            self._thread.join(timeout=5)
            # Once a stop was asked for, the process is on its way out: a signal of the same
            # burst arriving after the run (measured: 5 ms after it) must not turn a clean end
            # into death by SIGTERM. Otherwise the caller's handlers come back.
            stopping = self.received > 0 or self._unread()
            for signum, handler in zip(_SIGNALS, previous, strict=True):
                signal.signal(signum, signal.SIG_IGN if stopping else handler)
            os.close(self._write_fd)
            os.close(self._read_fd)
