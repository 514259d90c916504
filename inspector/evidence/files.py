"""The evidence folder's files: safe names, crash-safe writes, the writability probe and
the one-store-per-folder lock. No SQLite here; :mod:`.store` orders these steps."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import structlog

from inspector.errors import ConfigError

log = structlog.get_logger(__name__)

INDEX = "index.sqlite"  # index.sqlite, -wal, -shm, .lock: everything else is pictures
NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")  # a plain, visible file name
_CANONICAL = re.compile(r"[^/]+/[^/]+/([A-Za-z0-9_-]{1,32})/(\d{1,20})")


def safe_name(text: str) -> str:
    """``text`` if it is a plain file name, else a safe form of it plus a hash, so that two
    different texts never share a folder (``..`` and ``__`` stay apart)."""
    if NAME.fullmatch(text) and not text.startswith(INDEX):
        return text
    digest = hashlib.blake2s(text.encode(), digest_size=4).hexdigest()
    return "_" + re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:48] + "-" + digest


def event_stem(event_id: str) -> str:
    """``<frame>-<run>`` of an id ``line/camera/run/frame``; any other id, made safe."""
    match = _CANONICAL.fullmatch(event_id)
    return f"{match[2]}-{match[1]}" if match else safe_name(event_id)


def temp_of(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


def open_folder(root: Path) -> int:
    """Create ``root``, lock it for this process and prove it writable with a real file;
    the lock's descriptor, held for the store's life. Every failure is a ConfigError naming
    the folder and the reason."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{root}: cannot create the evidence folder: {exc.strerror}") from None
    try:
        fd = os.open(root / f"{INDEX}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ConfigError(f"{root}: evidence folder is not writable: {exc.strerror}") from None
    try:
        # Two stores on one folder would each tidy away the other's fresh files. flock is
        # released by the kernel when a process dies, so a killed daemon blocks nobody.
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            raise ConfigError(f"{root}: evidence folder in use by another process") from None
        raise ConfigError(f"{root}: cannot lock the evidence folder: {exc.strerror}") from None
    # Permissions say nothing on a read-only mount or a full disk, and nothing to root.
    probe = root / f".probe-{os.getpid()}.tmp"
    try:
        with open(probe, "wb") as file:
            file.write(b"probe")
            os.fsync(file.fileno())
        probe.unlink()
    except OSError as exc:
        os.close(fd)
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
        raise ConfigError(f"{root}: evidence folder is not writable: {exc.strerror}") from None
    return fd


def write_files(root: Path, paths: Sequence[str], contents: Iterable[bytes]) -> None:
    """Each file to a temp name beside it, synced, renamed; then the folders synced, so the
    files are whole and durable before any index row names them. Never replaces a file:
    one that exists belongs to another item (or is a leftover for tidy). On an error, what
    this call wrote is removed again before it raises."""
    written: list[str] = []
    try:
        folders: set[Path] = set()
        for path, data in zip(paths, contents, strict=True):
            final = root / path
            if final.exists():
                raise FileExistsError(errno.EEXIST, "another item has this name", str(final))
            final.parent.mkdir(parents=True, exist_ok=True)
            written.append(path)
            with open(temp_of(final), "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp_of(final), final)
            folders.add(final.parent)
        for folder in folders:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    except OSError:
        remove_files(root, written)
        raise


def remove_files(root: Path, paths: Iterable[str]) -> None:
    """Delete ``paths`` and their temps where present, then folders left empty. Never
    raises: a file that cannot go now is an orphan that the next tidy deletes."""
    folders: set[Path] = set()
    for path in paths:
        final = root / path
        folders.add(final.parent)
        for leftover in (final, temp_of(final)):
            try:
                leftover.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("evidence_unlink_failed", path=str(leftover), error=str(exc))
    for folder in folders:
        remove_empty(folder, root)


def remove_empty(folder: Path, root: Path) -> None:
    """Remove ``folder``, then its parents below ``root``, while they are empty."""
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:  # not empty, or already gone: nothing more to climb
            return
        folder = folder.parent


def picture_files(root: Path) -> Iterator[str]:
    """Every file under ``root`` but the index's own, relative, with POSIX separators."""
    for folder, _, names in os.walk(root):
        here = Path(folder)
        for name in names:
            relative = (here / name).relative_to(root).as_posix()
            if not relative.startswith(INDEX):
                yield relative


def remove_empty_folders(root: Path) -> None:
    for folder, _, _ in os.walk(root, topdown=False):
        if Path(folder) != root:
            remove_empty(Path(folder), root)
