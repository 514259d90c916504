"""The evidence store: a size and age bound that holds on the real disk after every add,
an index that survives SIGKILL at random moments, disk errors counted and never raised, and
a folder that cannot be used refused at open in one line."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import inspector
from inspector.errors import ConfigError
from inspector.evidence.pictures import encode_jpeg
from inspector.evidence.store import EvidenceStore
from tests.fixtures.pictures import decode, noise

NOW = datetime(2026, 11, 21, 17, 0, 0, tzinfo=UTC)
MiB = 1024 * 1024


def event_files(seed: int, size: int = 96) -> dict[str, bytes]:
    return {
        "frame.jpg": encode_jpeg(noise(size, size * 2, seed), 90),
        "crop0.jpg": encode_jpeg(noise(size // 2, size // 2, seed + 1), 90),
    }


def add(store: EvidenceStore, n: int, at: datetime = NOW, size: int = 96) -> list[str]:
    return store.add_event(
        f"line1/cam{n % 2}/3f2a9c/{n}", f"cam{n % 2}", n, at, ["crack"], [0.9], event_files(n, size)
    )


def pictures_on_disk(root: Path) -> dict[str, os.stat_result]:
    return {
        path.relative_to(root).as_posix(): path.stat()
        for path in root.rglob("*")
        if path.is_file() and not path.name.startswith("index.sqlite")
    }


def index_rows(root: Path) -> list[tuple[int, list[str], int]]:
    """Read straight from SQLite, without the store (and so without its tidy)."""
    with sqlite3.connect(root / "index.sqlite") as db:
        rows = db.execute("SELECT id, paths, bytes FROM items").fetchall()
    return [(row[0], json.loads(row[1]), row[2]) for row in rows]


def assert_consistent(root: Path) -> None:
    rows = index_rows(root)
    named = {path for _, paths, _ in rows for path in paths}
    assert all((root / path).is_file() for path in named), "an index row without its files"
    assert set(pictures_on_disk(root)) == named, "a file the index does not name"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EvidenceStore]:
    opened = EvidenceStore(tmp_path / "evidence", max_mb=10, max_days=30, clock=lambda: NOW)
    yield opened
    opened.close()


def test_an_event_is_stored_under_camera_and_date_and_indexed(store: EvidenceStore) -> None:
    files = event_files(1)
    paths = store.add_event(
        "line1/cam0/3f2a9c/1234", "cam0", 1234, NOW, ["crack", "stain"], [0.97, 0.6], files
    )
    assert paths == [
        "cam0/2026-11-21/1234-3f2a9c-frame.jpg",
        "cam0/2026-11-21/1234-3f2a9c-crop0.jpg",
    ]
    assert [(store.root / p).read_bytes() for p in paths] == list(files.values())
    assert decode((store.root / paths[0]).read_bytes()).shape == (96, 192, 3)
    (item,) = store.recent(10)
    assert (item.event_id, item.camera, item.frame_id, item.kind) == (
        "line1/cam0/3f2a9c/1234",
        "cam0",
        1234,
        "event",
    )
    assert item.captured_at == "2026-11-21T17:00:00.000000Z"
    assert item.classes == ("crack", "stain") and item.scores == (0.97, 0.6)
    assert item.paths == tuple(paths) and item.bytes == store.used_bytes > 0
    # Delivered twice (at-least-once): stored once.
    assert store.add_event("line1/cam0/3f2a9c/1234", "cam0", 1234, NOW, [], [], files) == paths
    assert store.count == 1
    with pytest.raises(ValueError, match="plain file name"):
        store.add_event("x", "cam0", 1, NOW, [], [], {"../escape.jpg": b"x"})


def test_odd_ids_become_safe_names_inside_the_root(store: EvidenceStore) -> None:
    paths = store.add_event("weird id/../x", "..", 7, NOW, ["crack"], [0.9], {"f.jpg": b"1"})
    assert len(paths) == 1 and ".." not in Path(paths[0]).parts
    assert (store.root / paths[0]).resolve().is_relative_to(store.root.resolve())
    other = store.add_event("weird id_.._x", "__", 7, NOW, ["crack"], [0.9], {"f.jpg": b"2"})
    assert other != paths  # safe forms of different ids stay apart


def test_a_name_taken_by_another_item_is_never_overwritten(store: EvidenceStore) -> None:
    first = store.add_event("line1/cam0/abc/5", "cam0", 5, NOW, [], [], {"frame.jpg": b"one"})
    # Another line's event with the same run and frame: the same file name in cam0/.
    assert store.add_event("line2/cam0/abc/5", "cam0", 5, NOW, [], [], {"frame.jpg": b"2"}) == []
    assert store.write_errors == 1 and (store.root / first[0]).read_bytes() == b"one"
    assert_consistent(store.root)


def test_recent_is_newest_first_by_camera_and_uncertain_tiles_keep_the_proposal(
    store: EvidenceStore,
) -> None:
    for n in range(6):
        add(store, n, NOW + timedelta(seconds=n))
    jpeg = encode_jpeg(noise(32, 32), 90)
    tile = store.add_uncertain("line1/cam0/3f2a9c/9", "cam0", 9, NOW, 7, "stain", 0.62, jpeg)
    assert tile == ["cam0/2026-11-21/9-3f2a9c-uncertain7.jpg"]
    assert [i.frame_id for i in store.recent(3)] == [5, 4, 3]
    assert [i.frame_id for i in store.recent(10, camera="cam0")] == [4, 2, 0]
    (item,) = store.uncertain_items()
    assert (item.kind, item.tile, item.proposed_label, item.proposed_score) == (
        "uncertain",
        7,
        "stain",
        pytest.approx(0.62),
    )
    assert len(store.recent(100, kind=None)) == 7


def test_the_size_bound_holds_on_disk_after_every_add(tmp_path: Path) -> None:
    root = tmp_path / "evidence"
    store = EvidenceStore(root, max_mb=0.2, max_days=30, clock=lambda: NOW)
    biggest = 0
    for n in range(80):
        sizes = [len(data) for data in event_files(n, 64 + 8 * (n % 5)).values()]
        biggest = max(biggest, sum(sizes))
        assert add(store, n, NOW + timedelta(seconds=n), 64 + 8 * (n % 5))
        on_disk = pictures_on_disk(root)
        assert sum(s.st_size for s in on_disk.values()) <= 0.2 * MiB
        assert sum(s.st_blocks * 512 for s in on_disk.values()) <= 0.2 * MiB + biggest + 8192
        assert store.used_bytes == sum(size for _, _, size in index_rows(root)) <= 0.2 * MiB
    assert store.evicted > 0
    kept = sorted(item.frame_id for item in store.recent(1000))
    assert kept == list(range(80 - len(kept), 80))  # the oldest went first
    assert_consistent(root)
    store.close()


def test_eviction_goes_by_capture_time_not_insertion_order(tmp_path: Path) -> None:
    # 0.2 MiB: the index's files and the folders (about 72 KiB) and two of these pictures.
    store = EvidenceStore(tmp_path / "e", max_mb=0.2, max_days=30, clock=lambda: NOW)
    big = {"frame.jpg": os.urandom(50_000)}
    store.add_event("a", "cam0", 1, NOW, [], [], big)
    store.add_event("old", "cam0", 2, NOW - timedelta(hours=1), [], [], big)
    store.add_event("b", "cam0", 3, NOW + timedelta(seconds=1), [], [], big)  # one must go
    assert {item.event_id for item in store.recent(10)} == {"a", "b"}
    assert store.evicted == 1
    store.close()


def test_an_item_larger_than_the_bound_is_refused(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path / "e", max_mb=0.01, max_days=30, clock=lambda: NOW)
    assert store.add_event("a", "cam0", 1, NOW, [], [], {"frame.jpg": os.urandom(20_000)}) == []
    assert store.refused == 1 and store.count == 0 and pictures_on_disk(store.root) == {}
    store.close()


def test_items_older_than_max_days_expire_oldest_first(tmp_path: Path) -> None:
    now = [NOW - timedelta(days=3)]  # while adding: nothing is old yet
    store = EvidenceStore(tmp_path / "e", max_mb=10, max_days=2, clock=lambda: now[0])
    for day in range(4):
        add(store, day, NOW - timedelta(days=3 - day, minutes=1))  # ages 3d, 2d, 1d, 0d (+1 min)
    assert store.count == 4
    assert store.expire(NOW) == 2  # 3 days and 2 days + 1 minute old
    assert sorted(i.frame_id for i in store.recent(10)) == [2, 3]
    assert not (store.root / "cam0" / "2026-11-18").exists()  # emptied folders go too
    now[0] = NOW + timedelta(days=1, minutes=2)  # the next add expires what aged meanwhile
    add(store, 10, now[0])
    assert sorted(i.frame_id for i in store.recent(10)) == [3, 10]
    assert store.expired == 3
    assert_consistent(store.root)
    store.close()


def test_tidy_at_open_drops_rows_without_files_and_files_without_rows(tmp_path: Path) -> None:
    root = tmp_path / "e"
    store = EvidenceStore(root, max_mb=10, max_days=30, clock=lambda: NOW)
    kept, lost = add(store, 1), add(store, 2)
    store.close()
    (root / lost[0]).unlink()  # a row whose file vanished
    (root / "cam0" / "2026-11-21" / ".x-frame.jpg.tmp").write_bytes(b"half")
    (root / "cam9" / "2026-01-01").mkdir(parents=True)
    (root / "cam9" / "2026-01-01" / "orphan.jpg").write_bytes(b"orphan")
    store = EvidenceStore(root, max_mb=10, max_days=30, clock=lambda: NOW)
    assert [i.paths for i in store.recent(10)] == [tuple(kept)]
    assert set(pictures_on_disk(root)) == set(kept)
    assert not (root / "cam9").exists()
    assert store.used_bytes == store.recent(1)[0].bytes
    store.close()


_WRITER = """
import os, sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from inspector.evidence.store import EvidenceStore

store = EvidenceStore(Path(sys.argv[1]), max_mb=0.25, max_days=30)
first = int(sys.argv[2])
now = datetime.now(UTC)
print("ready", flush=True)
for n in range(first, first + 100_000):
    data = os.urandom(3000 + (n * 7919) % 30000)
    files = {"frame.jpg": data, "crop0.jpg": data[:2000], "crop1.jpg": data[:500]}
    store.add_event(f"line1/cam{n % 2}/abc123/{n}", f"cam{n % 2}", n,
                    now + timedelta(milliseconds=n), ["crack"], [0.9], files)
"""


def test_sigkill_at_random_moments_never_leaves_a_row_without_its_files(tmp_path: Path) -> None:
    root = tmp_path / "evidence"
    env = {**os.environ, "PYTHONPATH": str(Path(inspector.__file__).parents[1])}
    seed = random.randrange(1 << 30)
    chance = random.Random(seed)
    for round_ in range(6):
        child = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(root), str(round_ * 100_000)],
            stdout=subprocess.PIPE,
            env=env,
        )
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        time.sleep(chance.uniform(0.05, 0.8))
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert child.returncode == -signal.SIGKILL, f"seed {seed}"
        rows = index_rows(root)  # before any tidy: every row must have all its files
        missing = [p for _, paths, _ in rows for p in paths if not (root / p).is_file()]
        assert missing == [], f"seed {seed}, round {round_}"
        store = EvidenceStore(root, max_mb=0.25, max_days=30)  # tidies
        assert_consistent(root)
        assert not [p for p in pictures_on_disk(root) if p.endswith(".tmp")]
        assert store.used_bytes <= 0.25 * MiB
        store.close()
    assert rows, "the writer never got an event in: kill later"


def test_a_root_that_cannot_be_created_is_a_config_error_naming_it(tmp_path: Path) -> None:
    plain_file = tmp_path / "not-a-folder"
    plain_file.write_text("")
    with pytest.raises(ConfigError, match=re.escape(str(plain_file / "evidence"))) as error:
        EvidenceStore(plain_file / "evidence", max_mb=1, max_days=1)
    assert "\n" not in str(error.value) and "cannot create" in str(error.value)


def test_a_root_already_in_use_is_a_config_error(store: EvidenceStore) -> None:
    with pytest.raises(ConfigError, match="in use"):
        EvidenceStore(store.root, max_mb=1, max_days=1)


@pytest.fixture
def tiny_disk(tmpfs: Callable[[str, str], Path]) -> Path:
    return tmpfs("tiny", "size=300k")


@pytest.fixture
def read_only_disk(tmpfs: Callable[[str, str], Path]) -> Path:
    return tmpfs("ro", "ro,size=64k")


def test_a_read_only_root_is_a_config_error_naming_it(read_only_disk: Path) -> None:
    with pytest.raises(ConfigError, match=f"{re.escape(str(read_only_disk))}: .*not writable"):
        EvidenceStore(read_only_disk, max_mb=1, max_days=1)  # exists, cannot be written
    with pytest.raises(ConfigError, match="cannot create"):
        EvidenceStore(read_only_disk / "evidence", max_mb=1, max_days=1)


def test_a_full_disk_is_counted_not_raised_and_leaves_no_partial_files(tiny_disk: Path) -> None:
    root = tiny_disk / "evidence"
    store = EvidenceStore(root, max_mb=10, max_days=30, clock=lambda: NOW)  # bound > disk
    stored = 0
    for n in range(40):
        files = {"frame.jpg": os.urandom(30_000), "crop0.jpg": os.urandom(12_000)}
        paths = store.add_event(f"l/cam0/abc/{n}", "cam0", n, NOW, ["crack"], [0.9], files)
        stored += bool(paths)
    assert stored >= 3 and store.write_errors >= 3
    assert store.count == stored and len(index_rows(root)) == stored
    assert_consistent(root)
    assert store.used_bytes == sum(size for _, _, size in index_rows(root))
    store.close()
