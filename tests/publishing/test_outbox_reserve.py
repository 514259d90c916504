"""The outbox's reserve on a real small filesystem (a tmpfs) filled by another process, with
a real broker down: every event that fits the reserve is kept and delivered once the broker
is back; past the reserve, losses are counted, never raised; the reserve grows back when
the space returns. ``outbox.reserve_mb`` is validated like every other key."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import structlog

from inspector.errors import ConfigError
from inspector.publishing.mqtt import MqttPublisher
from inspector.publishing.outbox import DurableSink, Outbox
from inspector.publishing.settings import MqttSettings, OutboxSettings
from tests.fixtures.mqtt import Broker, Collector, compact, event

MiB = 1024 * 1024


@pytest.fixture
def small_disk(tmpfs: Callable[[str, str], Path]) -> Path:
    """An 8 MiB tmpfs of its own: the outbox's partition, which a filler can make full."""
    return tmpfs("state", "size=8m")


def fill(disk: Path) -> Path:
    """Another process writes a file until the filesystem says ENOSPC."""
    filler = disk / "filler"
    done = subprocess.run(
        ["dd", "if=/dev/zero", f"of={filler}", "bs=16k"], capture_output=True, text=True
    )
    assert "No space left on device" in done.stderr, done.stderr
    stats = os.statvfs(disk)
    assert stats.f_bavail * stats.f_frsize < 64 * 1024
    return filler


def defect(line: str, n: int) -> tuple[str, bytes]:
    data = event(line, n)
    data["defects"] = data["defects"] * 6  # about 1 KiB, as a real event with a few regions
    return str(data["event_id"]), compact(data)


def test_a_disk_filled_by_another_process_loses_no_event_that_fits_the_reserve(
    tmp_path: Path, small_disk: Path
) -> None:
    line = f"reserve{os.getpid()}"
    broker = Broker(tmp_path)  # its port is kept, the broker is not started: it is down
    outbox = Outbox(small_disk / "outbox.sqlite", max_events=100_000, reserve_mb=2)
    assert outbox.reserve_bytes == 2 * MiB  # allocated at start
    publisher = MqttPublisher(
        MqttSettings(host=broker.host, port=broker.port), line, on_ack=outbox.remove_acked
    )
    sink = DurableSink(publisher, outbox)
    collector: Collector | None = None
    try:
        filler = fill(small_disk)
        with structlog.testing.capture_logs() as logs:
            sent = [defect(line, n) for n in range(400)]  # the 400 events
            for key, payload in sent:
                sink.publish_message(key, payload)
        assert outbox.write_errors == 0 and len(outbox) == 400, "an event that fit was lost"
        assert 0 < outbox.reserve_bytes < 2 * MiB and outbox.reserve_used > 0
        used = [entry for entry in logs if entry["event"] == "outbox_reserve_used"]
        assert len(used) == 1, "the reserve's use is logged once, not per event"
        print(f"400 of 400 kept on a full disk, {outbox.reserve_bytes} reserve bytes left")

        broker.start()
        collector = Collector(broker.host, broker.port, f"line/{line}/defects")
        publisher.connect()
        assert sink.go_live() == 400
        received = collector.wait_for(400, timeout=20)
        assert [message.payload for message in received] == [p for _, p in sent]  # in order
        publisher.wait_for_acks(10)
        assert len(outbox) == 0 and outbox.undeletable == 0  # deletes found room too

        filler.unlink()  # the space returns: the next delivery grows the reserve back
        with structlog.testing.capture_logs() as logs:
            sink.publish_message(*defect(line, 400))
            publisher.wait_for_acks(10)
            outbox.close()  # its last compaction runs, whatever the clock says
        assert outbox.reserve_bytes == 2 * MiB
        assert [entry["event"] for entry in logs].count("outbox_reserve_restored") == 1
    finally:
        if collector is not None:
            collector.close()
        publisher.close()
        outbox.close()
        broker.stop()


def test_past_the_reserve_losses_are_counted_and_the_reserve_is_spent_first(
    small_disk: Path,
) -> None:
    outbox = Outbox(small_disk / "outbox.sqlite", max_events=100_000, reserve_mb=1)
    try:
        fill(small_disk)
        stored = [outbox.put(*defect("past", n)) for n in range(3000)]  # 3 MiB: past it
        kept = stored.count(True)
        assert stored[:kept] == [True] * kept, "every event up to the reserve's end is kept"
        assert outbox.write_errors == 3000 - kept > 0 and len(outbox) == kept
        assert outbox.reserve_bytes == 0
        # The reserve's room goes to events, not to a WAL of repeated pages: most of 1 MiB.
        assert kept * len(defect("past", 0)[1]) >= 0.8 * MiB, kept
        print(f"1 MiB reserve on a full disk kept {kept} events of ~1 KiB")
    finally:
        outbox.close()


def test_a_reserve_of_zero_holds_nothing_and_removes_an_old_one(tmp_path: Path) -> None:
    Outbox(tmp_path / "o.sqlite", max_events=10, reserve_mb=0.5).close()
    reserve = tmp_path / "o.sqlite.reserve"
    assert reserve.stat().st_blocks * 512 >= MiB // 2  # allocated, not a sparse file
    outbox = Outbox(tmp_path / "o.sqlite", max_events=10, reserve_mb=0)
    try:
        assert not reserve.exists() and outbox.reserve_bytes == 0
    finally:
        outbox.close()


@pytest.mark.parametrize("value", [-1, float("nan")])
def test_a_negative_reserve_is_a_config_error_naming_the_key(tmp_path: Path, value: float) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[[cameras]]\nid = "cam0"\nsource = "a.mp4"\n[outbox]\nreserve_mb = {value}\n'
    )
    from inspector.config import load_settings

    with pytest.raises(ConfigError) as error:
        load_settings(config)
    (line,) = str(error.value).splitlines()
    assert line.startswith(f"{config}: outbox.reserve_mb: ") and "0 (none) or more" in line
    assert OutboxSettings(reserve_mb=0).reserve_mb == 0
