"""Pictures in the replay report: drawing, choosing, reading back a real video, the page."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from inspector.acceptance import replay as replay_module
from inspector.acceptance.html import render_html
from inspector.acceptance.report import build_report, summary_text
from inspector.acceptance.scoring import Reported, found_frames
from inspector.acceptance.thumbnails import (
    LINE_PX,
    REPORTED_BGR,
    TRUE_BGR,
    draw_thumbnail,
    plan_thumbnails,
    save_thumbnails,
)
from inspector.acceptance.truth import Defect, Truth, truth_record
from inspector.config import AcceptanceSettings, load_settings
from inspector.engines.card import write_card
from tests.fixtures.acceptance import replay_run
from tests.fixtures.line import TILE, write_replay_config
from tests.fixtures.models import build_color_model
from tests.fixtures.processes import inspector
from tests.fixtures.videos import tiles, write_video

GRAY = 100


def colour_at(image: np.ndarray[Any, Any], x: int, y: int) -> tuple[int, ...]:
    return tuple(int(v) for v in image[y, x])


def near(pixels: np.ndarray[Any, Any], bgr: tuple[int, int, int], within: int = 40) -> Any:
    """Per pixel: each channel within ``within`` of ``bgr`` (text is anti-aliased, JPEG lossy)."""
    return (np.abs(pixels.astype(int) - np.array(bgr)) < within).all(axis=-1)


def test_true_and_reported_boxes_are_drawn_in_two_colours_at_their_scaled_edges() -> None:
    frame = np.full((480, 960, 3), GRAY, np.uint8)
    crack = Defect("crack", (200, 100, 300, 240))
    glare = Defect("crack", (700, 40, 160, 160))  # reported where nothing is true

    picture = draw_thumbnail(frame, [crack], [crack, glare], max_width=480)

    assert picture.shape == (240, 480, 3)  # scaled by one half
    x0, y0, x1, y1 = 100, 50, 249, 169  # the crack's box, halved, inclusive corners
    mid = (y0 + y1) // 2
    for x in (x0, x0 + LINE_PX - 1, x1, x1 - LINE_PX + 1):
        assert colour_at(picture, x, mid) == TRUE_BGR, x
    for x in (x0 + LINE_PX, x0 + 2 * LINE_PX - 1, x1 - LINE_PX, x1 - 2 * LINE_PX + 1):
        assert colour_at(picture, x, mid) == REPORTED_BGR, x
    assert colour_at(picture, x0 + 2 * LINE_PX, mid) == (GRAY,) * 3
    assert colour_at(picture, x0 - 1, mid) == (GRAY,) * 3
    for y in (y0, y1):
        assert colour_at(picture, (x0 + x1) // 2, y) == TRUE_BGR
    # The reported-only box: its band sits just inside its edge, with no true colour.
    gx0, gmid = 350, 60
    assert colour_at(picture, gx0, gmid) == (GRAY,) * 3
    assert colour_at(picture, gx0 + LINE_PX, gmid) == REPORTED_BGR
    # Class names: true at the box's top left, reported at its bottom left, in their colours.
    top_left = picture[y0 + 2 * LINE_PX : y0 + 25, x0 + 2 * LINE_PX : x0 + 60]
    bottom_left = picture[y1 - 25 : y1 - 2 * LINE_PX, x0 + 2 * LINE_PX : x0 + 60]
    assert near(top_left, TRUE_BGR, 80).sum() > 20 and not near(top_left, REPORTED_BGR, 80).any()
    assert near(bottom_left, REPORTED_BGR, 80).sum() > 20
    assert (frame == GRAY).all()  # the caller's frame is left alone


def test_a_small_frame_is_not_upscaled_and_a_gray_one_is_drawn_in_colour() -> None:
    frame = np.full((128, 192), GRAY, np.uint8)
    picture = draw_thumbnail(frame, [Defect("stain", (64, 0, 64, 64))], [], max_width=480)
    assert picture.shape == (128, 192, 3)
    assert colour_at(picture, 64, 32) == TRUE_BGR
    assert colour_at(picture, 127, 32) == TRUE_BGR
    assert colour_at(picture, 128, 32) == (GRAY,) * 3


def test_the_plan_caps_each_list_and_spreads_the_examples_over_the_run() -> None:
    truth: Truth = {f: [Defect("crack", (0, 0, 10, 10))] for f in range(10)}
    reported: Reported = {f: [Defect("crack", (5, 5, 10, 10))] for f in range(10)}
    reported[3] = [Defect("stain", (0, 0, 10, 10))]  # wrong class: crack not found in 3
    assert found_frames(truth, reported) == {"crack": [0, 1, 2, 4, 5, 6, 7, 8, 9]}

    plan = plan_thumbnails(truth, reported, list(range(500)), [7], limit=200, examples=3)

    assert len(plan.missed) == 200 and plan.missed[0] == 0 and plan.missed[-1] == 499
    assert plan.missed == sorted(set(plan.missed))
    assert (plan.missed_left_out, plan.false, plan.false_left_out) == (300, [7], 0)
    assert plan.examples == {"crack": [0, 5, 9]}


def brightness(frame_id: int) -> int:
    return 20 + 20 * frame_id


def write_flat_video(path: Path, frames: int) -> None:
    """Each frame one flat brightness, so a picture shows which frame it was made from."""
    write_video(path, (np.full((128, 192, 3), brightness(i), np.uint8) for i in range(frames)))


TRUTH: Truth = {3: [Defect("crack", (0, 0, 64, 64))], 7: [Defect("stain", (64, 64, 64, 64))]}
REPORTED: Reported = {3: [Defect("crack", (0, 0, 64, 64))], 5: [Defect("crack", (128, 0, 64, 64))]}


def test_pictures_are_the_right_frames_of_a_real_video(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    write_flat_video(video, 10)
    stale = tmp_path / "r" / "images" / "frame-99.jpg"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"from an earlier replay")

    pictures = save_thumbnails(video, tmp_path / "r", TRUTH, REPORTED, [7], [5])

    assert pictures["notice"] is None and not stale.exists()
    assert [e["frame_id"] for e in pictures["missed"]] == [7]
    assert [e["frame_id"] for e in pictures["false"]] == [5]
    assert [e["frame_id"] for e in pictures["examples"]["crack"]] == [3]
    assert pictures["missed"][0]["true"] == ["stain"] and pictures["missed"][0]["reported"] == []
    assert pictures["false"][0]["true"] == [] and pictures["false"][0]["reported"] == ["crack"]
    for entry in (*pictures["missed"], *pictures["false"], *pictures["examples"]["crack"]):
        assert entry["path"] == f"images/frame-{entry['frame_id']}.jpg"
        image = cv2.imread(str(tmp_path / "r" / entry["path"]))
        assert image is not None and image.shape == (entry["height"], entry["width"], 3)
        centre = image[90:110, 20:60].mean()  # away from every box drawn
        assert abs(centre - brightness(entry["frame_id"])) < 6, entry


def test_frames_past_the_end_of_the_video_are_left_out_with_a_notice(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    write_flat_video(video, 6)

    pictures = save_thumbnails(video, tmp_path / "r", TRUTH, REPORTED, [7], [5])

    assert pictures["missed"] == [] and [e["frame_id"] for e in pictures["false"]] == [5]
    assert pictures["notice"] == (
        f"{video}: 1 of 3 frames to picture could not be read back (the first is frame 7); "
        "they are left out"
    )


def report_with(pictures: dict[str, Any] | None) -> dict[str, Any]:
    report = build_report(replay_run(), TRUTH, REPORTED, AcceptanceSettings())
    report["thumbnails"] = pictures
    return report


def test_an_unreadable_video_gives_a_report_without_pictures_and_one_notice(
    tmp_path: Path,
) -> None:
    video = tmp_path / "garbage.mp4"
    video.write_bytes(b"not a video at all" * 100)

    pictures = save_thumbnails(video, tmp_path / "r", TRUTH, REPORTED, [7], [5])

    assert pictures["missed"] == pictures["false"] == [] and pictures["examples"] == {"crack": []}
    notice = pictures["notice"]
    assert notice == f"no pictures: {video}: not a video OpenCV/FFmpeg can decode"
    report = report_with(pictures)
    assert f"pictures  {notice}" in summary_text(report).splitlines()
    page = render_html(report)
    assert "<img" not in page and f'<p class="notice">Pictures: {notice}</p>' in page
    assert "In the pictures:" not in page and "Found, but not pictured" in page  # the crack


def test_the_page_renders_the_pictures_from_a_saved_report_json(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    write_flat_video(video, 10)
    pictures = save_thumbnails(video, tmp_path, TRUTH, REPORTED, [7], [5])
    pictures["missed_left_out"] = 12
    saved = json.loads(json.dumps(report_with(pictures)))

    page = render_html(saved)

    assert re.findall(r'<img src="([^"]+)"', page) == [
        "images/frame-7.jpg",  # missed
        "images/frame-5.jpg",  # false
        "images/frame-3.jpg",  # crack found
    ]
    assert "frame 7 · true: stain · reported: none" in page
    assert "frame 5 · true: none · reported: crack" in page
    assert "No true stain defect was found." in page
    assert "12 more missed frames are not pictured: at most 200 are" in page
    assert "border-color:#00c800" in page and "border-color:#ff00ff" in page
    for heading in ("Missed frames", "False frames", "Examples per class"):
        assert f"<h2>{heading}</h2>" in page
    # A report saved before pictures existed still renders, with the frame IDs alone.
    del saved["thumbnails"]
    assert "<p>Missed: 7</p>" in render_html(saved)


# --- end to end, through `inspector replay` and a real broker ------------------------------------

BELT, WHITE, RED = (40, 40, 40), (245, 245, 245), (30, 30, 235)
# frame -> tiles (column, row, BGR colour, class in the truth or None for an untrue one)
SCENES: dict[int, list[tuple[int, int, tuple[int, int, int], str | None]]] = {
    0: [(0, 0, WHITE, "crack")],
    1: [(0, 0, WHITE, "crack")],
    2: [(0, 0, WHITE, "crack")],
    3: [(1, 1, RED, "stain")],  # the model below is blind to stains: missed
    4: [(1, 1, RED, "stain")],
    5: [(2, 0, WHITE, None)],  # a glare the model calls a crack: false
    6: [(2, 0, WHITE, None)],
    7: [],
    8: [(1, 0, WHITE, "crack"), (2, 1, RED, "stain")],  # a crack found, a stain missed
    9: [],
}


def write_line_recording(video: Path) -> None:
    painted = {i: [(col, row, colour) for col, row, colour, _ in s] for i, s in SCENES.items()}
    write_video(video, (tiles(3, 2, TILE, BELT, painted[i]) for i in SCENES))
    lines = []
    for frame_id, scene in SCENES.items():
        defects = [
            Defect(label, (col * TILE, row * TILE, TILE, TILE))
            for col, row, _, label in scene
            if label is not None
        ]
        if defects:
            lines.append(truth_record(frame_id, defects))
    Path(f"{video}.truth.jsonl").write_text("\n".join(lines) + "\n")


@pytest.mark.e2e
def test_replay_report_pictures_every_missed_and_false_frame(
    tmp_path: Path, mosquitto: Any
) -> None:
    video = tmp_path / "line.mp4"
    write_line_recording(video)
    model = tmp_path / "m.onnx"
    card = build_color_model(model, size=TILE)
    write_card(card.model_copy(update={"thresholds": {"crack": 0.5, "stain": 1.0}}), model)
    config = write_replay_config(tmp_path, mosquitto.port, model, f"pics{uuid.uuid4().hex[:8]}")
    out = tmp_path / "r"

    result = inspector(
        "replay", str(video), "--config", str(config), "--report", str(out), "--json",
        "--min-recall", "0.9", timeout=180,
    )  # fmt: skip

    assert result.returncode == 1, result.stderr  # the threshold still decides, pictures or not
    report = json.loads(result.stdout)
    assert report["missed_frames"] == [3, 4] and report["false_frames"] == [5, 6]
    pictures = report["thumbnails"]
    assert json.loads((out / "report.json").read_text())["thumbnails"] == pictures
    assert pictures["notice"] is None and "pictures  " not in result.stderr
    assert [e["frame_id"] for e in pictures["missed"]] == [3, 4]
    assert [e["frame_id"] for e in pictures["false"]] == [5, 6]
    assert [e["frame_id"] for e in pictures["examples"]["crack"]] == [0, 2, 8]
    assert pictures["examples"].get("stain", []) == []
    page = (out / "report.html").read_text()
    assert "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    for entry in (*pictures["missed"], *pictures["false"], *pictures["examples"]["crack"]):
        assert f'<img src="{entry["path"]}"' in page
        image = cv2.imread(str(out / entry["path"]))
        assert image is not None and image.shape == (2 * TILE, 3 * TILE, 3)  # never upscaled
    # Read back from the file: the missed stain has only a true box, the glare only a reported one.
    missed = cv2.imread(str(out / "images/frame-3.jpg"))
    false = cv2.imread(str(out / "images/frame-5.jpg"))
    mid = TILE // 2 + TILE  # halfway down the stain's tile (row 1)
    assert near(missed[mid, TILE], TRUE_BGR) and not near(missed[mid, TILE + 2], REPORTED_BGR)
    assert near(false[TILE // 2, 2 * TILE + 2], REPORTED_BGR)
    assert not near(false[TILE // 2, 2 * TILE], TRUE_BGR)


@pytest.mark.e2e
def test_a_recording_gone_before_its_pictures_leaves_a_notice_and_the_same_verdict(
    tmp_path: Path, mosquitto: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    video = tmp_path / "line.mp4"
    write_line_recording(video)
    model = tmp_path / "m.onnx"
    card = build_color_model(model, size=TILE)
    write_card(card.model_copy(update={"thresholds": {"crack": 0.5, "stain": 1.0}}), model)
    settings = load_settings(
        write_replay_config(tmp_path, mosquitto.port, model, f"gone{uuid.uuid4().hex[:8]}")
    )

    real_run_pipeline = replay_module.run_pipeline

    def run_then_overwrite(*args: Any, **kwargs: Any) -> Any:
        summary = real_run_pipeline(*args, **kwargs)
        video.write_bytes(b"overwritten while the replay was scored")
        return summary

    monkeypatch.setattr(replay_module, "run_pipeline", run_then_overwrite)
    limits = AcceptanceSettings(min_recall=0.5)

    result = replay_module.replay(settings, video, report_dir=tmp_path / "r", limits=limits)

    report = result.report
    assert report["missed_frames"] == [3, 4] and report["false_frames"] == [5, 6]
    # The verdict is the scores' alone: the blind class fails, the pictures change nothing.
    assert [c["name"] for c in report["checks"] if not c["passed"]] == ["recall[stain]"]
    assert report["passed"] is False
    pictures = report["thumbnails"]
    assert pictures["missed"] == pictures["false"] == []
    assert pictures["notice"] == f"no pictures: {video}: not a video OpenCV/FFmpeg can decode"
    assert json.loads((tmp_path / "r" / "report.json").read_text()) == report
    page = (tmp_path / "r" / "report.html").read_text()
    assert "<img" not in page and "Pictures: no pictures: " in page
    assert f"pictures  {pictures['notice']}" in summary_text(report)
