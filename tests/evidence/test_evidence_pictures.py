"""Pictures for the evidence store: crops that hold their box and decode, annotated
frames whose boxes land on the scaled edges, JPEG errors that say why, and the band of
uncertain tiles with its edges."""

from __future__ import annotations

import numpy as np
import pytest

from inspector.evidence.pictures import (
    BOX_COLOR,
    PictureError,
    annotate_frame,
    crop_region,
    encode_jpeg,
    scaled_box,
    uncertain_tiles,
    uncertain_tiles_for,
)
from inspector.postprocess import VerdictRule
from inspector.types.card import ModelCard
from inspector.types.results import Region
from tests.fixtures.pictures import decode, noise


@pytest.mark.parametrize(
    "bbox",
    [(448, 224, 224, 224), (0, 0, 100, 50), (600, 440, 40, 40), (620, 470, 100, 100), (5, 5, 3, 3)],
)
def test_crop_holds_the_box_with_a_margin_inside_the_frame(bbox: tuple[int, int, int, int]) -> None:
    frame = noise(480, 640)
    crop = crop_region(frame, bbox)
    x, y, w, h = bbox
    inside_w, inside_h = min(x + w, 640) - x, min(y + h, 480) - y
    assert crop.shape[1] >= inside_w and crop.shape[0] >= inside_h
    assert crop.shape[1] <= w + 2 * max(4, round(w * 0.1))
    decoded = decode(encode_jpeg(crop, 90))
    assert decoded.shape == crop.shape


def test_crop_of_a_box_outside_the_frame_or_empty_is_an_error() -> None:
    with pytest.raises(PictureError, match="outside"):
        crop_region(noise(100, 100), (500, 500, 10, 10))
    with pytest.raises(PictureError, match="empty"):
        crop_region(noise(100, 100), (10, 10, 0, 10))


def test_annotated_frame_is_scaled_and_boxes_land_on_scaled_edges() -> None:
    frame = np.full((1080, 1920, 3), 128, np.uint8)
    regions = [
        Region("crack", 0.97, (448, 224, 224, 224), ((2, 1),)),
        Region("stain", 0.61, (1344, 672, 448, 224), ((6, 3), (7, 3))),
        Region("crack", 0.55, (0, 0, 224, 224), ((0, 0),)),  # label goes inside the box
    ]
    out = annotate_frame(frame, regions, 960)
    assert out.shape == (540, 960, 3)
    for region in regions:
        x0, y0, x1, y1 = scaled_box(region.bbox_px, 0.5)
        mid_x, mid_y = (x0 + x1) // 2, (y0 + y1) // 2
        for x, y in ((x0, mid_y), (x1, mid_y), (mid_x, y1)):
            assert tuple(out[y, x]) == BOX_COLOR, (region.label, x, y)
        assert tuple(out[mid_y, mid_x]) == (128, 128, 128)  # the inside is left alone
    assert frame.max() == 128  # the shared frame is not drawn on
    assert decode(encode_jpeg(out, 80)).shape == (540, 960, 3)


def test_annotated_frame_is_never_upscaled_and_gray_becomes_colour() -> None:
    gray = np.full((300, 400), 200, np.uint8)
    out = annotate_frame(gray, [Region("crack", 0.9, (100, 100, 50, 50), ((0, 0),))], 4000)
    assert out.shape == (300, 400, 3)
    assert tuple(out[120, 100]) == BOX_COLOR
    with pytest.raises(PictureError):
        annotate_frame(gray, [], 0)


def test_encode_jpeg_says_what_it_cannot_encode() -> None:
    with pytest.raises(PictureError, match="float32"):
        encode_jpeg(np.zeros((10, 10, 3), np.float32), 85)
    with pytest.raises(PictureError, match="quality"):
        encode_jpeg(noise(10, 10), 0)
    with pytest.raises(PictureError, match="OpenCV"):
        encode_jpeg(np.zeros((10, 10, 2), np.uint8), 85)  # two channels: no JPEG has them


LABELS = ["ok", "crack", "stain"]


def test_uncertain_band_includes_both_edges() -> None:
    # crack's threshold 0.5, stain's 0.75; band 0.25: crack in [0.25, 0.75], stain in [0.5, 1.0]
    scores = np.array(
        [
            [0.75, 0.25, 0.00],  # 0: crack at the lower edge: in (ok is best overall: still in)
            [0.76, 0.24, 0.00],  # 1: just below: out
            [0.25, 0.75, 0.00],  # 2: crack at the upper edge: in
            [0.23, 0.77, 0.00],  # 3: just above: out (a sure defect)
            [0.50, 0.00, 0.50],  # 4: stain at its lower edge (0.75 - 0.25): in
            [0.55, 0.00, 0.45],  # 5: stain below its band: out
            [0.00, 0.40, 0.60],  # 6: stain is the best non-ok class (0.60): in, as stain
        ],
        np.float32,
    )
    picked = uncertain_tiles(scores, LABELS, "ok", {"crack": 0.5, "stain": 0.75}, 0.25)
    assert [(t.index, t.label) for t in picked] == [
        (0, "crack"),
        (2, "crack"),
        (4, "stain"),
        (6, "stain"),
    ]
    assert picked[0].score == pytest.approx(0.25) and picked[0].threshold == 0.5
    # A class without a threshold has the card's default, 0.5; a zero band keeps only ties.
    assert [t.index for t in uncertain_tiles(scores, LABELS, "ok", {}, 0.0)] == [4]


def test_uncertain_band_at_float32_precision_and_from_the_verdict_rule() -> None:
    card = ModelCard.model_validate(
        {
            "name": "m",
            "sha256": "0" * 64,
            "labels": LABELS,
            "ok_label": "ok",
            "input": {
                "name": "input",
                "height": 8,
                "width": 8,
                "color": "rgb",
                "scale": 255.0,
                "mean": [0.5, 0.5, 0.5],
                "std": [0.5, 0.5, 0.5],
            },
            "output": {"name": "logits", "kind": "probabilities"},
            "thresholds": {"crack": 0.5, "stain": 0.3},
        }
    )
    # 0.35 and 0.15 are not exact in binary; the edge still counts as in, as documented.
    scores = np.array([[0.65, 0.35, 0.0], [0.85, 0.0, 0.15], [0.9, 0.0, 0.1]], np.float32)
    picked = uncertain_tiles_for(VerdictRule(card), scores, 0.15)
    assert [(t.index, t.label) for t in picked] == [(0, "crack"), (1, "stain")]
    with pytest.raises(ValueError, match="band"):
        uncertain_tiles(scores, LABELS, "ok", {}, -0.1)
    with pytest.raises(ValueError, match="ok label"):
        uncertain_tiles(scores, LABELS, "good", {}, 0.1)
