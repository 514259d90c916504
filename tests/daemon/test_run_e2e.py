"""End to end: `inspector run` on a real video, a real ONNX model, a real Mosquitto broker."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import uuid
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from inspector.errors import EX_CONFIG, EX_NOINPUT, EX_UNAVAILABLE
from tests.fixtures.line import COLS, EXPECTED, FRAMES, ROWS, TILE, write_config, write_video
from tests.fixtures.models import build_color_model
from tests.fixtures.processes import inspector

pytestmark = pytest.mark.e2e

# frame_id -> painted tiles (col, row, colour); every other frame is clean belt.


@pytest.fixture()
def line_setup(tmp_path: Path) -> Path:
    build_color_model(tmp_path / "m.onnx", size=TILE)
    write_video(tmp_path / "line.mp4")
    return tmp_path


def test_run_publishes_exactly_the_defect_frames(
    line_setup: Path, mosquitto: Any, mqtt_messages: Any
) -> None:
    line = f"e2e{uuid.uuid4().hex[:8]}"  # a fresh line: no retained status from other tests
    events = mqtt_messages("line/+/defects")
    status = mqtt_messages(f"line/{line}/status")
    stats = mqtt_messages(f"line/{line}/stats")
    config = write_config(line_setup, mosquitto.port, line=line)

    result = inspector("run", "--config", str(config), "--json")

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["frames_inferred"] == FRAMES
    assert summary["tiles_inferred"] == FRAMES * COLS * ROWS
    assert summary["events"] == len(EXPECTED)
    assert summary["frames_dropped"] == 0

    received = [json.loads(payload) for _topic, payload, _retain in events.wait_for(len(EXPECTED))]
    schema = json.loads(resources.files("inspector").joinpath("schemas/defect-1.json").read_text())
    for event in received:
        jsonschema.validate(event, schema)
    by_frame = {event["frame_id"]: event for event in received}
    assert sorted(by_frame) == sorted(EXPECTED)
    for frame_id, expected in EXPECTED.items():
        event = by_frame[frame_id]
        assert [(d["class"], d["bbox_px"]) for d in event["defects"]] == expected
        assert event["camera"] == "cam0"
        assert event["frame"] == {"width": COLS * TILE, "height": ROWS * TILE, "tiles": 6}
        assert event["event_id"] == f"{line}/cam0/{summary['run_id']}/{frame_id}"
        assert event["line"] == line
        assert all(d["score"] >= 0.5 for d in event["defects"])
    events.assert_no_more(timeout=0.5)
    assert [payload for _t, payload, _r in status.wait_for(2)] == [b"online", b"offline"]
    final_stats = json.loads(stats.wait_for(1)[-1][1])
    assert final_stats["frames_inferred"] == FRAMES
    assert final_stats["dropped_frames"] == 0
    assert final_stats["queues"]["cam0"]["captured"] == FRAMES


def test_missing_video_exits_66(line_setup: Path, mosquitto: Any) -> None:
    result = inspector(
        "run", "--config", str(write_config(line_setup, mosquitto.port, video="nope.mp4"))
    )
    assert result.returncode == EX_NOINPUT
    assert "video file not found" in result.stderr and "nope.mp4" in result.stderr


def test_corrupt_video_exits_66(line_setup: Path, mosquitto: Any) -> None:
    (line_setup / "junk.mp4").write_bytes(b"\x00not a video" * 100)
    result = inspector(
        "run", "--config", str(write_config(line_setup, mosquitto.port, video="junk.mp4"))
    )
    assert result.returncode == EX_NOINPUT
    assert "junk.mp4" in result.stderr


def test_model_with_wrong_sha_exits_78(line_setup: Path, mosquitto: Any) -> None:
    card = line_setup / "m.json"
    data = json.loads(card.read_text())
    data["sha256"] = "0" * 64
    card.write_text(json.dumps(data))
    result = inspector("run", "--config", str(write_config(line_setup, mosquitto.port)))
    assert result.returncode == EX_CONFIG
    assert "sha256" in result.stderr


def test_unreachable_broker_exits_69(line_setup: Path, unused_port: int) -> None:
    result = inspector("run", "--config", str(write_config(line_setup, unused_port)))
    assert result.returncode == EX_UNAVAILABLE
    assert f"127.0.0.1:{unused_port}" in result.stderr


def test_mosquitto_sub_sees_the_events(line_setup: Path, mosquitto: Any) -> None:
    """The Done-when of the daemon: a stock `mosquitto_sub -t 'line/+/defects'` gets them."""
    mosquitto_sub = shutil.which("mosquitto_sub")
    assert mosquitto_sub, "mosquitto_sub not installed: apt-get install mosquitto-clients"
    subscriber = subprocess.Popen(
        [
            mosquitto_sub,
            "-p",
            str(mosquitto.port),
            "-t",
            "line/+/defects",
            "-q",
            "1",
            "-C",
            str(len(EXPECTED)),
            "-W",
            "60",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)  # let it subscribe before the run publishes
    result = inspector("run", "--config", str(write_config(line_setup, mosquitto.port)))
    assert result.returncode == 0, result.stderr
    output, _ = subscriber.communicate(timeout=60)
    frame_ids = sorted(json.loads(line)["frame_id"] for line in output.splitlines())
    assert frame_ids == sorted(EXPECTED)


def test_sigterm_stops_cleanly_and_delivers_what_was_inspected(
    line_setup: Path, mosquitto: Any, mqtt_messages: Any
) -> None:
    line = f"e2e{uuid.uuid4().hex[:8]}"
    config = write_config(line_setup, mosquitto.port, line=line)
    # Paced at the file's 10 fps, the 12-frame recording would take >1 s; stop it midway.
    text = config.read_text().replace('source = "line.mp4"', 'source = "line.mp4"\nrealtime = true')
    config.write_text(text)
    events = mqtt_messages(f"line/{line}/defects")
    status = mqtt_messages(f"line/{line}/status")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "inspector", "run", "--config", str(config), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    events.wait_for(1, timeout=30)  # frame 2's event: the line is running, frames 3.. to come
    daemon.send_signal(signal.SIGTERM)
    stdout, stderr = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, stderr
    summary = json.loads(stdout)
    assert 0 < summary["frames_inferred"] < FRAMES
    assert summary["frames_inferred"] == summary["frames_captured"]  # nothing queued was lost
    delivered = events.wait_for(summary["events"]) if summary["events"] else []
    assert len(delivered) == summary["events"]
    assert [payload for _t, payload, _r in status.wait_for(2)] == [b"online", b"offline"]
