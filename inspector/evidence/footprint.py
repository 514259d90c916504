"""What the evidence folder takes on disk besides the pictures: the index's files (the
database, its -wal and -shm, the lock) and the folders themselves. The store counts both in
``max_mb``, so the bound is the whole folder's, as ``du`` would see it.

Measured with ``stat`` (allocated blocks, not lengths), a handful of calls per add: the
index's files by name, and only the folders an add or a delete touched, the rest from a
cache filled by one walk at open.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from inspector.evidence.files import INDEX

# Every file the index and its lock can leave in the root: SQLite's WAL and shared memory,
# a rollback journal if a tool opened it in that mode, the store's flock.
INDEX_FILES = tuple(INDEX + suffix for suffix in ("", "-wal", "-shm", "-journal", ".lock"))


def allocated(path: Path) -> int:
    """Bytes ``path`` takes on disk (0 if it is gone)."""
    try:
        return os.stat(path).st_blocks * 512
    except OSError:  # deleted meanwhile, or unreadable: it takes nothing we could free
        return 0


class Footprint:
    """The index's and the folders' share of the store's disk use. Not thread-safe: the
    store serialises every call."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._folders: dict[Path, int] = {}
        self.rescan()

    def rescan(self) -> None:
        """Every folder under the root (and the root), walked once: at open and after tidy."""
        self._folders = {
            Path(folder): allocated(Path(folder)) for folder, _, _ in os.walk(self.root)
        }

    def touched(self, paths: Iterable[str]) -> None:
        """Re-measure the folders that hold ``paths`` (relative to the root) and their parents
        up to the root, after files in them were written or deleted: a folder may have been
        created, grown, or removed (then it takes nothing)."""
        for folder in {(self.root / path).parent for path in paths}:
            while True:
                if folder.is_dir():
                    self._folders[folder] = allocated(folder)
                else:
                    self._folders.pop(folder, None)
                if folder == self.root or self.root not in folder.parents:
                    break
                folder = folder.parent

    def index_bytes(self) -> int:
        return sum(allocated(self.root / name) for name in INDEX_FILES)

    def bytes(self) -> int:
        """The index's files and every folder, now."""
        return self.index_bytes() + sum(self._folders.values())
