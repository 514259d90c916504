"""The evidence index: one SQLite row per stored item (an event's pictures, or one
uncertain tile), in WAL mode. It knows nothing of files; :mod:`.store` keeps the two in
step."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

from inspector.errors import ConfigError, DatasetError

Kind = Literal["event", "uncertain"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('event', 'uncertain')),
    event_id TEXT NOT NULL,
    camera TEXT NOT NULL,
    frame_id INTEGER NOT NULL,
    captured_at TEXT NOT NULL,         -- UTC, RFC 3339 with a Z
    captured_epoch REAL NOT NULL,      -- the same moment: what retention orders by
    classes TEXT NOT NULL,             -- JSON list
    scores TEXT NOT NULL,              -- JSON list, one per class
    paths TEXT NOT NULL,               -- JSON list of paths relative to the evidence root
    bytes INTEGER NOT NULL,            -- disk used by those files, in whole blocks
    tile INTEGER NOT NULL DEFAULT -1,  -- an uncertain tile's index in the grid; -1: event
    proposed_label TEXT,               -- uncertain: the model's best non-ok class, its score
    proposed_score REAL,
    UNIQUE (kind, event_id, tile)
);
CREATE INDEX IF NOT EXISTS items_age ON items (captured_epoch, id);
CREATE INDEX IF NOT EXISTS items_camera ON items (camera, captured_epoch, id);
"""
_FIELDS = (
    "kind, event_id, camera, frame_id, captured_at, captured_epoch, classes, scores, paths, "
    "bytes, tile, proposed_label, proposed_score"
)
_SELECT = f"SELECT {_FIELDS}, id FROM items"
_OLDEST_FIRST = "ORDER BY captured_epoch, id"
_WAL_LIMIT_BYTES = 64 * 1024
_WAL_AUTOCHECKPOINT_PAGES = 16


@dataclass(frozen=True, slots=True)
class EvidenceItem:
    kind: Kind
    event_id: str
    camera: str
    frame_id: int
    captured_at: str  # UTC, RFC 3339 with a Z
    captured_epoch: float
    classes: tuple[str, ...]
    scores: tuple[float, ...]
    paths: tuple[str, ...]  # relative to the evidence root, POSIX separators
    bytes: int
    tile: int | None = None  # uncertain items: the tile's index in the frame's grid
    proposed_label: str | None = None
    proposed_score: float | None = None
    id: int = 0  # the row's id once stored


class Stored(NamedTuple):
    """What deleting an item needs."""

    id: int
    paths: tuple[str, ...]
    bytes: int


class Index:
    """Not thread-safe on its own: the store serialises every call."""

    def __init__(self, path: Path) -> None:
        try:
            self._db = sqlite3.connect(
                path, check_same_thread=False, isolation_level=None, timeout=10
            )
            # Set before the first table exists, so a new index gives freed pages back to the
            # disk (an old one keeps its pages for reuse: the store counts them either way).
            self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            self._db.execute("PRAGMA journal_mode=WAL")
            # The WAL counts in the store's bound: kept to a few pages between the store's
            # own checkpoints (compact), and cut back to this size when SQLite restarts it.
            self._db.execute(f"PRAGMA journal_size_limit={_WAL_LIMIT_BYTES}")
            self._db.execute(f"PRAGMA wal_autocheckpoint={_WAL_AUTOCHECKPOINT_PAGES}")
            # A commit survives a killed process; a power cut may lose the last rows, whose
            # files then become orphans for tidy, never the other way round.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"{path}: cannot open the evidence index: {exc}") from None

    @classmethod
    def read_only(cls, path: Path) -> Index:
        """The index of a store another process may be writing (a running daemon's): no
        lock, no schema change, only reads."""
        index = cls.__new__(cls)
        try:
            index._db = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
            )
            index._db.execute("SELECT count(*) FROM items").fetchone()
        except (OSError, sqlite3.Error) as exc:
            raise DatasetError(f"{path}: cannot read the evidence index: {exc}") from None
        return index

    def paths_of(self, kind: Kind, event_id: str, tile: int) -> list[str] | None:
        row = self._db.execute(
            "SELECT paths FROM items WHERE kind = ? AND event_id = ? AND tile = ?",
            (kind, event_id, tile),
        ).fetchone()
        return None if row is None else list(json.loads(row[0]))

    def insert(self, item: EvidenceItem) -> int:
        cursor = self._db.execute(
            f"INSERT INTO items ({_FIELDS}) VALUES ({', '.join('?' * 13)})",
            (
                item.kind,
                item.event_id,
                item.camera,
                item.frame_id,
                item.captured_at,
                item.captured_epoch,
                json.dumps(list(item.classes)),
                json.dumps(list(item.scores)),
                json.dumps(list(item.paths)),
                item.bytes,
                -1 if item.tile is None else item.tile,
                item.proposed_label,
                item.proposed_score,
            ),
        )
        return int(cursor.lastrowid or 0)

    def oldest(self) -> Iterator[Stored]:
        """Every item, oldest first, read lazily: eviction usually needs only a few."""
        cursor = self._db.execute(f"SELECT id, paths, bytes FROM items {_OLDEST_FIRST}")
        try:
            for row in cursor:
                yield _stored(row)
        finally:
            cursor.close()

    def older_than(self, epoch: float) -> list[Stored]:
        rows = self._db.execute(
            f"SELECT id, paths, bytes FROM items WHERE captured_epoch < ? {_OLDEST_FIRST}",
            (epoch,),
        )
        return [_stored(row) for row in rows]

    def everything(self) -> list[Stored]:
        return [_stored(row) for row in self._db.execute("SELECT id, paths, bytes FROM items")]

    def delete(self, ids: Iterable[int]) -> None:
        """In one transaction: all of them or none."""
        self._db.execute("BEGIN")
        try:
            self._db.executemany("DELETE FROM items WHERE id = ?", [(i,) for i in ids])
            self._db.execute("COMMIT")
        except sqlite3.Error:
            self._db.execute("ROLLBACK")
            raise

    def totals(self) -> tuple[int, int]:
        """(bytes, items) over the whole index."""
        size, count = self._db.execute(
            "SELECT COALESCE(SUM(bytes), 0), COUNT(*) FROM items"
        ).fetchone()
        return int(size), int(count)

    def select(
        self, where: Sequence[tuple[str, Any]], newest_first: bool, limit: int = -1
    ) -> list[EvidenceItem]:
        """Items matching every ``(column, value)`` equality in ``where``."""
        clause = " AND ".join(f"{column} = ?" for column, _ in where) or "1"
        order = "ORDER BY captured_epoch DESC, id DESC" if newest_first else _OLDEST_FIRST
        rows = self._db.execute(
            f"{_SELECT} WHERE {clause} {order} LIMIT ?", (*(v for _, v in where), limit)
        )
        return [_item(row) for row in rows]

    def compact(self) -> None:
        """Give freed pages back to the disk and fold the WAL into the database, truncating
        it. Never waits: a reader (an export from another process) that holds the WAL makes
        this a no-op until the next call, and the WAL stays within its autocheckpoint."""
        self._db.execute("PRAGMA incremental_vacuum").fetchall()  # one page per step
        (timeout,) = self._db.execute("PRAGMA busy_timeout").fetchone()
        self._db.execute("PRAGMA busy_timeout=0")
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        finally:
            self._db.execute(f"PRAGMA busy_timeout={int(timeout)}")

    def page_size(self) -> int:
        (size,) = self._db.execute("PRAGMA page_size").fetchone()
        return int(size)

    def close(self) -> None:
        self._db.close()


def _stored(row: tuple[Any, ...]) -> Stored:
    return Stored(int(row[0]), tuple(json.loads(row[1])), int(row[2]))


def _item(row: tuple[Any, ...]) -> EvidenceItem:
    kind, event_id, camera, frame_id, at, epoch, classes, scores, paths, size, tile = row[:11]
    return EvidenceItem(
        kind=kind,
        event_id=event_id,
        camera=camera,
        frame_id=frame_id,
        captured_at=at,
        captured_epoch=epoch,
        classes=tuple(json.loads(classes)),
        scores=tuple(json.loads(scores)),
        paths=tuple(json.loads(paths)),
        bytes=size,
        tile=None if tile < 0 else tile,
        proposed_label=row[11],
        proposed_score=row[12],
        id=row[13],
    )
