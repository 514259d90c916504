"""A camera that is not there (issue 18): said once, with the video devices this PC has and
what to check, then retried quietly with backoff, the state on the status topic; no raw
OpenCV warnings."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from inspector.capture.sources import usb
from inspector.capture.sources.usb import UsbSettings, UsbSource, video_devices
from inspector.errors import SourceError
from tests.fixtures.models import build_color_model

ABSENT = "/dev/video63"


@pytest.fixture
def fake_devices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A /dev and /sys/class/video4linux with two UVC nodes (capture and metadata) and a
    plain file that is not a device."""
    dev, sys_dir = tmp_path / "dev", tmp_path / "sys"
    for n, name in ((10, "HD Webcam C615"), (11, "HD Webcam C615"), (2, "")):
        (dev / f"video{n}").parent.mkdir(parents=True, exist_ok=True)
        (dev / f"video{n}").touch()
        if name:
            (sys_dir / f"video{n}").mkdir(parents=True)
            (sys_dir / f"video{n}" / "name").write_text(name + "\n")
    (dev / "videox").touch()
    monkeypatch.setattr(usb, "_DEV", dev)
    monkeypatch.setattr(usb, "_SYS", sys_dir)
    return dev


def test_the_video_devices_of_this_pc_in_number_order(fake_devices: Path) -> None:
    assert video_devices() == [
        (str(fake_devices / "video2"), ""),
        (str(fake_devices / "video10"), "HD Webcam C615"),
        (str(fake_devices / "video11"), "HD Webcam C615"),
    ]


def test_a_missing_camera_says_what_this_pc_has_and_what_to_check(
    fake_devices: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    source = UsbSource(UsbSettings(id="cam0", source="7"))
    with pytest.raises(SourceError) as caught:
        source.open()
    assert str(caught.value) == (
        f"camera cam0: cannot open 7: there is no {fake_devices}/video7; "
        f"this PC has {fake_devices}/video2, "
        f"{fake_devices}/video10 (HD Webcam C615), {fake_devices}/video11 (HD Webcam C615). "
        "Check the camera's cable and power, and `source` in the config (`inspector cameras` "
        "lists the cameras)"
    )
    assert capfd.readouterr().err == ""  # OpenCV was not asked: none of its warnings


def test_a_device_that_delivers_nothing_is_told_apart(fake_devices: Path) -> None:
    # A plain file where the node would be: OpenCV cannot open it as a camera.
    source = UsbSource(UsbSettings(id="cam0", source="/dev/video10"))
    with pytest.raises(SourceError, match=r"video10 is there but does not deliver video; check"):
        source.open()


def test_the_daemon_says_it_once_and_retries_quietly(
    tmp_path: Path, mosquitto: Any, mqtt_messages: Any
) -> None:
    if Path(ABSENT).exists():
        pytest.fail(f"{ABSENT} exists on this machine: pick another absent device")
    build_color_model(tmp_path / "m.onnx", size=32)
    line = f"nocam{uuid.uuid4().hex[:6]}"
    config = tmp_path / "line.toml"
    config.write_text(
        f'[line]\nid = "{line}"\n[[cameras]]\nid = "cam0"\nsource = "{ABSENT}"\n'
        '[model]\npath = "m.onnx"\nthreads = 1\n[tiling]\nsize = 32\nstride = 32\n'
        f"[mqtt]\nport = {mosquitto.port}\n"
    )
    status = mqtt_messages(f"line/{line}/status/cam0")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "inspector", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Attempts at 0.5, 1.5, 3.5 and 7.5 s after start: four failures, one message.
        first = status.wait_for(1, timeout=30)[0]
        time.sleep(8)
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert daemon.returncode == 0, err[-3000:]
    assert "[ WARN" not in err and "Traceback" not in err
    told = [text for text in err.splitlines() if "this PC has" in text]
    assert len(told) == 1 and "camera_down_at_start" in told[0], err  # once, not per retry
    assert "reopen_failed" not in err
    assert any("reconnecting" in text and "quietly" in text for text in err.splitlines()), err
    # One state change, one retained message, saying why.
    (state,) = [json.loads(m.payload) for m in status.messages]
    assert state == json.loads(first.payload)
    assert state["state"] == "reconnecting"
    assert state["error"].startswith(f"camera cam0: cannot open {ABSENT}: there is no {ABSENT};")
    assert state["errors"] == 1


def test_inspector_cameras_lists_the_video_devices(fake_devices: Path) -> None:
    from inspector.capture import discovery

    rows = discovery.usb_cameras()
    assert [(r["index"], r["model"], r["producer"]) for r in rows] == [
        ("2", "", "v4l2"),
        ("10", "HD Webcam C615", "v4l2"),
        ("11", "HD Webcam C615", "v4l2"),
    ]
    assert rows[1]["name"] == str(fake_devices / "video10")
