"""FFmpeg (inside OpenCV) writes to stderr itself; the daemon's stderr carries its own lines only.

Seen before: ``[mov,mp4,m4a,3gp,3g2,mj2 @ 0x…] moov atom not found`` beside our error for a
truncated recording, and ``[tcp @ 0x…] Connection to tcp://… failed`` for a dead RTSP camera,
again at every reconnect attempt.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inspector.errors import EX_NOINPUT
from tests.fixtures.models import build_color_model
from tests.fixtures.processes import inspector
from tests.fixtures.videos import write_video

pytestmark = pytest.mark.e2e

TILE = 32


def _config(folder: Path, source: str, port: int) -> Path:
    build_color_model(folder / "m.onnx", size=TILE)
    config = folder / "line.toml"
    config.write_text(
        f'[line]\nid = "ff{uuid.uuid4().hex[:6]}"\n[[cameras]]\nid = "cam0"\nsource = "{source}"\n'
        f'[model]\npath = "m.onnx"\nthreads = 1\n[tiling]\nsize = {TILE}\nstride = {TILE}\n'
        f"[mqtt]\nport = {port}\n"
    )
    return config


def _ffmpeg_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " @ 0x" in line or "moov atom" in line]


def test_a_truncated_recording_is_one_line_of_ours(tmp_path: Path, mosquitto: Any) -> None:
    video = tmp_path / "cut.mp4"
    write_video(video, (np.full((TILE, 2 * TILE, 3), 10 * i, np.uint8) for i in range(20)))
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 2])  # the index (moov) is at the end: gone
    result = inspector("run", "--config", str(_config(tmp_path, str(video), mosquitto.port)))
    assert result.returncode == EX_NOINPUT, result.stderr
    assert _ffmpeg_lines(result.stderr) == [], result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cut.mp4" in lines[0], result.stderr


def test_a_dead_rtsp_camera_is_retried_without_ffmpeg_lines(
    tmp_path: Path, mosquitto: Any, unused_port: int
) -> None:
    source = f"rtsp://127.0.0.1:{unused_port}/line"
    config = _config(tmp_path, source, mosquitto.port)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "inspector", "run", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(4)  # the first open and two or three reconnect attempts
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert daemon.returncode == 0, err[-3000:]
    assert "camera_down_at_start" in err, err
    assert _ffmpeg_lines(err) == [], err
