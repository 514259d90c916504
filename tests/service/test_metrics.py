"""The Prometheus endpoint and /healthz of a running daemon (a real process, a real broker)."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inspector.pipeline.stats import Histogram, PipelineStats
from tests.fixtures.models import build_color_model
from tests.fixtures.net import free_port, get_text, scrape
from tests.fixtures.processes import start_daemon, wait_until
from tests.fixtures.videos import write_video

TILE = 32


def test_histogram_buckets_are_cumulative() -> None:
    histogram = Histogram((10, 100))
    for value in (5, 10, 50, 500):
        histogram.observe(value)
    assert histogram.cumulative() == [(10, 2), (100, 3), (float("inf"), 4)]
    assert histogram.total == 565


def start_line(
    tmp_path: Path, broker_port: int, stall_after_s: float, busy_layers: int = 0
) -> tuple[subprocess.Popen[str], str]:
    video = tmp_path / "line.mp4"
    write_video(
        video, (np.full((TILE, 2 * TILE, 3), 245 if i % 2 else 60, np.uint8) for i in range(40))
    )
    build_color_model(tmp_path / "m.onnx", size=TILE, busy_layers=busy_layers)
    port = free_port()
    config = tmp_path / "line.toml"
    line = f"metrics{uuid.uuid4().hex[:6]}"
    config.write_text(
        f'[line]\nid = "{line}"\n[[cameras]]\nid = "cam0"\nsource = "{video}"\nrealtime = true\n'
        f'[model]\npath = "m.onnx"\nthreads = 1\n[tiling]\nsize = {TILE}\nstride = {TILE}\n'
        f"[mqtt]\nport = {broker_port}\n[metrics]\nport = {port}\n"
        f"stall_after_s = {stall_after_s}\n"
    )
    return start_daemon(config), f"http://127.0.0.1:{port}"


@pytest.mark.e2e
def test_metrics_and_health_of_a_running_daemon(tmp_path: Path, mosquitto: Any) -> None:
    daemon, base = start_line(tmp_path, mosquitto.port, stall_after_s=1)
    try:

        def ten_frames_in() -> dict[str, float] | None:
            metrics = scrape(base + "/metrics")
            return metrics if metrics.get("inspector_frames_inferred_total", 0) >= 10 else None

        metrics = wait_until(ten_frames_in, 20, "10 frames inferred")
        assert metrics["inspector_frames_inferred_total"] >= 10
        assert metrics["inspector_frames_captured_total[cam0]"] >= 10
        assert (
            metrics["inspector_tiles_inferred_total"]
            == 2 * metrics["inspector_frames_inferred_total"]
        )
        assert metrics["inspector_events_published_total"] >= 4
        assert metrics["inspector_broker_connected"] == 1
        assert metrics["inspector_frames_dropped_total[cam0]"] == 0
        assert (
            metrics["inspector_latency_seconds_count"] == metrics["inspector_frames_inferred_total"]
        )
        assert "inspector_outbox_backlog" in metrics
        assert get_text(base + "/healthz") == (200, "ok\n")
        assert get_text(base + "/nothing")[0] == 404
    finally:
        _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err[-2000:]


@pytest.mark.e2e
def test_healthz_fails_while_inference_is_stalled(tmp_path: Path, mosquitto: Any) -> None:
    # ~0.1 s per batch (150 convolutions) against a 0.03 s stall limit: 503 between frames.
    daemon, base = start_line(tmp_path, mosquitto.port, stall_after_s=0.03, busy_layers=150)
    seen: set[int] = set()
    texts: list[str] = []
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and daemon.poll() is None and 503 not in seen:
            try:
                status, text = get_text(base + "/healthz")
            except OSError:
                time.sleep(0.05)
                continue
            seen.add(status)
            texts.append(text)
            time.sleep(0.01)
    finally:
        daemon.kill()
        _, err = daemon.communicate(timeout=30)
    assert 503 in seen, (texts[-5:], err[-2000:])
    assert any(t.startswith("stalled: no frame inferred for") for t in texts)


def test_each_reader_gets_rates_over_its_own_interval() -> None:
    """The MQTT stats and the systemd status line must not shorten each other's window."""
    stats = PipelineStats()
    stats.started_ns -= 10 * 10**9  # started 10 s ago
    mqtt, status = stats.rate_window(), stats.rate_window()
    for _ in range(50):
        stats.record_frame(5.0, event=False)
    assert stats.snapshot(mqtt)["fps"] == pytest.approx(5.0, rel=0.01)  # 50 frames in 10 s
    assert stats.snapshot(mqtt)["fps"] == 0.0  # nothing since mqtt's last look
    assert stats.snapshot(status)["fps"] == pytest.approx(5.0, rel=0.01)  # untouched by mqtt
    assert stats.snapshot()["fps"] == pytest.approx(5.0, rel=0.01)  # no window: since start
