"""The evidence store: pictures of defects and uncertain tiles in a folder, an SQLite
index of them, and a size and age bound that holds at every moment.

Layout under ``root``::

    index.sqlite (+ -wal, -shm)       one row per item: an event's files, or one tile
    index.sqlite.lock                 flock: one store per folder
    <camera>/<YYYY-MM-DD>/            the UTC date of capture
        <frame>-<run>-frame.jpg       an event's files: the caller's names after the stem
        <frame>-<run>-crop0.jpg
        <frame>-<run>-uncertain7.jpg  an uncertain tile (row kind 'uncertain', tile 7)

The stem is ``<frame_id>-<run>`` for event ids of the form ``line/camera/run/frame``; any
other id, and a camera id that is not a plain folder name (``..``), becomes a safe form of
itself plus a hash.
A name that is taken already (another line's event with the same run and frame) is never
overwritten: that add fails, counted in ``write_errors``.

Crash consistency: files are written to ``.<name>.tmp``, synced and renamed (and their
folder synced) before the row naming them is committed; rows are deleted before their
files. A SIGKILL or a power cut at any point leaves at worst files that no row names, which
:meth:`EvidenceStore.tidy` (run at open) deletes; never a row without its files.

Bounds: ``max_mb`` (MiB of disk for the whole folder: pictures in whole filesystem blocks,
plus the index's files and the folders as allocated, :mod:`.footprint`) and ``max_days``,
checked before every add. After each add or delete the index's WAL is checkpointed and
truncated, so what the folder takes tracks what it holds.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog

from inspector.errors import ConfigError
from inspector.evidence.files import (
    INDEX,
    NAME,
    event_stem,
    open_folder,
    picture_files,
    remove_empty_folders,
    remove_files,
    safe_name,
    write_files,
)
from inspector.evidence.footprint import Footprint
from inspector.evidence.index import EvidenceItem, Index, Kind, Stored
from inspector.logs import at_doubling
from inspector.types.frames import iso_utc, utc_now

log = structlog.get_logger(__name__)

__all__ = ["EvidenceItem", "EvidenceStore", "Kind"]


def stored_paths(
    camera: str, event_id: str, captured_at: datetime, names: Iterable[str]
) -> list[str]:
    """Where an event's pictures go, relative to the root: known before they are written, so
    the event can name them (``<camera>/<UTC date>/<frame>-<run>-<name>``)."""
    date = captured_at.astimezone(UTC).strftime("%Y-%m-%d")
    return [f"{safe_name(camera)}/{date}/{event_stem(event_id)}-{name}" for name in names]


class EvidenceStore:
    """Thread-safe: written by the sink's thread, read by others (the operator's page)."""

    def __init__(
        self,
        root: Path,
        max_mb: float,
        max_days: float,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if max_mb <= 0 or max_days <= 0:
            raise ConfigError(f"{root}: evidence max_mb and max_days must be positive")
        self.root = Path(root)
        self.max_bytes = int(max_mb * 1024 * 1024)
        self.max_age = timedelta(days=max_days)
        self.clock = clock
        self.write_errors = 0  # items lost to a disk error (full, read-only, failing)
        self.refused = 0  # items larger than the whole bound
        self.evicted = 0  # items deleted to make room
        self.expired = 0  # items deleted for their age
        self.compact_errors = 0  # checkpoints that failed (the WAL stays until the next)
        self.used_bytes = 0  # the pictures, in whole blocks: what the rows say
        self.overhead_bytes = 0  # the index's files and the folders, last measured
        self.count = 0
        self._lock = threading.Lock()
        self._lock_fd = open_folder(self.root)
        try:
            self._index = Index(self.root / INDEX)
            self._block = max(1, os.statvfs(self.root).f_frsize)
            self._footprint = Footprint(self.root)
            # What an add may grow besides its pictures before it is measured again: two new
            # folders (camera, date) and a few index pages (its row, the b-tree's split).
            self._slack = 2 * self._block + 4 * self._index.page_size()
            self.tidy()
            self.expire()
        except BaseException as exc:
            os.close(self._lock_fd)
            if isinstance(exc, OSError | sqlite3.Error):
                raise ConfigError(f"{self.root}: cannot open the evidence store: {exc}") from None
            raise
        self._closed = False

    def add_event(
        self,
        event_id: str,
        camera: str,
        frame_id: int,
        captured_at: datetime,
        classes: Sequence[str],
        scores: Sequence[float],
        files: Mapping[str, bytes],
    ) -> list[str]:
        """Store an event's pictures; ``files`` maps a plain name (``frame.jpg``,
        ``crop0.jpg``) to its bytes. The stored paths, relative to the root, in ``files``
        order; [] when nothing was stored (too large for the bound, or a disk error: both
        counted). An event already stored is not written again: its paths come back."""
        item = self._item("event", event_id, camera, frame_id, captured_at, classes, scores)
        return self._add(item, files)

    def add_uncertain(
        self,
        event_id: str,
        camera: str,
        frame_id: int,
        captured_at: datetime,
        tile: int,
        label: str,
        score: float,
        jpeg: bytes,
    ) -> list[str]:
        """Store one uncertain tile with the class and score the model proposed for it.
        ``event_id`` is the frame's: the id its event has, or would have had."""
        item = self._item("uncertain", event_id, camera, frame_id, captured_at, [label], [score])
        item = replace(item, tile=tile, proposed_label=label, proposed_score=float(score))
        return self._add(item, {f"uncertain{tile}.jpg": jpeg})

    def _item(
        self,
        kind: Kind,
        event_id: str,
        camera: str,
        frame_id: int,
        captured_at: datetime,
        classes: Sequence[str],
        scores: Sequence[float],
    ) -> EvidenceItem:
        moment = captured_at.astimezone(UTC)
        return EvidenceItem(
            kind=kind,
            event_id=event_id,
            camera=camera,
            frame_id=int(frame_id),
            captured_at=iso_utc(moment),
            captured_epoch=moment.timestamp(),
            classes=tuple(classes),
            scores=tuple(float(score) for score in scores),
            paths=(),
            bytes=0,
        )

    def _add(self, item: EvidenceItem, files: Mapping[str, bytes]) -> list[str]:
        for name in files:
            if not NAME.fullmatch(name):
                raise ValueError(f"evidence file name {name!r} is not a plain file name")
        captured = datetime.fromtimestamp(item.captured_epoch, UTC)
        paths = tuple(stored_paths(item.camera, item.event_id, captured, files))
        size = sum(-(-len(data) // self._block) * self._block for data in files.values())
        item = replace(item, paths=paths, bytes=size)
        tile = -1 if item.tile is None else item.tile
        with self._lock:
            written = False
            try:
                known = self._index.paths_of(item.kind, item.event_id, tile)
                if known is not None:
                    return known
                if size > self.max_bytes - self._footprint.index_bytes() - self._slack:
                    self.refused += 1
                    log.warning(
                        "evidence_too_large",
                        event_id=item.event_id,
                        bytes=size,
                        max_bytes=self.max_bytes,
                        refused=self.refused,
                    )
                    return []
                self._expire(self.clock())
                self._make_room(self._room() - self._slack - size)
                write_files(self.root, paths, files.values())  # cleans up after itself
                written = True
                self._index.insert(item)
            except (OSError, sqlite3.Error) as exc:  # disk full, I/O error: inspection goes on
                if written:
                    remove_files(self.root, paths)
                self._footprint.touched(paths)  # a folder made for them may be left, or gone
                self.write_errors += 1
                if at_doubling(self.write_errors):
                    log.warning(
                        "evidence_write_failed",
                        event_id=item.event_id,
                        root=str(self.root),
                        error=str(exc),
                        write_errors=self.write_errors,
                    )
                return []
            self.used_bytes += size
            self.count += 1
            self._compact(paths)
            # The slack is an estimate: if the index or a folder grew past it, older items
            # make up for it now (this one too, if it is the oldest), so the bound holds when
            # this add returns.
            self._make_room(self._room())
            return list(paths) if self._index.paths_of(item.kind, item.event_id, tile) else []

    # --- retention -----------------------------------------------------------------------

    def _room(self) -> int:
        """Bytes the pictures may take now: the bound less the index and the folders."""
        self.overhead_bytes = self._footprint.bytes()
        return self.max_bytes - self.overhead_bytes

    def _compact(self, paths: Iterable[str]) -> None:
        """After files came or went: the index shrunk to its content (its WAL truncated),
        the folders that held ``paths`` measured again. A failure (a full disk mid
        checkpoint) loses nothing: the WAL is folded in at the next call."""
        try:
            self._index.compact()
        except sqlite3.Error as exc:
            self.compact_errors += 1
            if at_doubling(self.compact_errors):
                log.warning("evidence_compact_failed", root=str(self.root), error=str(exc))
        self._footprint.touched(paths)

    def _make_room(self, room: int) -> None:
        """Delete the oldest items (by capture time, then id) until at most ``room`` bytes
        are used: O(1) when there is room already."""
        if self.used_bytes <= room:
            return
        victims: list[Stored] = []
        freed = 0
        for victim in self._index.oldest():
            victims.append(victim)
            freed += victim.bytes
            if self.used_bytes - freed <= room:
                break
        self._delete(victims)
        self.evicted += len(victims)

    def expire(self, now: datetime | None = None) -> int:
        """Delete every item captured before ``now - max_days``, oldest first; how many.
        Adding does this too; call it also when nothing is added for a while."""
        with self._lock:
            return self._expire(now or self.clock())

    def _expire(self, now: datetime) -> int:
        victims = self._index.older_than((now - self.max_age).timestamp())
        self._delete(victims)
        self.expired += len(victims)
        return len(victims)

    def _delete(self, victims: Sequence[Stored]) -> None:
        """Rows first, all in one transaction, then files: a crash in between leaves orphan
        files for tidy, never a row without its files."""
        if not victims:
            return
        self._index.delete(victim.id for victim in victims)
        self.used_bytes -= sum(victim.bytes for victim in victims)
        self.count -= len(victims)
        paths = [path for victim in victims for path in victim.paths]
        remove_files(self.root, paths)
        self._compact(paths)

    def tidy(self) -> None:
        """Make the folder and the index agree: drop rows with a file missing, delete files
        no row names (temps, a crash's leftovers), remove empty folders, recount bytes."""
        with self._lock:
            named: set[str] = set()
            broken: list[Stored] = []
            for stored in self._index.everything():
                if all((self.root / path).is_file() for path in stored.paths):
                    named.update(stored.paths)
                else:
                    broken.append(stored)
            if broken:
                log.warning("evidence_rows_without_files", root=str(self.root), rows=len(broken))
            self._delete(broken)
            orphans = [path for path in picture_files(self.root) if path not in named]
            for path in orphans:
                (self.root / path).unlink(missing_ok=True)
            remove_empty_folders(self.root)
            self.used_bytes, self.count = self._index.totals()
            self._compact(())
            self._footprint.rescan()
            self.overhead_bytes = self._footprint.bytes()

    # --- reading -------------------------------------------------------------------------

    def recent(
        self, limit: int, camera: str | None = None, kind: Kind | None = "event"
    ) -> list[EvidenceItem]:
        """The newest items first: events unless ``kind`` says otherwise (None: all)."""
        where = [(k, v) for k, v in (("camera", camera), ("kind", kind)) if v is not None]
        with self._lock:
            return self._index.select(where, newest_first=True, limit=limit)

    def uncertain_items(self) -> list[EvidenceItem]:
        """Every stored uncertain tile, oldest first: what a dataset export reads."""
        with self._lock:
            return self._index.select([("kind", "uncertain")], newest_first=False)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "items": self.count,
                "used_bytes": self.used_bytes,
                "disk_bytes": self.used_bytes + self.overhead_bytes,
                "max_bytes": self.max_bytes,
                "write_errors": self.write_errors,
                "refused": self.refused,
                "evicted": self.evicted,
                "expired": self.expired,
            }

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._index.close()
                os.close(self._lock_fd)
