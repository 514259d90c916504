"""Faults at start-up and on the outbox's disk, with real processes and a real Mosquitto:
a broker that comes up after the daemon, a second daemon on the same outbox, a full disk."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures.faults import outbox_ids, start_daemon, write_line
from tests.fixtures.mqtt import Broker, Collector
from tests.fixtures.net import free_port, get_text, metric
from tests.fixtures.processes import wait_until

pytestmark = pytest.mark.e2e


def with_metrics(config: Path, outbox: Path | None = None) -> int:
    """Give the daemon a /metrics port (and optionally an outbox elsewhere); returns the port."""
    port = free_port()
    text = config.read_text() + f"[metrics]\nport = {port}\n"
    if outbox is not None:
        text = text.replace('path = "outbox.sqlite"', f'path = "{outbox}"')
    config.write_text(text)
    return port


def stored(outbox: Path) -> int:
    """Events in the daemon's outbox; 0 before the daemon has made it."""
    if not outbox.exists():
        return 0
    try:
        return len(outbox_ids(outbox))
    except sqlite3.OperationalError:  # the file is there, its table not yet
        return 0


def holder(lock: Path) -> str:
    return lock.read_text().strip() if lock.exists() else ""


def test_a_broker_down_for_the_first_15_s_loses_nothing_and_sends_once(tmp_path: Path) -> None:
    broker = Broker(tmp_path, persistence=True)
    broker.start()
    config, line, expected = write_line(tmp_path, broker.port, frames=60, fps=10)
    # A durable subscription first, so the broker queues what arrives for it after a restart.
    collector = Collector(broker.host, broker.port, f"line/{line}/defects", persistent=True)
    broker.stop()
    port = with_metrics(config)
    daemon = start_daemon(config)
    try:
        started = time.monotonic()
        wait_until(lambda: stored(tmp_path / "outbox.sqlite") == len(expected), 30,
                   "every event of the recording on disk")  # fmt: skip
        status, text = get_text(f"http://127.0.0.1:{port}/healthz")
        assert (status, text.split(" (")[0]) == (200, "degraded: broker: down")
        assert metric(port, "inspector_broker_connected") == 0
        assert daemon.poll() is None, "the daemon must wait for the broker, not exit"
        time.sleep(max(0.0, 15 - (time.monotonic() - started)))
        assert daemon.poll() is None
        broker.start()
        out, err = daemon.communicate(timeout=90)
        assert daemon.returncode == 0, err[-3000:]
        summary = json.loads(out)
        events = [json.loads(m.payload) for m in collector.wait_for(len(expected), timeout=30)]
        ids = [e["event_id"] for e in events]
        assert sorted(ids) == sorted(f"{line}/cam0/{summary['run_id']}/{f}" for f in expected)
        collector.assert_no_more(timeout=2.0)  # exactly once: no event sent twice
        assert outbox_ids(tmp_path / "outbox.sqlite") == []
    finally:
        if daemon.poll() is None:
            daemon.kill()
        collector.close()
        broker.stop()


def test_a_second_daemon_on_the_same_outbox_is_refused_in_one_line(
    tmp_path: Path, mosquitto: Broker
) -> None:
    config, _, _ = write_line(tmp_path, mosquitto.port, frames=100, fps=10)
    lock = tmp_path / "outbox.sqlite.lock"
    first = start_daemon(config)
    try:
        wait_until(lambda: holder(lock) == str(first.pid), 30, "the first daemon's lock")
        second = subprocess.run(
            [*first.args[:-1]], capture_output=True, text=True, timeout=60
        )  # the same command line, without --json
        assert second.returncode == 78
        last = second.stderr.strip().splitlines()[-1]
        assert last == (
            f"inspector run: error: {tmp_path / 'outbox.sqlite'}: outbox in use by another "
            f"daemon (PID {first.pid}); each daemon needs its own outbox.path"
        )
        assert first.poll() is None, "the first daemon goes on"
    finally:
        first.terminate()
        first.communicate(timeout=60)
    assert first.returncode == 0


@pytest.fixture
def tiny_disk(tmpfs: Callable[[str, str], Path]) -> Path:
    """A real 1 MB tmpfs, as a line PC's small state partition."""
    return tmpfs("state", "size=1m")


def fill(folder: Path) -> None:
    """Write a file until the disk says ENOSPC."""
    with (folder / "filler").open("wb", buffering=0) as filler:
        for chunk in (65536, 4096, 512, 1):
            try:
                while True:
                    filler.write(bytes(chunk))
            except OSError:
                continue


def test_a_full_outbox_disk_shows_in_metrics_health_and_exit_status(
    tmp_path: Path, mosquitto: Broker, tiny_disk: Path
) -> None:
    config, line, expected = write_line(tmp_path, mosquitto.port, frames=60, fps=10)
    outbox = tiny_disk / "outbox.sqlite"
    port = with_metrics(config, outbox)
    collector = Collector(mosquitto.host, mosquitto.port, f"line/{line}/defects")
    daemon = start_daemon(config)
    try:
        wait_until(lambda: holder(outbox.with_name("outbox.sqlite.lock")) == str(daemon.pid), 30,
                   "the daemon's outbox")  # fmt: skip
        fill(tiny_disk)
        wait_until(lambda: (metric(port, "inspector_outbox_write_errors_total") or 0) > 0, 30,
                   "a counted outbox write error")  # fmt: skip
        status, text = get_text(f"http://127.0.0.1:{port}/healthz")
        assert status == 200 and "outbox:" in text and text.startswith("degraded"), text
        out, err = daemon.communicate(timeout=90)
    finally:
        if daemon.poll() is None:
            daemon.kill()
        collector.close()
    assert daemon.returncode == 74, err[-3000:]
    summary = json.loads(out)  # what was inspected, and that the run did not end clean
    assert summary["exit_code"] == 74 and "could not be written" in summary["error"]
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"inspector run: error: {outbox}: ") and "could not be written" in last
    # The broker was up: inspection and delivery went on.
    assert len(collector.messages) == len(expected)
