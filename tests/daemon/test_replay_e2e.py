"""End to end: `make-recording` from a labelled folder, then `replay` through a real broker."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from inspector.acceptance.truth import load_truth
from inspector.engines.card import load_model, write_card
from tests.fixtures.line import TILE, write_replay_config
from tests.fixtures.models import build_color_model
from tests.fixtures.processes import inspector
from tests.fixtures.videos import write_video

pytestmark = pytest.mark.e2e

# BGR colours the colour model classifies exactly: gray belt parts are ok.
COLOURS = {"ok": (95, 95, 95), "crack": (245, 245, 245), "stain": (30, 30, 235)}
TEST_PARTS = {"ok": 6, "crack": 3, "stain": 3}


def write_parts_dataset(root: Path) -> Path:
    """train/ val/ test/ with one folder per class; only test/ may reach a recording."""
    rng = np.random.default_rng(0)
    for part in ("train", "val", "test"):
        for label, colour in COLOURS.items():
            folder = root / part / label
            folder.mkdir(parents=True)
            for i in range(TEST_PARTS[label] if part == "test" else 1):
                image = np.full((48, 48, 3), colour, np.int16) + rng.integers(-4, 5, (48, 48, 3))
                cv2.imwrite(str(folder / f"{part}{i}.png"), image.clip(0, 255).astype(np.uint8))
    return root


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("recording")
    data = write_parts_dataset(root / "parts")
    video = root / "line.mp4"
    result = inspector(
        "make-recording", str(data), "--out", str(video), "--tile", str(TILE),
        "--rows", "2", "--cols", "3", "--fps", "30", "--json", timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["parts"] == sum(TEST_PARTS.values())
    assert info["defective_parts"] == TEST_PARTS["crack"] + TEST_PARTS["stain"]
    assert (info["width"], info["height"]) == (3 * TILE, 2 * TILE)
    return video


def test_recording_is_a_real_video_whose_truth_matches_its_pixels(recording: Path) -> None:
    truth = load_truth(Path(f"{recording}.truth.jsonl"))
    capture = cv2.VideoCapture(str(recording))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    # 12 parts in 6 columns of 2 cross a 3-tile view one tile per frame: 3 + 6 - 1 frames.
    assert len(frames) == 8
    assert truth, "a recording of defective parts has truth lines"
    seen = {"crack": 0, "stain": 0}
    for frame_id, defects in truth.items():
        for defect in defects:
            x, y, w, h = defect.bbox
            assert (w, h) == (TILE, TILE) and x % TILE == 0 and y % TILE == 0
            mean = frames[frame_id][y : y + h, x : x + w].reshape(-1, 3).mean(axis=0)
            assert np.abs(mean - COLOURS[defect.label]).max() < 12, (frame_id, defect, mean)
            seen[defect.label] += 1
    # Every defective part is seen in each of the 3 frames it spends in view.
    assert seen == {"crack": 3 * 3, "stain": 3 * 3}


def test_replay_of_an_exact_model_scores_perfectly_and_passes(
    recording: Path, tmp_path: Path, mosquitto: Any, mqtt_messages: Any
) -> None:
    line = f"replay{uuid.uuid4().hex[:8]}"
    watcher = mqtt_messages(f"line/{line}/defects")
    model = tmp_path / "m.onnx"
    build_color_model(model, size=TILE)
    config = write_replay_config(tmp_path, mosquitto.port, model, line)

    result = inspector(
        "replay", str(recording), "--config", str(config), "--report", str(tmp_path / "r"),
        "--json", "--min-recall", "1", "--min-precision", "1", "--max-p99-ms", "60000",
        timeout=180,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    truth = load_truth(Path(f"{recording}.truth.jsonl"))
    assert report["frame_precision"] == report["frame_recall"] == report["frame_f1"] == 1.0
    assert report["true_frames"] == report["reported_frames"] == len(truth)
    assert report["missed_frames"] == report["false_frames"] == []
    assert {label: s["recall"] for label, s in report["per_class"].items()} == {
        "crack": 1.0,
        "stain": 1.0,
    }
    assert all(s["precision"] == 1.0 for s in report["per_class"].values())
    assert report["events_delivered"] == report["events_published"] == len(truth)
    assert len(watcher.wait_for(len(truth))) == len(truth)  # what the report counted is real
    assert report["frames"] == report["frames_inferred"] == 8
    assert report["tiles"] == 8 * 6 and report["dropped_frames"] == 0
    latency = report["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"] < 60000
    assert report["passed"] is True and len(report["checks"]) == 1 + 2 + 1 + 2 + 1
    assert json.loads((tmp_path / "r" / "report.json").read_text()) == report
    page = (tmp_path / "r" / "report.html").read_text()
    assert (
        page.count("<svg") == 3
        and "PASS" in page
        and "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )
    assert "frames with defects  precision 1.000  recall 1.000" in result.stderr


def test_a_model_blind_to_one_class_lowers_exactly_that_recall_and_fails(
    recording: Path, tmp_path: Path, mosquitto: Any
) -> None:
    model = tmp_path / "m.onnx"
    card = build_color_model(model, size=TILE)
    # A stain scores about 0.97: a threshold of 1.0 makes the model blind to stains.
    write_card(card.model_copy(update={"thresholds": {"crack": 0.5, "stain": 1.0}}), model)
    load_model(model)
    config = write_replay_config(tmp_path, mosquitto.port, model, f"blind{uuid.uuid4().hex[:8]}")

    result = inspector(
        "replay",
        str(recording),
        "--config",
        str(config),
        "--json",
        "--min-recall",
        "0.9",
        timeout=180,
    )

    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["per_class"]["crack"]["recall"] == 1.0
    assert report["per_class"]["stain"]["recall"] == 0.0
    assert report["per_class"]["stain"]["support"] == 9
    assert report["per_class"]["crack"]["precision"] == 1.0
    assert report["frame_precision"] == 1.0 and report["frame_recall"] < 0.9
    truth = load_truth(Path(f"{recording}.truth.jsonl"))
    stain_only = sorted(f for f, ds in truth.items() if {d.label for d in ds} == {"stain"})
    assert report["missed_frames"] == stain_only
    assert [(c["name"], c["value"], c["passed"]) for c in report["checks"]] == [
        ("frame_recall", report["frame_recall"], False),
        ("recall[crack]", 1.0, True),
        ("recall[stain]", 0.0, False),
    ]
    assert "FAIL frame_recall" in result.stderr and "verdict FAIL" in result.stderr


def test_realtime_replay_of_a_slow_model_reports_the_dropped_frames(
    recording: Path, tmp_path: Path, mosquitto: Any
) -> None:
    model = tmp_path / "slow.onnx"
    build_color_model(model, size=TILE, busy_layers=30)  # ~0.25 s a frame: 8x too slow
    config = write_replay_config(tmp_path, mosquitto.port, model, f"rt{uuid.uuid4().hex[:8]}")

    result = inspector(
        "replay", str(recording), "--config", str(config), "--realtime", "--json", timeout=180
    )

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["realtime"] is True
    assert report["frames"] == 8
    assert report["dropped_frames"] > 0
    assert report["frames_inferred"] == 8 - report["dropped_frames"]
    assert report["frame_recall"] < 1.0 and report["missed_frames"]
    assert report["frame_precision"] == 1.0


def test_thresholds_come_from_the_config_too(
    recording: Path, tmp_path: Path, mosquitto: Any
) -> None:
    model = tmp_path / "m.onnx"
    build_color_model(model, size=TILE)
    line = f"cfg{uuid.uuid4().hex[:8]}"
    config = write_replay_config(
        tmp_path, mosquitto.port, model, line, "[acceptance]\nmax_p99_ms = 0.001\n"
    )

    result = inspector("replay", str(recording), "--config", str(config), timeout=180)

    assert result.returncode == 1
    assert "FAIL latency_p99_ms" in result.stdout


def test_a_bad_truth_file_is_refused_with_its_line_number(
    recording: Path, tmp_path: Path, mosquitto: Any
) -> None:
    truth = tmp_path / "bad.truth.jsonl"
    truth.write_text('{"frame_id": 1, "defects": []}\n{"frame_id": 2, "defects": [{"class": 3}]}\n')
    model = tmp_path / "m.onnx"
    build_color_model(model, size=TILE)
    config = write_replay_config(tmp_path, mosquitto.port, model, "badtruth")

    result = inspector(
        "replay", str(recording), "--config", str(config), "--truth", str(truth), timeout=180
    )

    assert result.returncode == 65
    assert f"{truth}:2: a defect needs a non-empty string 'class', got 3" in result.stderr


def test_a_truncated_recording_ends_the_replay_with_a_clear_message(
    tmp_path: Path, mosquitto: Any
) -> None:
    video = tmp_path / "cut.mkv"
    rng = np.random.default_rng(3)
    write_video(video, (rng.integers(0, 256, (TILE, TILE, 3), np.uint8) for _ in range(50)))
    data = video.read_bytes()
    video.write_bytes(data[: len(data) * 6 // 10])  # a copy that stopped mid-file
    model = tmp_path / "m.onnx"
    build_color_model(model, size=TILE)
    config = write_replay_config(tmp_path, mosquitto.port, model, f"cut{uuid.uuid4().hex[:6]}")

    result = inspector("replay", str(video), "--config", str(config), timeout=180)

    assert result.returncode == 66
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("inspector replay: error: camera cam0: ")
    assert "of 50 frames: the file is truncated or corrupt" in last
