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

import json
import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import structlog

from inspector.errors import ConfigError
from inspector.publishing.mqtt import AckListener, MqttPublisher

log = structlog.get_logger(__name__)

WhenFull = Literal["drop_oldest", "drop_newest"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    payload BLOB NOT NULL
)
"""


class Outbox:
    """Thread-safe: written by the pipeline, emptied by paho's network thread."""

    def __init__(self, path: Path, max_events: int, when_full: WhenFull = "drop_oldest") -> None:
        self.path = path
        self.max_events = max_events
        self.when_full = when_full
        self.dropped = 0  # events given up because the outbox was full
        self.write_errors = 0  # events that could not be stored (disk full, I/O error)
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                path, check_same_thread=False, isolation_level=None, timeout=10
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
            (self._count,) = self._db.execute("SELECT COUNT(*) FROM events").fetchone()
        except (OSError, sqlite3.DatabaseError) as exc:
            raise ConfigError(f"{path}: cannot open the outbox: {exc}") from None

    def __len__(self) -> int:
        with self._lock:
            return int(self._count)

    def put(self, event_id: str, payload: bytes) -> bool:
        """Store one event; False when it could not be stored (full and dropping the newest,
        or a write error). The caller publishes it either way."""
        with self._lock:
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
                    "INSERT OR IGNORE INTO events (event_id, payload) VALUES (?, ?)",
                    (event_id, payload),
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
            try:
                cursor = self._db.execute("DELETE FROM events WHERE event_id = ?", (event_id,))
                self._count -= cursor.rowcount
            except sqlite3.Error as exc:  # kept: at worst it is sent again after a restart
                log.warning("outbox_remove_failed", event_id=event_id, error=str(exc))

    def remove_acked(self, event_id: str, _acked_ns: int) -> None:
        """The publisher's ack listener (called on paho's network thread)."""
        self.remove(event_id)

    def backlog(self) -> list[tuple[str, bytes]]:
        """Every stored event, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT event_id, payload FROM events ORDER BY seq").fetchall()
        return [(str(event_id), bytes(payload)) for event_id, payload in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


class DurableSink:
    """The pipeline's event sink: outbox first, then MQTT; the broker's ack empties the outbox."""

    def __init__(self, publisher: MqttPublisher, outbox: Outbox) -> None:
        self.publisher = publisher
        self.outbox = outbox

    def resend_backlog(self) -> int:
        """Publish what a previous run left unacknowledged, oldest first; returns how many."""
        backlog = self.outbox.backlog()
        for event_id, payload in backlog:
            self.publisher.publish_payload(event_id, payload)
        if backlog:
            log.info("outbox_backlog_resent", events=len(backlog), path=str(self.outbox.path))
        return len(backlog)

    def publish_event(self, event: Mapping[str, Any]) -> int:
        payload = json.dumps(
            event, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()
        event_id = str(event["event_id"])
        self.outbox.put(event_id, payload)
        return self.publisher.publish_payload(event_id, payload)

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
