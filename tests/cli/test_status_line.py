"""``inspector run`` in a terminal prints a status line at the stats interval; the journal
gets JSON logs only."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inspector.daemon import status_line
from inspector.types.results import SinkHealth
from tests.fixtures.line import write_video
from tests.fixtures.models import build_color_model
from tests.fixtures.mqtt import Broker

pytestmark = pytest.mark.e2e

STATS = {
    "fps": 12.34,
    "tiles_per_s": 74.0,
    "latency_ms": {"p50": 41.2, "p95": 60.0, "p99": 88.8, "max": 90.0},
    "events": 3,
    "dropped_frames": 1,
}


def test_status_line_names_rate_latency_drops_and_every_sink() -> None:
    health = {"mqtt": SinkHealth("degraded", "broker: down (refused)"), "evidence": SinkHealth()}
    assert status_line(STATS, health) == (
        "12.3 frames/s, 74 tiles/s, latency p50 41 / p99 89 ms, 3 events, 1 dropped; "
        "mqtt degraded (broker: down (refused)); evidence ok"
    )


def read_until(master: int, wanted: str, timeout_s: float) -> str:
    seen = b""
    deadline = time.monotonic() + timeout_s
    while wanted.encode() not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                seen += os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
    return seen.decode(errors="replace")


def test_run_in_a_terminal_prints_the_status_line(tmp_path: Path, mosquitto: Broker) -> None:
    build_color_model(tmp_path / "m.onnx", size=64)
    write_video(tmp_path / "line.mp4")
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[[cameras]]
id = "cam0"
source = "line.mp4"
loop = true
fps = 20
[model]
path = "m.onnx"
threads = 1
[tiling]
size = 64
stride = 64
[mqtt]
port = {mosquitto.port}
stats_interval_s = 0.5
"""
    )
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "inspector", "run", "--config", str(config)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    try:
        output = read_until(master, "; mqtt ok", timeout_s=60)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
        os.close(master)
    status = [line for line in output.splitlines() if line.startswith("inspector: ")]
    assert status, output[-2000:]
    assert "frames/s" in status[-1] and "p99" in status[-1] and status[-1].endswith("; mqtt ok")
