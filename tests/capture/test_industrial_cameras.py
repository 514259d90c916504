"""GenICam cameras through the GenTL simulator that ships with `genicam` (viky.cti: three
400x400 RGBa8 devices), and Basler cameras through pylon's emulation (PYLON_CAMEMU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from inspector.capture.sources._industrial import LostFrames, to_bgr
from inspector.capture.sources.gentl import GenTlSettings, GenTlSource
from inspector.capture.sources.pylon import PylonSettings, PylonSource
from inspector.capture.sources.registry import parse_camera_settings
from inspector.engines.card import load_model, write_card
from inspector.errors import ConfigError
from tests.fixtures.cameras import needs_genicam, needs_pylon, viky
from tests.fixtures.models import build_color_model


@pytest.mark.parametrize(
    ("pixel_format", "channels", "code"),
    [
        ("RGB8", 3, cv2.COLOR_RGB2BGR),
        ("RGBa8", 4, cv2.COLOR_RGBA2BGR),
        ("BGRa8", 4, cv2.COLOR_BGRA2BGR),
        ("RGB8Packed", 3, cv2.COLOR_RGB2BGR),
        ("BayerRG8", 1, cv2.COLOR_BayerRGGB2BGR),
        ("BayerBG8", 1, cv2.COLOR_BayerBGGR2BGR),
    ],
)
def test_pixel_formats_become_bgr_in_one_pass(pixel_format: str, channels: int, code: int) -> None:
    rng = np.random.default_rng(0)
    shape = (6, 8, channels) if channels > 1 else (6, 8)
    image = rng.integers(0, 256, shape, np.uint8)
    buffer = image.ravel()  # what a GenTL buffer hands over: flat bytes
    converted = to_bgr(buffer, 8, 6, pixel_format)
    assert np.array_equal(converted, cv2.cvtColor(image, code))
    assert not np.shares_memory(converted, buffer)  # the buffer can be requeued at once


def test_mono_and_bgr_are_one_copy_and_unknown_formats_are_named() -> None:
    flat = np.arange(48, dtype=np.uint8)
    mono = to_bgr(flat, 8, 6, "Mono8")
    assert mono.shape == (6, 8) and not np.shares_memory(mono, flat)
    assert to_bgr(np.arange(144, dtype=np.uint8), 8, 6, "BGR8").shape == (6, 8, 3)
    with pytest.raises(Exception, match="pixel format Mono12 is not supported; set PixelFormat"):
        to_bgr(flat, 8, 6, "Mono12")


def test_lost_frames_come_from_block_id_gaps_and_incomplete_buffers() -> None:
    lost = LostFrames()
    for block in (1, 2, 5, 6):
        lost.seen(block)
    lost.incomplete()
    assert lost.lost == 2 + 1
    lost.restart()
    lost.seen(1)  # a reopened camera starts again: no gap
    assert lost.lost == 3


def test_a_gentl_camera_needs_a_producer_and_a_selector() -> None:
    with pytest.raises(ValueError, match=r"gentl\.cti\n  Field required"):
        parse_camera_settings(id="c", type="gentl", source="serial:1")
    with pytest.raises(ValueError, match="serial:SN, name:USER-NAME or index:N"):
        parse_camera_settings(id="c", type="gentl", cti=Path("x.cti"), source="1")
    with pytest.raises(ValueError, match="a pylon camera's source is serial:SN"):
        PylonSettings(id="c", source="/dev/video0")
    camera = parse_camera_settings(id="c", type="gentl", cti="x.cti", source="name:top")
    assert isinstance(camera, GenTlSettings) and camera.cti == Path("x.cti")


@needs_genicam
def test_gentl_source_uses_the_cameras_block_ids_and_features() -> None:
    settings = GenTlSettings(
        id="cam0", cti=viky(), source="serial:1",
        features={"AcquisitionFrameRate": 50.0},
    )  # fmt: skip
    source = GenTlSource(settings)
    source.open()
    try:
        grabs = [source.grab() for _ in range(4)]
        assert source.nominal_fps() == 50.0
    finally:
        source.close()
    ids = [g.frame_id for g in grabs if g is not None]
    assert len(ids) == 4 and ids[0] >= 1  # the device's block IDs, which start at 1
    assert ids == sorted(set(ids))
    # A slow reader makes the simulator skip blocks: each skipped one is counted as lost.
    assert source.lost == (ids[-1] - ids[0] + 1) - len(ids)
    assert all(g is not None and g.image.shape == (400, 400, 3) for g in grabs)


@needs_genicam
@pytest.mark.parametrize(
    ("features", "message"),
    [
        ({"NoSuchThing": 1}, "features.NoSuchThing: the camera has no such feature"),
        ({"PayloadSize": 5}, "features.PayloadSize: the feature is not writable"),
        ({"PixelFormat": "Purple16"}, "features.PixelFormat: cannot set 'Purple16'"),
    ],
)
def test_bad_features_are_clear_errors(features: dict[str, Any], message: str) -> None:
    settings = GenTlSettings(id="cam0", cti=viky(), source="index:0", features=features)
    with pytest.raises(ConfigError, match=message):
        GenTlSource(settings).open()


def run_daemon_on(tmp_path: Path, port: int, camera: str, env: dict[str, str], events: Any) -> Any:
    model = tmp_path / "m.onnx"
    card = build_color_model(model, size=100)
    # Thresholds of 0: every tile is a defect, so every frame yields an event to check.
    write_card(card.model_copy(update={"thresholds": {"crack": 0.0, "stain": 0.0}}), model)
    load_model(model)
    line = f"cam{uuid.uuid4().hex[:6]}"
    config = tmp_path / "line.toml"
    config.write_text(
        f'[line]\nid = "{line}"\n{camera}\n[model]\npath = "m.onnx"\nthreads = 1\n'
        f"[tiling]\nsize = 100\nstride = 100\n[mqtt]\nport = {port}\n"
    )
    collector = events(f"line/{line}/defects")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "inspector", "run", "--config", str(config), "--json"],
        env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    received = collector.wait_for(5, timeout=30)
    daemon.send_signal(signal.SIGTERM)
    out, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err[-3000:]
    return json.loads(out), [json.loads(m.payload) for m in received]


@needs_genicam
@pytest.mark.e2e
def test_the_daemon_inspects_a_gentl_camera_end_to_end(
    tmp_path: Path, mosquitto: Any, mqtt_messages: Any
) -> None:
    camera = (
        f'[[cameras]]\nid = "cam0"\ntype = "gentl"\ncti = "{viky()}"\nsource = "serial:2"\n'
        "[cameras.features]\nAcquisitionFrameRate = 25.0\n"
    )
    summary, events = run_daemon_on(tmp_path, mosquitto.port, camera, {}, mqtt_messages)
    assert len(events) >= 5
    ids = [e["frame_id"] for e in events]
    assert ids == sorted(ids) and min(ids) >= 1  # viky's block IDs start at 1
    assert all(e["frame"]["width"] == 400 and e["frame"]["tiles"] == 16 for e in events)
    assert summary["frames_inferred"] >= 5


@needs_pylon
@pytest.mark.e2e
def test_the_daemon_inspects_a_software_triggered_pylon_camera(
    tmp_path: Path, mosquitto: Any, mqtt_messages: Any
) -> None:
    camera = (
        '[[cameras]]\nid = "cam0"\ntype = "pylon"\nsource = "index:0"\n'
        "software_trigger_hz = 20\n"
        '[cameras.features]\nTriggerMode = "On"\nTriggerSource = "Software"\n'
        'PixelFormat = "Mono8"\nWidth = 400\nHeight = 200\n'
    )
    _, events = run_daemon_on(
        tmp_path, mosquitto.port, camera, {"PYLON_CAMEMU": "1"}, mqtt_messages
    )
    ids = [e["frame_id"] for e in events]
    assert len(ids) >= 5 and ids == sorted(ids)
    assert all(e["frame"]["width"] == 400 and e["frame"]["height"] == 200 for e in events)


@needs_pylon
def test_a_triggered_camera_waits_without_faults(monkeypatch: pytest.MonkeyPatch) -> None:
    from inspector.capture.capture_thread import CaptureThread
    from inspector.capture.frame_queue import FrameQueue, QueuePolicy

    monkeypatch.setenv("PYLON_CAMEMU", "1")
    settings = PylonSettings(
        id="cam0", source="index:0", read_timeout_s=0.2,
        features={"TriggerMode": "On", "TriggerSource": "Software"},
    )  # fmt: skip
    source = PylonSource(settings)  # no software trigger: nothing comes, as between parts
    source.open()
    frames = FrameQueue(4, QueuePolicy.DROP_OLDEST)
    stop = threading.Event()
    thread = CaptureThread("cam0", source, frames, stop)
    thread.start()
    time.sleep(1.0)  # five fetch timeouts
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert thread.errors == 0 and thread.captured == 0 and thread.error is None


@needs_genicam
def test_inspector_cameras_lists_devices_and_features() -> None:
    listing = subprocess.run(
        [sys.executable, "-m", "inspector", "cameras", "--cti", str(viky()), "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert listing.returncode == 0, listing.stderr
    devices = [json.loads(line) for line in listing.stdout.splitlines()]
    assert [d["serial"] for d in devices] == ["0", "1", "2"]
    assert {d["model"] for d in devices} == {"Viky"}
    features = subprocess.run(
        [sys.executable, "-m", "inspector", "cameras", "--cti", str(viky()),
         "--features", "serial:0", "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    rows = {row["name"]: row for row in map(json.loads, features.stdout.splitlines())}
    assert rows["PixelFormat"]["access"] == "read-write" and rows["PixelFormat"]["value"] == "RGBa8"
    assert rows["PayloadSize"]["access"] == "read-only"
