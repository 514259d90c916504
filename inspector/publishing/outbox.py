"""The durable outbox: every defect event is on disk before it is published, and leaves
the disk only when the broker has acknowledged it (QoS 1).

A broker outage or a killed process loses nothing: at the next start the backlog is
published again, oldest first, before new events (consumers drop duplicates by
``event_id``: delivery is at least once). SQLite in WAL mode, synchronous=NORMAL:
a committed event survives the process being killed; only a power cut can take the
last few commits. The outbox is bounded; when full it says so loudly and gives up
the oldest (or newest) event, as configured.

On disk it takes what it holds: the WAL is kept small (autocheckpoint, journal_size_limit)
and truncated after deliveries, and a new outbox gives freed pages back (auto_vacuum). A
disk filled by something else still takes ``outbox.reserve_mb`` of events: a preallocated
file beside it (:mod:`.reserve`) is given back step by step when a write finds the disk
full, and grows again once there is room.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Protocol

import structlog

from inspector.errors import ConfigError
from inspector.publishing.acks import AckListener
from inspector.publishing.reserve import Reserve, checkpoint, with_room
from inspector.publishing.settings import RESERVE_MB

log = structlog.get_logger(__name__)

WhenFull = Literal["drop_oldest", "drop_newest"]

# The WAL between checkpoints: SQLite's default (1000 pages) leaves a 4 MB file for good.
_WAL_AUTOCHECKPOINT_PAGES = 128
_WAL_LIMIT_BYTES = 512 * 1024  # what a restarted WAL is cut back to
_COMPACT_EVERY_S = 1.0  # a truncating checkpoint after deliveries, at most this often

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    payload BLOB NOT NULL,
    topic TEXT
)
"""


def _migrate(db: sqlite3.Connection) -> None:
    """An outbox written before verdicts has no ``topic`` column: add it, empty (its rows are
    defect events, which go to the defects topic). Adding a nullable column only rewrites the
    table's definition, so the rows on disk are kept as they are."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(events)")}
    if "topic" not in columns:
        db.execute("ALTER TABLE events ADD COLUMN topic TEXT")


def _lock_file(path: Path) -> int:
    """Hold an OS lock on ``<outbox>.lock`` for the life of the process, or say who holds it.

    Two daemons on one outbox would each republish the other's unacknowledged events.
    flock, not SQLite's own locking: it is released by the kernel when a process dies,
    so a SIGKILLed daemon never blocks its successor.
    """
    lock_path = path.with_name(path.name + ".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot open the outbox: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        if exc.errno not in (errno.EAGAIN, errno.EACCES):
            raise ConfigError(f"{path}: cannot lock the outbox: {exc.strerror}") from None
        raise ConfigError(
            f"{path}: outbox in use by another daemon (PID {holder}); "
            "each daemon needs its own outbox.path"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


class Outbox:
    """Thread-safe: written by the pipeline, emptied by paho's network thread."""

    def __init__(
        self,
        path: Path,
        max_events: int,
        when_full: WhenFull = "drop_oldest",
        reserve_mb: float = RESERVE_MB,
    ) -> None:
        self.path = path
        self.max_events = max_events
        self.when_full = when_full
        self.dropped = 0  # events given up because the outbox was full
        self.write_errors = 0  # events that could not be stored (disk full, I/O error)
        # Acknowledged events whose row could not be deleted (disk full): deleted again on
        # the next chance, so a restart does not resend what the broker already has.
        self._unremoved: set[str] = set()
        self._lock = threading.Lock()
        self._lock_fd = _lock_file(path)
        self._compacted_at = 0.0
        self._closed = False
        try:
            self._db = sqlite3.connect(
                path, check_same_thread=False, isolation_level=None, timeout=10
            )
            self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # takes only on a new file
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(f"PRAGMA wal_autocheckpoint={_WAL_AUTOCHECKPOINT_PAGES}")
            self._db.execute(f"PRAGMA journal_size_limit={_WAL_LIMIT_BYTES}")
            self._db.execute(_SCHEMA)
            _migrate(self._db)
            (self._count,) = self._db.execute("SELECT COUNT(*) FROM events").fetchone()
        except (OSError, sqlite3.DatabaseError) as exc:
            os.close(self._lock_fd)
            raise ConfigError(f"{path}: cannot open the outbox: {exc}") from None
        try:  # after the database: a reserve must not take the room its schema needs
            self._reserve = Reserve(path.with_name(path.name + ".reserve"), int(reserve_mb * 2**20))
        except OSError as exc:
            self._db.close()
            os.close(self._lock_fd)
            raise ConfigError(f"{path}: cannot make the outbox's reserve: {exc.strerror}") from None

    def __len__(self) -> int:
        with self._lock:
            return int(self._count)

    def put(self, event_id: str, payload: bytes, topic: str | None = None) -> bool:
        """Store one event (``topic``: where it goes, None for the defects topic); False when it
        could not be stored (full and dropping the newest, or a write error). The caller
        publishes it either way."""
        with self._lock:
            self._delete_unremoved()
            if self._count >= self.max_events and self.when_full == "drop_newest":
                self._full(event_id)
                return False
            try:
                dropped, added = with_room(
                    self._db, self._reserve, lambda: self._insert(event_id, payload, topic)
                )
            except sqlite3.Error as exc:  # disk full, I/O error: inspection must go on
                self.write_errors += 1
                log.error("outbox_write_failed", event_id=event_id, error=str(exc))
                return False
            if dropped is not None:
                self._count -= 1
                self._full(dropped)
            self._count += added
            if self._reserve.in_use:
                # On a full disk the WAL's room is the reserve's: folded in after each write,
                # the reserve goes to events, not to a WAL of frames that repeat pages.
                checkpoint(self._db)
            self._reserve.refill()
            return True

    def _insert(self, event_id: str, payload: bytes, topic: str | None) -> tuple[str | None, int]:
        """In one transaction, so that a retry after a full disk finds nothing half done: the
        oldest event given up to make room (or None), and 1 if this one was new."""
        dropped: str | None = None
        self._db.execute("BEGIN IMMEDIATE")
        if self._count >= self.max_events:
            (dropped,) = self._db.execute(
                "SELECT event_id FROM events ORDER BY seq LIMIT 1"
            ).fetchone()
            self._db.execute("DELETE FROM events WHERE event_id = ?", (dropped,))
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO events (event_id, payload, topic) VALUES (?, ?, ?)",
            (event_id, payload, topic),
        )
        self._db.execute("COMMIT")
        return dropped, cursor.rowcount

    def _full(self, dropped_id: str) -> None:
        self.dropped += 1
        log.error(
            "outbox_full",
            path=str(self.path),
            max_events=self.max_events,
            policy=self.when_full,
            dropped_event=dropped_id,
            dropped_total=self.dropped,
        )

    def remove(self, event_id: str) -> None:
        with self._lock:
            self._unremoved.add(event_id)
            self._delete_unremoved()

    def _delete_unremoved(self) -> None:
        """Delete acknowledged rows in one transaction; a delete needs WAL space too, so on
        a full disk it may take from the reserve like a write."""
        if not self._unremoved:
            return
        try:
            deleted = with_room(self._db, self._reserve, self._delete_acknowledged)
        except sqlite3.Error as exc:  # kept, and tried again with the next ack or at close
            log.warning("outbox_remove_failed", events=len(self._unremoved), error=str(exc))
            return
        self._count -= deleted
        self._unremoved.clear()
        self._compact()

    def _delete_acknowledged(self) -> int:
        self._db.execute("BEGIN IMMEDIATE")
        cursor = self._db.executemany(
            "DELETE FROM events WHERE event_id = ?", [(e,) for e in self._unremoved]
        )
        self._db.execute("COMMIT")
        return cursor.rowcount

    def _compact(self, force: bool = False) -> None:
        """After deliveries, at most once a second: freed pages back to the disk (a new
        outbox's), the WAL folded in and truncated, the reserve grown back if it was used.
        A failure (the disk full mid checkpoint) loses nothing; the next one catches up."""
        now = time.monotonic()
        if not force and now - self._compacted_at < _COMPACT_EVERY_S:
            return
        self._compacted_at = now
        try:
            self._db.execute("PRAGMA incremental_vacuum").fetchall()  # one page per step
        except sqlite3.Error as exc:
            log.debug("outbox_vacuum_failed", path=str(self.path), error=str(exc))
        checkpoint(self._db)
        self._reserve.refill(at_once=force)

    @property
    def reserve_bytes(self) -> int:
        """What the reserve holds now (``outbox.reserve_mb`` when it is whole)."""
        with self._lock:
            return self._reserve.held

    @property
    def reserve_used(self) -> int:
        """Steps of the reserve given to events or deletes on a full disk, over this run."""
        with self._lock:
            return self._reserve.released

    @property
    def undeletable(self) -> int:
        """Acknowledged events still on disk because their rows could not be deleted."""
        with self._lock:
            return len(self._unremoved)

    def remove_acked(self, event_id: str, _acked_ns: int) -> None:
        """The publisher's ack listener (called on paho's network thread)."""
        self.remove(event_id)

    def backlog(self) -> list[tuple[str, bytes]]:
        """Every stored event, oldest first."""
        return [(event_id, payload) for event_id, payload, _ in self.messages()]

    def messages(self) -> list[tuple[str, bytes, str | None]]:
        """Every stored event with its topic (None: the defects topic), oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT event_id, payload, topic FROM events ORDER BY seq"
            ).fetchall()
            unremoved = set(self._unremoved)
        return [
            (str(e), bytes(payload), None if topic is None else str(topic))
            for e, payload, topic in rows
            if str(e) not in unremoved
        ]

    def close(self) -> None:
        with self._lock:
            if self._closed:  # a second close (a test's finally, a sink's) does nothing
                return
            self._closed = True
            self._delete_unremoved()
            if self._unremoved:
                log.error(
                    "outbox_rows_not_deleted",
                    path=str(self.path),
                    events=len(self._unremoved),
                    note="acknowledged, will be sent again at the next start",
                )
            self._compact(force=True)
            self._db.close()
            self._reserve.close()
            os.close(self._lock_fd)  # releases the flock


class AcknowledgedTransport(Protocol):
    """What the outbox sends through: a transport whose receiver acknowledges each event
    (MQTT at QoS 1 today), and who calls :meth:`Outbox.remove_acked` when it does."""

    def publish_payload(
        self, event_id: str, payload: bytes, topic: str | None = None
    ) -> object: ...

    def publish_camera_status(self, camera: str, status: Mapping[str, Any]) -> None: ...

    def publish_stats(self, stats: Mapping[str, Any]) -> None: ...


class DurableSink:
    """Events to the outbox first, then to the transport; its ack empties the outbox.

    Until the publisher is *live* (connected once, backlog resent) events go to disk only;
    :meth:`go_live` resends everything stored, oldest first, and from then on each event
    is stored and published. One lock orders both, so no event is sent twice by this run.
    """

    def __init__(self, publisher: AcknowledgedTransport, outbox: Outbox) -> None:
        self.publisher = publisher
        self.outbox = outbox
        self._lock = threading.Lock()
        self._live = False

    def go_live(self) -> int:
        """Publish what is on disk (a previous run's or this one's), then every new event."""
        with self._lock:
            backlog = self.outbox.messages()
            for event_id, payload, topic in backlog:
                self.publisher.publish_payload(event_id, payload, topic)
            self._live = True
        if backlog:
            log.info("outbox_backlog_resent", events=len(backlog), path=str(self.outbox.path))
        return len(backlog)

    def publish_event(self, event: Mapping[str, Any]) -> None:
        payload = json.dumps(
            event, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()
        self.publish_message(str(event["event_id"]), payload)

    def publish_message(self, key: str, payload: bytes, topic: str | None = None) -> None:
        """One serialised message (``topic`` None: the defects topic), kept until acknowledged
        under ``key``, unique per message."""
        with self._lock:
            stored = self.outbox.put(key, payload, topic)
            if self._live:
                self.publisher.publish_payload(key, payload, topic)
            elif not stored:
                log.error("event_lost", event_id=key, reason="broker down and outbox failed")

    def unsent(self) -> int:
        """Events not yet handed to the broker: all of the outbox until the first connection."""
        with self._lock:
            return 0 if self._live else len(self.outbox)

    def publish_camera_status(self, camera: str, status: Mapping[str, Any]) -> None:
        self.publisher.publish_camera_status(camera, status)

    def publish_stats(self, stats: Mapping[str, Any]) -> None:
        stats = {**stats, "outbox": {"backlog": len(self.outbox), "dropped": self.outbox.dropped,
                                     "write_errors": self.outbox.write_errors,
                                     "reserve_bytes": self.outbox.reserve_bytes,
                                     "reserve_used": self.outbox.reserve_used}}  # fmt: skip
        self.publisher.publish_stats(stats)


def chain_acks(*listeners: AckListener | None) -> AckListener:
    def acknowledged(event_id: str, acked_ns: int) -> None:
        for listener in listeners:
            if listener is not None:
                listener(event_id, acked_ns)

    return acknowledged
