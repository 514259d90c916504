"""Disk bounds measured as ``du`` sees them: the evidence store's whole folder (pictures, the
index, its -wal and -shm, the folders) within its bound after every batch of a flood; the
outbox's files small while a real broker acknowledges (the WAL bounded). The outbox on a
full disk, with the broker down, is in test_outbox_reserve.py."""

from __future__ import annotations

import os
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from inspector.evidence.store import EvidenceStore
from inspector.publishing.mqtt import MqttPublisher
from inspector.publishing.outbox import DurableSink, Outbox
from inspector.publishing.settings import MqttSettings
from tests.fixtures.mqtt import Broker, Collector, compact, event

NOW = datetime(2026, 11, 21, 17, 0, 0, tzinfo=UTC)
MiB = 1024 * 1024


def du(root: Path) -> int:
    """Bytes allocated to ``root`` and everything under it, folders included (``du -s``)."""
    total = root.stat().st_blocks * 512
    for folder, folders, files in os.walk(root):
        for name in folders + files:
            try:
                total += os.lstat(Path(folder) / name).st_blocks * 512
            except FileNotFoundError:  # deleted while this walk went by
                continue
    return total


def files_of(path: Path) -> dict[str, int]:
    """The allocated bytes of an outbox's own files: the database, its -wal and -shm."""
    found = {}
    for suffix in ("", "-wal", "-shm"):
        file = path.with_name(path.name + suffix)
        found[suffix or "db"] = file.stat().st_blocks * 512 if file.exists() else 0
    return found


@pytest.mark.parametrize("max_mb", [1, 5])
def test_the_whole_evidence_folder_stays_within_its_bound_under_a_flood(
    tmp_path: Path, max_mb: int
) -> None:
    root = tmp_path / "evidence"
    store = EvidenceStore(root, max_mb=max_mb, max_days=30, clock=lambda: NOW)
    rng = random.Random(max_mb)
    peak = 0
    try:
        for batch in range(60):
            for i in range(20):  # a flood: 1200 items, many times the bound, three cameras
                n = batch * 20 + i
                at = NOW - timedelta(days=2) + timedelta(seconds=150 * n)  # over three dates
                pictures = {
                    "frame.jpg": os.urandom(rng.randint(4_000, 24_000)),
                    "crop0.jpg": os.urandom(rng.randint(500, 4_000)),
                }
                cam, key = f"cam{n % 3}", f"l/cam{n % 3}/r1/{n}"
                if n % 5:
                    assert store.add_event(key, cam, n, at, ["crack"], [0.9], pictures)
                else:  # every fifth an uncertain tile: the other kind of row
                    tile = pictures["frame.jpg"]
                    assert store.add_uncertain(key, cam, n, at, 3, "crack", 0.5, tile)
            used = du(root)
            peak = max(peak, used)
            assert used <= 1.1 * max_mb * MiB, f"batch {batch}: {used} bytes, bound {max_mb} MiB"
        # What the store reports (and /metrics shows) is what the disk says, within a block.
        assert abs(store.stats()["disk_bytes"] - du(root)) <= 8192
        assert store.evicted > 0 and store.write_errors == 0
        assert (root / "index.sqlite-wal").stat().st_size <= 256 * 1024
        print(f"max_mb={max_mb}: peak {peak / 1024:.0f} KiB of {max_mb * 1024} KiB")
    finally:
        store.close()


def test_the_outbox_files_stay_small_while_the_broker_acknowledges(
    tmp_path: Path, mosquitto: Broker
) -> None:
    line = f"bounds{os.getpid()}"
    path = tmp_path / "outbox.sqlite"
    outbox = Outbox(path, max_events=100_000)  # its reserve is a file of its own, not counted
    publisher = MqttPublisher(
        MqttSettings(host=mosquitto.host, port=mosquitto.port), line, on_ack=outbox.remove_acked
    )
    collector = Collector(mosquitto.host, mosquitto.port, f"line/{line}/defects")
    sink = DurableSink(publisher, outbox)
    peak: dict[str, int] = {"db": 0, "-wal": 0, "-shm": 0}
    try:
        publisher.connect()
        sink.go_live()
        total = 0
        for batch in range(30):
            for _ in range(100):  # 3000 events of about 1.5 KiB: SQLite's 4 MB WAL many times
                data = event(line, total)
                data["defects"] = data["defects"] * 6
                sink.publish_message(str(data["event_id"]), compact(data))
                total += 1
            deadline = time.monotonic() + 10
            while len(outbox) and time.monotonic() < deadline:  # the broker's acks empty it
                time.sleep(0.01)
            sizes = files_of(path)
            peak = {name: max(peak[name], size) for name, size in sizes.items()}
            assert sum(sizes.values()) <= 1.5 * MiB, f"batch {batch}: {sizes}"
        assert len(collector.wait_for(total, timeout=20)) == total
        time.sleep(1.2)  # the next delivery after a second checkpoints and truncates the WAL
        sink.publish_message("last", b"{}")
        deadline = time.monotonic() + 10
        while len(outbox) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(outbox) == 0
        print(f"outbox peaks: {peak}, at rest {files_of(path)}")
        assert files_of(path)["-wal"] <= 64 * 1024
    finally:
        collector.close()
        publisher.close()
        outbox.close()
