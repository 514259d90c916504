"""Scoring delivered defect events against ground truth. Pure functions, no I/O.

Frame level: a frame with a true defect against a frame with an event. Defect
level, per class: an event's region matches a true defect of the same class in
the same frame when their boxes overlap (regions are tile-aligned, true boxes
need not be, so overlap and not IoU is the fair test).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from inspector.acceptance.truth import Defect, Truth, boxes_overlap, parse_defects

Reported = dict[int, list[Defect]]  # frame_id -> regions of the event delivered for it


def _ratio(numerator: int, denominator: int) -> float:
    """A rate over nothing is perfect: no truth cannot be missed, no event cannot be false."""
    return round(numerator / denominator, 4) if denominator else 1.0


def _f1(precision: float, recall: float) -> float:
    total = precision + recall
    return round(2 * precision * recall / total, 4) if total else 0.0


@dataclass(frozen=True, slots=True)
class FrameScore:
    true_frames: int
    reported_frames: int
    correct_frames: int
    precision: float
    recall: float
    f1: float
    missed: list[int]
    false: list[int]


@dataclass(slots=True)
class ClassScore:
    support: int = 0  # true defects of this class
    detected: int = 0  # of those, matched by an event region of the class
    reported: int = 0  # event regions of this class
    confirmed: int = 0  # of those, overlapping a true defect of the class
    missed_frames: list[int] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return _ratio(self.detected, self.support)

    @property
    def precision(self) -> float:
        return _ratio(self.confirmed, self.reported)

    def as_dict(self) -> dict[str, Any]:
        return {
            "recall": self.recall,
            "precision": self.precision,
            "support": self.support,
            "detected": self.detected,
            "reported": self.reported,
            "confirmed": self.confirmed,
            "missed_frames": self.missed_frames,
        }


def reported_defects(events: Iterable[Mapping[str, Any]]) -> Reported:
    """Regions by frame, one event per frame_id (a redelivered duplicate counts once)."""
    reported: Reported = {}
    for event in events:
        frame_id = int(event["frame_id"])
        if frame_id not in reported:
            reported[frame_id] = parse_defects(event.get("defects", []))
    return reported


def score_frames(truth: Truth, reported: Reported) -> FrameScore:
    true_frames = {frame for frame, defects in truth.items() if defects}
    reported_frames = {frame for frame, regions in reported.items() if regions}
    correct = true_frames & reported_frames
    precision = _ratio(len(correct), len(reported_frames))
    recall = _ratio(len(correct), len(true_frames))
    return FrameScore(
        true_frames=len(true_frames),
        reported_frames=len(reported_frames),
        correct_frames=len(correct),
        precision=precision,
        recall=recall,
        f1=_f1(precision, recall),
        missed=sorted(true_frames - reported_frames),
        false=sorted(reported_frames - true_frames),
    )


def score_classes(truth: Truth, reported: Reported) -> dict[str, ClassScore]:
    scores: dict[str, ClassScore] = {}
    for frame in sorted(truth.keys() | reported.keys()):
        true_defects = truth.get(frame, [])
        regions = reported.get(frame, [])
        for defect in true_defects:
            score = scores.setdefault(defect.label, ClassScore())
            score.support += 1
            if any(_matches(region, defect) for region in regions):
                score.detected += 1
            elif not score.missed_frames or score.missed_frames[-1] != frame:
                score.missed_frames.append(frame)
        for region in regions:
            score = scores.setdefault(region.label, ClassScore())
            score.reported += 1
            score.confirmed += any(_matches(region, defect) for defect in true_defects)
    return dict(sorted(scores.items()))


def found_frames(truth: Truth, reported: Reported) -> dict[str, list[int]]:
    """Per class, the frames in which at least one true defect of the class was matched."""
    found: dict[str, list[int]] = {}
    for frame in sorted(truth):
        regions = reported.get(frame, [])
        for label in sorted(
            {d.label for d in truth[frame] if any(_matches(r, d) for r in regions)}
        ):
            found.setdefault(label, []).append(frame)
    return dict(sorted(found.items()))


def _matches(region: Defect, defect: Defect) -> bool:
    return region.label == defect.label and boxes_overlap(region.bbox, defect.bbox)
