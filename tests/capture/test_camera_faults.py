"""A network camera (HTTP MJPEG, decoded by FFmpeg) that fails, stalls and recovers while a
second camera keeps inspecting: real daemon process, real broker, real decoder."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.fixtures.cameras import MjpegCamera
from tests.fixtures.models import build_color_model
from tests.fixtures.net import free_port, scrape
from tests.fixtures.processes import wait_until
from tests.fixtures.videos import write_video

pytestmark = pytest.mark.e2e

TILE = 32


def test_a_camera_that_fails_stalls_and_recovers_leaves_the_other_unaffected(
    tmp_path: Path, mosquitto: Any, mqtt_messages: Any
) -> None:
    video = tmp_path / "line.mp4"
    write_video(
        video, (np.full((TILE, TILE, 3), 245 if i % 4 == 0 else 60, np.uint8) for i in range(60))
    )
    build_color_model(tmp_path / "m.onnx", size=TILE)
    camera = MjpegCamera()
    line, port = f"cams{uuid.uuid4().hex[:6]}", free_port()
    config = tmp_path / "line.toml"
    config.write_text(
        f'[line]\nid = "{line}"\n'
        f'[[cameras]]\nid = "cam0"\nsource = "{video}"\nrealtime = true\n'
        f'[[cameras]]\nid = "cam1"\nsource = "{camera.url}"\nopen_timeout_s = 1\n'
        "read_timeout_s = 1\n"
        f'[model]\npath = "m.onnx"\nthreads = 1\n[tiling]\nsize = {TILE}\nstride = {TILE}\n'
        f"[batching]\nmax_wait_ms = 5\n[mqtt]\nport = {mosquitto.port}\n[metrics]\nport = {port}\n"
    )
    status = mqtt_messages(f"line/{line}/status/cam1")
    events = mqtt_messages(f"line/{line}/defects")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "inspector", "run", "--config", str(config), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until(lambda: scrape(port)["inspector_frames_captured_total[cam1]"] > 5, 40, "cam1")
        camera.mode = "stall"  # frames stop: the read times out, the daemon reconnects
        wait_until(lambda: scrape(port)["inspector_camera_errors_total[cam1]"] >= 1, 40, "stall")
        camera.mode = "down"  # reopening fails (503) and is retried with backoff
        time.sleep(1.5)
        camera.mode = "serve"
        wait_until(lambda: scrape(port)["inspector_camera_reconnects_total[cam1]"] >= 1, 40,
                   "reconnect")  # fmt: skip
        before = scrape(port)["inspector_frames_captured_total[cam1]"]
        wait_until(lambda: scrape(port)["inspector_frames_captured_total[cam1]"] > before + 5,
                   40, "frames after the reconnect")  # fmt: skip
        # cam0 played its whole recording meanwhile.
        wait_until(lambda: scrape(port)["inspector_frames_captured_total[cam0]"] == 60, 40,
                   "cam0's recording")  # fmt: skip
        final = scrape(port)
        daemon.send_signal(signal.SIGTERM)
        out, err = daemon.communicate(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
        camera.close()
    assert daemon.returncode == 0, err[-3000:]
    assert json.loads(out)["frames_dropped"] == 0
    assert final["inspector_camera_errors_total[cam0]"] == 0
    assert final["inspector_camera_errors_total[cam1]"] >= 2  # the stall, and a 503 at least
    states = [json.loads(m.payload)["state"] for m in status.wait_for(3, timeout=5)]
    assert states[:3] == ["up", "reconnecting", "up"], states
    lost = next(json.loads(m.payload) for m in status.messages if b"reconnecting" in m.payload)
    assert "cam1" in lost["error"] and lost["errors"] >= 1
    # Every defect frame of cam0's recording was reported, the outage notwithstanding.
    delivered = {json.loads(m.payload)["frame_id"] for m in events.wait_for(15, timeout=10)}
    assert delivered == set(range(0, 60, 4))


def test_a_camera_down_at_start_is_retried_while_the_other_inspects(
    tmp_path: Path, mosquitto: Any, mqtt_messages: Any
) -> None:
    video = tmp_path / "line.mp4"
    write_video(
        video,
        (np.full((TILE, TILE, 3), 245 if i % 4 == 0 else 60, np.uint8) for i in range(20)),
        20,
    )
    build_color_model(tmp_path / "m.onnx", size=TILE)
    camera = MjpegCamera()
    camera.mode = "down"
    line, port = f"down{uuid.uuid4().hex[:6]}", free_port()
    config = tmp_path / "line.toml"
    config.write_text(
        f'[line]\nid = "{line}"\n'
        f'[[cameras]]\nid = "cam0"\nsource = "{video}"\nrealtime = true\n'
        f'[[cameras]]\nid = "cam1"\nsource = "{camera.url}"\nopen_timeout_s = 1\n'
        f'[model]\npath = "m.onnx"\nthreads = 1\n[tiling]\nsize = {TILE}\nstride = {TILE}\n'
        f"[mqtt]\nport = {mosquitto.port}\n[metrics]\nport = {port}\n"
    )
    status = mqtt_messages(f"line/{line}/status/cam1")
    events = mqtt_messages(f"line/{line}/defects")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "inspector", "run", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until(lambda: scrape(port)["inspector_frames_captured_total[cam0]"] == 20, 40,
                   "cam0's recording")  # fmt: skip
        assert scrape(port)["inspector_frames_captured_total[cam1]"] == 0
        camera.mode = "serve"
        wait_until(lambda: scrape(port)["inspector_frames_captured_total[cam1]"] > 5, 40,
                   "cam1 once it is up")  # fmt: skip
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
        camera.close()
    assert daemon.returncode == 0, err[-3000:]
    assert "camera_down_at_start" in err
    states = [json.loads(m.payload)["state"] for m in status.wait_for(2, timeout=5)]
    assert states[:2] == ["reconnecting", "up"]
    assert {json.loads(m.payload)["frame_id"] for m in events.wait_for(5)} == {0, 4, 8, 12, 16}
