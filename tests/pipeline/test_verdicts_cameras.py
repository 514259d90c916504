"""part_id on industrial cameras: the camera's own block count, through the whole daemon.

GenICam through the GenTL simulator that ships with `genicam` (viky.cti; its devices run on
their internal trigger at AcquisitionFrameRate: they have no TriggerMode feature), and a
software-triggered Basler camera through pylon's emulation (PYLON_CAMEMU)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.cameras import needs_genicam, needs_pylon, viky
from tests.fixtures.models import build_color_model
from tests.fixtures.verdicts import VerdictSubscriber, first_verdicts, start_daemon, write_config

pytestmark = pytest.mark.e2e


def run_camera(tmp_path: Path, broker: Any, camera: str, env: dict[str, str]) -> Any:
    build_color_model(tmp_path / "m.onnx", size=100)
    line = write_config(tmp_path, broker.port, camera, "[verdicts]\nenabled = true\n")
    text = (
        (tmp_path / "config.toml")
        .read_text()
        .replace("size = 64\nstride = 64", "size = 100\nstride = 100")
    )
    (tmp_path / "config.toml").write_text(text)
    subscriber = VerdictSubscriber(broker.host, broker.port, line)
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        daemon = start_daemon(tmp_path)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    try:
        subscriber.wait_for(8, timeout=60)
        daemon.send_signal(signal.SIGTERM)
        out, err = daemon.communicate(timeout=60)
        assert daemon.returncode == 0, err[-3000:]
        received = subscriber.settle()
    finally:
        if daemon.poll() is None:
            daemon.kill()
        subscriber.close()
    assert subscriber.errors == []
    return json.loads(out), received


def check_part_ids(summary: dict[str, Any], received: list[dict[str, Any]], first: int) -> None:
    firsts = first_verdicts(received, "cam0")
    assert len(firsts) == summary["frames_captured"] >= 8  # every part grabbed has a verdict
    parts = [v["part_id"] for v in firsts]
    assert parts == [v["frame_id"] for v in firsts]  # the camera's block ID, as frame_id
    assert min(parts) >= first and parts == sorted(set(parts))  # block IDs only rise
    # A gap in the block IDs is a part the camera lost before it reached the daemon: counted.
    queue_drops = sum(1 for v in firsts if v.get("dropped"))
    assert (max(parts) - min(parts) + 1) - len(parts) == summary["frames_dropped"] - queue_drops


@needs_genicam
def test_part_id_follows_a_gentl_cameras_block_ids(tmp_path: Path, mosquitto: Any) -> None:
    camera = (
        f'[[cameras]]\nid = "cam0"\ntype = "gentl"\ncti = "{viky()}"\nsource = "serial:1"\n'
        "[cameras.features]\nAcquisitionFrameRate = 25.0\n"
    )
    check_part_ids(*run_camera(tmp_path, mosquitto, camera, {}), first=1)  # viky counts from 1


@needs_pylon
def test_part_id_follows_a_software_triggered_pylon_camera(tmp_path: Path, mosquitto: Any) -> None:
    camera = (
        '[[cameras]]\nid = "cam0"\ntype = "pylon"\nsource = "index:0"\nsoftware_trigger_hz = 20\n'
        '[cameras.features]\nTriggerMode = "On"\nTriggerSource = "Software"\n'
        'PixelFormat = "Mono8"\nWidth = 400\nHeight = 200\n'
    )
    check_part_ids(*run_camera(tmp_path, mosquitto, camera, {"PYLON_CAMEMU": "1"}), first=0)
