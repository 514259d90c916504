"""Ground-truth parsing, scoring and the report, without a broker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from inspector.acceptance.html import render_html
from inspector.acceptance.report import build_report, summary_text
from inspector.acceptance.scoring import reported_defects, score_classes, score_frames
from inspector.acceptance.truth import Defect, boxes_overlap, load_truth, truth_record
from inspector.config import AcceptanceSettings
from inspector.errors import DatasetError
from tests.fixtures.acceptance import replay_run


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "v.mp4.truth.jsonl"
    path.write_text(text)
    return path


def test_truth_round_trips_and_blank_lines_are_ignored(tmp_path: Path) -> None:
    defects = [Defect("crack", (10, 20, 30, 40)), Defect("stain", (0, 0, 5, 5))]
    path = write(tmp_path, truth_record(7, defects) + "\n\n" + truth_record(9, []) + "\n")
    assert load_truth(path) == {7: defects}


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "each line must be a JSON object"),
        ('{"defects": []}', "frame_id must be a non-negative integer, got None"),
        ('{"frame_id": -1, "defects": []}', "frame_id must be a non-negative integer, got -1"),
        ('{"frame_id": true, "defects": []}', "frame_id must be a non-negative integer"),
        ('{"frame_id": 1, "defects": {}}', "defects must be a list"),
        ('{"frame_id": 1, "defects": [{"bbox_px": [0, 0, 1, 1]}]}', "non-empty string 'class'"),
        ('{"frame_id": 1, "defects": [{"class": "a", "bbox_px": [0, 0, 1]}]}', "[x, y, w, h]"),
        ('{"frame_id": 1, "defects": [{"class": "a", "bbox_px": [0, 0, 0, 4]}]}', "positive"),
        ('{"frame_id": 1, "defects": [{"class": "a", "bbox_px": "0,0,1,1"}]}', "[x, y, w, h]"),
    ],
)
def test_a_malformed_truth_line_is_refused_with_its_number(
    tmp_path: Path, line: str, reason: str
) -> None:
    path = write(tmp_path, '{"frame_id": 0, "defects": []}\n' + line + "\n")
    with pytest.raises(DatasetError) as error:
        load_truth(path)
    assert str(error.value).startswith(f"{path}:2: ")
    assert reason in str(error.value)


def test_a_frame_listed_twice_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, truth_record(3, []) + "\n" + truth_record(3, []) + "\n")
    with pytest.raises(DatasetError, match=r":2: frame_id 3 appears twice"):
        load_truth(path)


def test_a_missing_truth_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"nope\.jsonl: cannot read the truth file"):
        load_truth(tmp_path / "nope.jsonl")


def test_boxes_overlap_only_when_they_share_area() -> None:
    assert boxes_overlap((0, 0, 10, 10), (9, 9, 5, 5))
    assert not boxes_overlap((0, 0, 10, 10), (10, 0, 5, 5))  # touching edges share no area
    assert not boxes_overlap((0, 0, 10, 10), (0, 10, 5, 5))


def event(frame_id: int, *defects: tuple[str, list[int]]) -> dict[str, Any]:
    return {
        "event_id": f"l/c/r/{frame_id}",
        "frame_id": frame_id,
        "defects": [{"class": c, "bbox_px": box, "score": 0.9} for c, box in defects],
    }


TRUTH = {
    1: [Defect("crack", (0, 0, 50, 50))],
    2: [Defect("crack", (0, 0, 50, 50)), Defect("stain", (100, 0, 50, 50))],
    4: [Defect("stain", (100, 0, 50, 50))],
}


def test_scoring_matches_regions_by_class_and_overlap() -> None:
    reported = reported_defects(
        [
            event(1, ("crack", [0, 0, 64, 64])),  # right
            event(2, ("crack", [0, 0, 64, 64]), ("crack", [96, 0, 64, 64])),  # stain as crack
            event(3, ("stain", [0, 0, 64, 64])),  # false frame
            event(1, ("stain", [0, 0, 64, 64])),  # a redelivered frame counts once
        ]
    )
    frames = score_frames(TRUTH, reported)
    assert (frames.true_frames, frames.reported_frames, frames.correct_frames) == (3, 3, 2)
    assert frames.missed == [4] and frames.false == [3]
    assert frames.precision == frames.recall == frames.f1 == round(2 / 3, 4)

    classes = score_classes(TRUTH, reported)
    crack, stain = classes["crack"], classes["stain"]
    assert (crack.support, crack.detected, crack.reported, crack.confirmed) == (2, 2, 3, 2)
    assert crack.recall == 1.0 and crack.precision == round(2 / 3, 4)
    assert (stain.support, stain.detected, stain.reported, stain.confirmed) == (2, 0, 1, 0)
    assert stain.recall == 0.0 and stain.precision == 0.0
    assert stain.missed_frames == [2, 4]


def test_nothing_to_find_and_nothing_reported_is_perfect() -> None:
    frames = score_frames({}, {})
    assert (frames.precision, frames.recall) == (1.0, 1.0)
    assert score_classes({}, {}) == {}


def test_report_has_the_contract_fields_and_checks_turn_into_a_verdict() -> None:
    reported = reported_defects([event(1, ("crack", [0, 0, 64, 64]))])
    limits = AcceptanceSettings(min_recall=0.5, min_precision=1.0, max_p99_ms=25.0)
    report = build_report(replay_run(), TRUTH, reported, limits)
    for key in (
        "frame_precision", "frame_recall", "frame_f1", "per_class", "missed_frames",
        "false_frames", "latency_ms", "frames_per_s", "tiles_per_s", "dropped_frames",
        "events_delivered",
    ):  # fmt: skip
        assert key in report
    assert report["frames_per_s"] == 2.5 and report["tiles_per_s"] == 15.0
    assert report["latency_ms"]["max"] == 30.0
    assert sum(report["latency_histogram_ms"]["counts"]) == 3
    assert report["timeline"]["true"] == {"crack": [1, 2], "stain": [2, 4]}
    assert [(c["name"], c["passed"]) for c in report["checks"]] == [
        ("frame_recall", False),  # 1 of 3
        ("recall[crack]", True),  # 1 of 2
        ("recall[stain]", False),
        ("frame_precision", True),
        ("precision[crack]", True),
        ("precision[stain]", True),  # none reported, none false
        ("latency_p99_ms", False),
    ]
    assert report["passed"] is False
    assert "verdict FAIL" in summary_text(report)
    assert "FAIL" in render_html(report)


def test_a_replay_without_truth_reports_delivery_but_no_detection_scores() -> None:
    report = build_report(replay_run(truth=None, ack_latency_ms=[]), None, {}, AcceptanceSettings())
    assert report["frame_recall"] is None and report["per_class"] == {}
    assert report["checks"] == [] and report["passed"] is True
    assert "detection was not scored" in summary_text(report)
    assert "no latency to plot" in render_html(report)
    failing = build_report(replay_run(truth=None), None, {}, AcceptanceSettings(min_recall=0.5))
    assert failing["passed"] is False  # a limit on a figure the replay lacks fails
