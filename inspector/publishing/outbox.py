"""The durable outbox: every defect event is on disk before it is published, and leaves
the disk only when the broker has acknowledged it (QoS 1).

A broker outage or a killed process loses nothing: at the next start the backlog is
published again, oldest first, before new events (consumers drop duplicates by
``event_id``: delivery is at least once). SQLite in WAL mode, synchronous=NORMAL:
a committed event survives the process being killed; only a power cut can take the
last few commits. The outbox is bounded; when full it says so loudly and gives up
the oldest (or newest) event, as configured.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Protocol

import structlog

from inspector.errors import ConfigError
from inspector.publishing.acks import AckListener

log = structlog.get_logger(__name__)

WhenFull = Literal["drop_oldest", "drop_newest"]

_RESERVE_BYTES = 256 * 1024  # room for a few WAL frames of deletes

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

    def __init__(self, path: Path, max_events: int, when_full: WhenFull = "drop_oldest") -> None:
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
        # Space kept aside on the outbox's disk: released when the disk is full, so that the
        # rows of acknowledged events can still be deleted instead of sent again next start.
        self._reserve = path.with_name(path.name + ".reserve")
        try:
            if not self._reserve.exists():
                self._reserve.write_bytes(bytes(_RESERVE_BYTES))
        except OSError as exc:
            log.warning("outbox_reserve_failed", path=str(self._reserve), error=str(exc))
        try:
            self._db = sqlite3.connect(
                path, check_same_thread=False, isolation_level=None, timeout=10
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
            _migrate(self._db)
            (self._count,) = self._db.execute("SELECT COUNT(*) FROM events").fetchone()
        except (OSError, sqlite3.DatabaseError) as exc:
            os.close(self._lock_fd)
            raise ConfigError(f"{path}: cannot open the outbox: {exc}") from None

    def __len__(self) -> int:
        with self._lock:
            return int(self._count)

    def put(self, event_id: str, payload: bytes, topic: str | None = None) -> bool:
        """Store one event (``topic``: where it goes, None for the defects topic); False when it
        could not be stored (full and dropping the newest, or a write error). The caller
        publishes it either way."""
        with self._lock:
            self._delete_unremoved()
            try:
                if self._count >= self.max_events:
                    if self.when_full == "drop_newest":
                        self._full(event_id)
                        return False
                    oldest = self._db.execute(
                        "SELECT event_id FROM events ORDER BY seq LIMIT 1"
                    ).fetchone()
                    self._db.execute("DELETE FROM events WHERE event_id = ?", oldest)
                    self._count -= 1
                    self._full(oldest[0])
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO events (event_id, payload, topic) VALUES (?, ?, ?)",
                    (event_id, payload, topic),
                )
                self._count += cursor.rowcount
                return True
            except sqlite3.Error as exc:  # disk full, I/O error: inspection must go on
                self.write_errors += 1
                log.error("outbox_write_failed", event_id=event_id, error=str(exc))
                return False

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
        """Delete acknowledged rows in one transaction; on a full disk, give up the reserve
        file once, so that a delete (which needs WAL space too) can still go through."""
        if not self._unremoved:
            return
        for _ in range(2):
            try:
                self._db.execute("BEGIN IMMEDIATE")
                cursor = self._db.executemany(
                    "DELETE FROM events WHERE event_id = ?", [(e,) for e in self._unremoved]
                )
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:  # kept, and tried again with the next ack or at close
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if self._release_reserve():
                    continue
                log.warning("outbox_remove_failed", events=len(self._unremoved), error=str(exc))
                return
            self._count -= cursor.rowcount
            self._unremoved.clear()
            return

    def _release_reserve(self) -> bool:
        try:
            self._reserve.unlink()
        except FileNotFoundError:
            return False
        log.error("outbox_disk_full", path=str(self.path), note="reserve released for deletes")
        return True

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
            self._delete_unremoved()
            if self._unremoved:
                log.error(
                    "outbox_rows_not_deleted",
                    path=str(self.path),
                    events=len(self._unremoved),
                    note="acknowledged, will be sent again at the next start",
                )
            self._db.close()
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
                                     "write_errors": self.outbox.write_errors}}  # fmt: skip
        self.publisher.publish_stats(stats)


def chain_acks(*listeners: AckListener | None) -> AckListener:
    def acknowledged(event_id: str, acked_ns: int) -> None:
        for listener in listeners:
            if listener is not None:
                listener(event_id, acked_ns)

    return acknowledged
