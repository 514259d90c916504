"""Disk space the outbox holds back for itself: a preallocated file beside it
(``<outbox>.reserve``, ``outbox.reserve_mb``), so that a disk filled by something else (logs,
a core dump, the evidence of another line) still takes the events that fit the reserve.

A write that finds the disk full gives back one step of the file and is tried again; the
first use of an episode is logged, every step counted. The file grows back, step by step,
once the filesystem has that much free again and a step to spare: never by taking the last
free bytes, which the outbox itself may be about to need.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import structlog

log = structlog.get_logger(__name__)

_MIN_STEP = 64 * 1024
_STEPS = 16  # a filler that races the outbox takes a step of the reserve, not all of it
_REFILL_EVERY_S = 1.0  # statvfs at most this often, not once per event
_NO_ROOM = (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR)  # a full disk, as SQLite reports it
_T = TypeVar("_T")


class Reserve:
    """Not thread-safe: the outbox calls it under its lock."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.target = max(0, size)
        self.step = max(_MIN_STEP, self.target // _STEPS)
        self.released = 0  # steps given back to a full disk, over this run
        self.held = 0
        self._using = False  # in an episode of a full disk: logged once, until refilled
        self._next_refill = 0.0
        self._fd: int | None = None
        if self.target == 0:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # a reserve configured away gives its space back
            return
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self.held = os.fstat(self._fd).st_size  # a previous run's reserve, kept on disk
        if self.held > self.target:  # configured smaller since
            self.held = self.target
            os.ftruncate(self._fd, self.held)
        # A step to spare at start too: a disk smaller than the reserve keeps room for the
        # others (the evidence, the logs) and the reserve holds what it could get.
        self._grow(spare=self.step)
        if self.held < self.target:
            log.warning(
                "outbox_reserve_short",
                path=str(path),
                held_bytes=self.held,
                reserve_bytes=self.target,
                note="the disk has no room for it now; it grows back once there is",
            )

    @property
    def in_use(self) -> bool:
        """Given back in part, and not grown back yet: the disk is (or was lately) full."""
        return self._using

    def disk_full(self) -> bool:
        """Whether the filesystem has less than a step free: a write that failed for room
        failed for want of disk, not of SQLite's own limits (max_page_count)."""
        if self._fd is None:
            return False
        disk = os.fstatvfs(self._fd)
        return disk.f_bavail * disk.f_frsize < self.step

    def release(self) -> bool:
        """Give one step back to the filesystem; False when nothing is left to give."""
        if self._fd is None or self.held == 0:
            return False
        self.held = max(0, self.held - self.step)
        os.ftruncate(self._fd, self.held)  # frees the blocks past it at once
        self.released += 1
        if not self._using:
            self._using = True
            log.error(
                "outbox_reserve_used",
                path=str(self.path),
                held_bytes=self.held,
                note="the disk is full: events are kept in the outbox's reserve",
            )
        return True

    def refill(self, at_once: bool = False) -> None:
        """Grow back towards the target while the filesystem has a step to spare beyond it;
        at most once a second unless ``at_once``."""
        if self._fd is None or self.held >= self.target:
            return
        now = time.monotonic()
        if not at_once and now < self._next_refill:
            return
        self._next_refill = now + _REFILL_EVERY_S
        self._grow(spare=self.step)

    def _grow(self, spare: int) -> None:
        assert self._fd is not None
        while self.held < self.target:
            grow = min(self.step, self.target - self.held)
            try:
                disk = os.fstatvfs(self._fd)
                if disk.f_bavail * disk.f_frsize < grow + spare:
                    break
                os.posix_fallocate(self._fd, self.held, grow)
            except OSError:
                # A failed fallocate may leave some blocks allocated: give them back, so that
                # what the file holds is what ``held`` says.
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, self.held)
                break
            self.held += grow
        if self._using and self.held >= self.target:
            self._using = False
            log.info("outbox_reserve_restored", path=str(self.path), reserve_bytes=self.target)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def with_room(db: sqlite3.Connection, reserve: Reserve, write: Callable[[], _T]) -> _T:
    """``write`` (one transaction on ``db``), tried again when it finds the disk full: first
    after folding the WAL into the database (its frames repeat pages, so truncating it frees
    more than the database grows), then with a step of the reserve given back each time,
    until it goes through or the reserve is spent (its error raised)."""
    folded = False
    while True:
        try:
            return write()
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            full = getattr(exc, "sqlite_errorcode", 0) & 0xFF in _NO_ROOM
            if not (full and reserve.disk_full()):
                raise
            if not folded:
                folded = checkpoint(db)
                if folded:
                    continue
            if not reserve.release():
                raise
            folded = False  # the room released may let the WAL be folded in now


def checkpoint(db: sqlite3.Connection) -> bool:
    """The WAL folded into the database and truncated; False if it could not be (the disk
    full while the database grows): nothing is lost, the WAL stays as it was."""
    try:
        (busy, _, _) = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    except sqlite3.Error as exc:
        log.debug("outbox_checkpoint_failed", error=str(exc))
        return False
    return not busy
