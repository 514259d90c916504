"""Faults a line throws at the daemon, with real processes: a broker outage, a killed
daemon with a backlog in its outbox. No event may be lost."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest
from models import build_color_model
from mqtt_helpers import Broker, Collector

pytestmark = pytest.mark.e2e

TILE = 32
DEFECT_EVERY = 4


def write_line(folder: Path, port: int, frames: int, fps: float) -> tuple[Path, str, set[int]]:
    """A realtime recording with a bright ("crack") tile every DEFECT_EVERY frames."""
    video = folder / f"line{frames}.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"mp4v"), fps, (2 * TILE, TILE))
    for i in range(frames):
        frame = np.full((TILE, 2 * TILE, 3), 60, np.uint8)
        if i % DEFECT_EVERY == 0:
            frame[:, TILE:] = 245
        writer.write(frame)
    writer.release()
    if not (folder / "m.onnx").exists():
        build_color_model(folder / "m.onnx", size=TILE)
    line = f"fault{uuid.uuid4().hex[:8]}"
    config = folder / f"{line}.toml"
    config.write_text(
        f'[line]\nid = "{line}"\n[[cameras]]\nid = "cam0"\nsource = "{video}"\nrealtime = true\n'
        f'[model]\npath = "m.onnx"\nthreads = 1\n[tiling]\nsize = {TILE}\nstride = {TILE}\n'
        f"[batching]\nmax_batch = 2\nmax_wait_ms = 1\n"
        f"[mqtt]\nport = {port}\nack_timeout_s = 60\nconnect_timeout_s = 5\n"
        f'[outbox]\npath = "outbox.sqlite"\n[logging]\nformat = "json"\n'
    )
    return config, line, {i for i in range(frames) if i % DEFECT_EVERY == 0}


def start_daemon(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "inspector", "run", "--config", str(config), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def outbox_ids(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute("SELECT event_id FROM events ORDER BY seq")]


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
        writer = cv2.VideoWriter(str(short), cv2.VideoWriter.fourcc(*"mp4v"), 10, (2 * TILE, TILE))
        for _ in range(3):
            writer.write(np.full((TILE, 2 * TILE, 3), 60, np.uint8))
        writer.release()
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
