"""The Sparkplug B distribution in the daemon: installed beside it, found by entry point, made
from ``[sparkplug]`` and its context, fed by the pipeline's verdict stage. A SCADA host
(pysparkplug's decoder, not the sink's encoder) sees counts that match the verdict stream, and
a killed daemon leaves NDEATH on the broker."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.models import build_color_model
from tests.fixtures.mqtt import Broker
from tests.fixtures.processes import inspector
from tests.fixtures.sparkplug import Host, latest
from tests.fixtures.videos import tiles, write_video

pytestmark = pytest.mark.e2e

TILE = 32
FRAMES = 12
DEFECTS = {2, 5, 7}  # frames with a bright ("crack") tile


def write_line(folder: Path, port: int, group: str, *, loop: bool = False) -> Path:
    video = folder / "line.mp4"
    crack = [(1, 0, 245)]
    write_video(
        video, (tiles(2, 1, TILE, 60, crack if i in DEFECTS else []) for i in range(FRAMES))
    )
    build_color_model(folder / "m.onnx", size=TILE)
    line = f"spb{uuid.uuid4().hex[:6]}"
    looping = "realtime = true\nloop = true\n" if loop else ""
    config = folder / "line.toml"
    config.write_text(
        f'[line]\nid = "{line}"\n[[cameras]]\nid = "cam0"\nsource = "line.mp4"\n{looping}'
        f'[model]\npath = "m.onnx"\nthreads = 1\n[tiling]\nsize = {TILE}\nstride = {TILE}\n'
        f"[mqtt]\nport = {port}\n[verdicts]\nenabled = true\n"
        f'[sparkplug]\nenabled = true\ngroup_id = "{group}"\n[logging]\nformat = "json"\n'
    )
    return config


def test_the_daemon_publishes_the_verdicts_counts_to_a_sparkplug_host(
    tmp_path: Path, mosquitto: Broker, mqtt_messages: Any
) -> None:
    group = f"g{uuid.uuid4().hex[:8]}"
    config = write_line(tmp_path, mosquitto.port, group)
    line = config.read_text().split('"')[1]
    host = Host(mosquitto, group)
    verdicts = mqtt_messages(f"line/{line}/verdicts/cam0")
    result = inspector("run", "--config", str(config), "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    stream = [json.loads(m.payload) for m in verdicts.wait_for(FRAMES, timeout=10)]
    counts = Counter(v["verdict"] for v in stream)
    assert counts == {"ok": FRAMES - len(DEFECTS), "nok": len(DEFECTS)}
    got = host.wait_until(lambda got: any(m.kind == "NDEATH" for m in got))
    kinds = [m.kind for m in got]
    assert kinds[0] == "NBIRTH" and "DBIRTH" in kinds and kinds[-1] == "NDEATH"
    values = latest(got)["cam0"]
    assert values["Verdict/OkCount"] == counts["ok"]
    assert values["Verdict/NokCount"] == counts["nok"]
    assert values["Verdict/LateCount"] == 0
    assert values["Frame/LastId"] == FRAMES - 1
    assert values["Model/Name"] == "demo-color"
    assert got[0].values["bdSeq"] == got[-1].payload.bd_seq_metric.value
    host.collector.close()


def test_a_killed_daemon_leaves_ndeath_on_the_broker(tmp_path: Path, mosquitto: Broker) -> None:
    group = f"g{uuid.uuid4().hex[:8]}"
    config = write_line(tmp_path, mosquitto.port, group, loop=True)
    host = Host(mosquitto, group)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "inspector", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        births = host.wait_until(
            lambda got: any(m.kind == "DDATA" for m in got), timeout=60
        )  # the line is running and publishing
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=10)
        # The broker sends the will once it sees the connection die: at once for a closed socket.
        got = host.wait_until(lambda got: any(m.kind == "NDEATH" for m in got), timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
        host.collector.close()
    death = next(m for m in got if m.kind == "NDEATH")
    assert death.payload.bd_seq_metric.value == births[0].values["bdSeq"]
    assert "DDEATH" not in [m.kind for m in got]
