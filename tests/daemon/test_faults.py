"""Faults a line throws at the daemon, with real processes: a broker outage, a killed
daemon with a backlog in its outbox. No event may be lost."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.faults import TILE, outbox_ids, start_daemon, write_line
from tests.fixtures.mqtt import Broker, Collector
from tests.fixtures.videos import write_video

pytestmark = pytest.mark.e2e


def test_a_ten_second_broker_outage_loses_no_event(tmp_path: Path) -> None:
    broker = Broker(tmp_path, persistence=True)
    broker.start()
    try:
        config, line, expected = write_line(tmp_path, broker.port, frames=60, fps=10)
        collector = Collector(broker.host, broker.port, f"line/{line}/defects", persistent=True)
        daemon = start_daemon(config)
        time.sleep(2.0)
        broker.stop()  # mid-run: the daemon keeps inspecting, events wait in the outbox
        time.sleep(10.0)
        broker.start()
        out, err = daemon.communicate(timeout=90)
        assert daemon.returncode == 0, err[-3000:]
        summary = json.loads(out)
        assert summary["events"] == len(expected) and summary["frames_dropped"] == 0
        # QoS 1 is at least once: a redelivered duplicate must not stand in for a missing one.
        want = {f"{line}/cam0/{summary['run_id']}/{f}" for f in expected}
        deadline = time.monotonic() + 30
        ids: set[str] = set()
        while ids != want and time.monotonic() < deadline:
            messages = collector.wait_for(len(ids) + 1, timeout=1)
            ids = {json.loads(m.payload)["event_id"] for m in messages}
        assert want == ids
        assert outbox_ids(tmp_path / "outbox.sqlite") == []  # every ack emptied it
        collector.close()
    finally:
        broker.stop()


def test_a_killed_daemon_sends_its_backlog_at_the_next_start(tmp_path: Path) -> None:
    broker = Broker(tmp_path)
    broker.start()
    try:
        config, line, _ = write_line(tmp_path, broker.port, frames=80, fps=10)
        daemon = start_daemon(config)
        time.sleep(1.5)
        broker.stop()
        time.sleep(2.5)  # ~6 defect frames inspected with the broker gone
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=10)
        backlog = outbox_ids(tmp_path / "outbox.sqlite")
        assert len(backlog) >= 3, "the kill came with events on disk, not yet acknowledged"

        broker.start()
        collector = Collector(broker.host, broker.port, f"line/{line}/defects")
        # The next start (here on a short clean recording) sends the backlog first.
        short = tmp_path / "clean.mp4"
        write_video(short, (np.full((TILE, 2 * TILE, 3), 60, np.uint8) for _ in range(3)))
        config.write_text(config.read_text().replace("line80.mp4", "clean.mp4"))
        rerun = start_daemon(config)
        out, err = rerun.communicate(timeout=60)
        assert rerun.returncode == 0, err[-3000:]
        assert json.loads(out)["events"] == 0
        received = [json.loads(m.payload)["event_id"] for m in collector.wait_for(len(backlog))]
        assert received[: len(backlog)] == backlog  # all of it, oldest first
        assert outbox_ids(tmp_path / "outbox.sqlite") == []
        collector.close()
    finally:
        broker.stop()
