"""Scores to verdicts to regions: thresholds, softmax, merging of adjacent tiles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inspector.postprocess import VerdictRule, merge_regions, softmax
from inspector.tiling import Tiler
from inspector.types.card import ModelCard
from inspector.types.tiles import NO_DEFECT
from tests.fixtures.models import build_color_model


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> ModelCard:
    return build_color_model(Path(tmp_path_factory.mktemp("model")) / "m.onnx")


def test_softmax_rows_sum_to_one_and_survive_large_logits() -> None:
    probs = softmax(np.array([[1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0]], np.float32))
    assert np.allclose(probs.sum(axis=1), 1.0)
    assert probs[0, 0] == pytest.approx(1.0)
    assert np.allclose(probs[1], 1 / 3)


def test_best_non_ok_class_must_reach_its_threshold(card: ModelCard) -> None:
    rule = VerdictRule(card)  # labels ok, crack, stain; thresholds 0.5
    probs = np.array(
        [
            [0.9, 0.05, 0.05],  # ok
            [0.1, 0.7, 0.2],  # crack
            [0.2, 0.3, 0.5],  # stain, exactly at threshold
            [0.4, 0.35, 0.25],  # crack is best but below 0.5: ok
        ],
        np.float32,
    )
    labels, scores = rule.verdicts(probs)
    assert labels.tolist() == [NO_DEFECT, 1, 2, NO_DEFECT]
    assert scores[1] == pytest.approx(0.7)


def test_custom_threshold_changes_verdict(card: ModelCard) -> None:
    strict = card.model_copy(update={"thresholds": {"crack": 0.8, "stain": 0.5}})
    labels, _ = VerdictRule(strict).verdicts(np.array([[0.1, 0.7, 0.2]], np.float32))
    assert labels.tolist() == [NO_DEFECT]


def test_adjacent_tiles_of_one_class_merge_into_one_region() -> None:
    grid = Tiler(100, 100).grid(300, 400)  # 3 rows x 4 cols
    labels = np.full(12, NO_DEFECT, np.intp)
    scores = np.zeros(12, np.float32)
    # crack at (col 1, row 0) and (col 1, row 1): one region; crack at (3, 2): another;
    # stain at (2, 1) touches the first crack but is another class.
    for col, row, label, score in [(1, 0, 1, 0.9), (1, 1, 1, 0.6), (3, 2, 1, 0.7), (2, 1, 2, 0.8)]:
        labels[row * 4 + col] = label
        scores[row * 4 + col] = score
    regions = merge_regions(grid, labels, scores, ["ok", "crack", "stain"])
    assert [(r.label, r.bbox_px, r.score) for r in regions] == [
        ("crack", (100, 0, 100, 200), pytest.approx(0.9)),
        ("stain", (200, 100, 100, 100), pytest.approx(0.8)),
        ("crack", (300, 200, 100, 100), pytest.approx(0.7)),
    ]
    assert sorted(regions[0].tiles) == [(1, 0), (1, 1)]


def test_diagonal_tiles_are_separate_regions() -> None:
    grid = Tiler(10, 10).grid(20, 20)
    labels = np.array([1, NO_DEFECT, NO_DEFECT, 1], np.intp)
    regions = merge_regions(grid, labels, np.ones(4, np.float32), ["ok", "crack"])
    assert len(regions) == 2


def test_overlapping_grid_maps_back_to_frame_pixels() -> None:
    grid = Tiler(224, 112).grid(224, 500)  # xs 0, 112, 224, 276
    labels = np.array([NO_DEFECT, NO_DEFECT, 1, 1], np.intp)
    regions = merge_regions(grid, labels, np.ones(4, np.float32), ["ok", "crack"])
    assert [r.bbox_px for r in regions] == [(224, 0, 276, 224)]
