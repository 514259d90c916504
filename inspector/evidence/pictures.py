"""Pictures for the evidence store: defect crops, the annotated frame, JPEG bytes, and
which tiles are uncertain enough to be worth relabelling. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from inspector.postprocess import VerdictRule
from inspector.types.card import DEFAULT_THRESHOLD
from inspector.types.frames import Image
from inspector.types.results import Region

BOX_COLOR = (255, 0, 255)  # BGR magenta: rare on products and belts, unlike red or green
TEXT_COLOR = (255, 255, 255)
_FONT = cv2.FONT_HERSHEY_SIMPLEX

FloatArray = npt.NDArray[np.float32]
BBox = tuple[int, int, int, int]  # x, y, width, height in frame pixels


class PictureError(ValueError):
    """An image could not be cropped or encoded (empty box, unsupported dtype or shape)."""


def crop_region(image: Image, bbox_px: BBox, margin: float = 0.1, min_margin: int = 4) -> Image:
    """The box plus ``margin`` of its size on each side (at least ``min_margin`` px),
    clipped to the frame: context for a person reviewing it. A view, not a copy."""
    x, y, w, h = bbox_px
    if w <= 0 or h <= 0:
        raise PictureError(f"empty box {bbox_px}")
    mx, my = max(min_margin, round(w * margin)), max(min_margin, round(h * margin))
    height, width = image.shape[:2]
    x0, y0 = max(0, x - mx), max(0, y - my)
    x1, y1 = min(width, x + w + mx), min(height, y + h + my)
    if x1 <= x0 or y1 <= y0:
        raise PictureError(f"box {bbox_px} lies outside the {width}x{height} frame")
    return image[y0:y1, x0:x1]


def annotate_frame(image: Image, regions: Sequence[Region], width: int) -> Image:
    """The whole frame at ``width`` px wide (never wider than it is), each region boxed,
    with its class and score above the box (inside it where the box touches the top)."""
    if width <= 0:
        raise PictureError(f"width must be positive, not {width}")
    scale = min(1.0, width / image.shape[1])
    if scale < 1.0:
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        out = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.uint8)
    else:
        out = image.copy()  # drawn on: the frame itself is shared with other sinks
    if out.ndim == 2 or out.shape[2] == 1:  # a coloured box must stay coloured
        out = np.asarray(cv2.cvtColor(out, cv2.COLOR_GRAY2BGR), np.uint8)
    thickness = max(2, round(out.shape[1] / 640))
    font_scale = max(0.4, out.shape[1] / 1600)
    for region in regions:
        x0, y0, x1, y1 = scaled_box(region.bbox_px, scale)
        cv2.rectangle(out, (x0, y0), (x1, y1), BOX_COLOR, thickness)
        text = f"{region.label} {region.score:.2f}"
        (tw, th), baseline = cv2.getTextSize(text, _FONT, font_scale, 1)
        label_h = th + baseline + 4
        top = y0 - label_h if y0 >= label_h else y0  # above the box, or inside at the top
        cv2.rectangle(out, (x0, top), (x0 + tw + 4, top + label_h), BOX_COLOR, cv2.FILLED)
        cv2.putText(
            out, text, (x0 + 2, top + th + 2), _FONT, font_scale, TEXT_COLOR, 1, cv2.LINE_AA
        )
    return out


def scaled_box(bbox_px: BBox, scale: float) -> tuple[int, int, int, int]:
    """Corners (x0, y0, x1, y1), inclusive, of a frame box in a picture scaled by ``scale``."""
    x, y, w, h = bbox_px
    x0, y0 = round(x * scale), round(y * scale)
    return x0, y0, max(x0, round((x + w) * scale) - 1), max(y0, round((y + h) * scale) - 1)


def encode_jpeg(image: Image, quality: int = 85) -> bytes:
    """JPEG bytes of a BGR or gray uint8 image, or a :class:`PictureError` saying why not."""
    if not 1 <= quality <= 100:
        raise PictureError(f"JPEG quality must be 1..100, not {quality}")
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or image.size == 0:
        raise PictureError(f"cannot encode a {image.dtype} image of shape {image.shape} as JPEG")
    try:
        ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    except cv2.error as exc:
        raise PictureError(f"OpenCV cannot encode a {image.shape} image: {exc}") from None
    if not ok:
        raise PictureError(f"OpenCV failed to encode a {image.shape} image as JPEG")
    return bytes(buffer)


@dataclass(frozen=True, slots=True)
class UncertainTile:
    index: int  # the tile's row in the scores array (grid order)
    label: str  # its best non-ok class: what the model proposes
    score: float
    threshold: float  # that class's threshold


def uncertain_tiles(
    scores: FloatArray,
    labels: Sequence[str],
    ok_label: str,
    thresholds: Mapping[str, float],
    band: float,
) -> list[UncertainTile]:
    """Tiles whose best non-ok class score is within ``band`` of that class's threshold:
    ``threshold - band <= score <= threshold + band``, both edges included, compared in
    float32 like the verdict rule. ``scores`` are probabilities, one row per tile.
    A class missing from ``thresholds`` has the card's default (0.5)."""
    defect_indices = np.array([i for i, name in enumerate(labels) if name != ok_label], np.intp)
    if len(defect_indices) == len(labels):
        raise ValueError(f"ok label {ok_label!r} is not one of {list(labels)}")
    limits = np.array(
        [thresholds.get(labels[i], DEFAULT_THRESHOLD) for i in defect_indices], np.float64
    )
    return _select(scores, list(labels), defect_indices, limits, band)


def uncertain_tiles_for(rule: VerdictRule, scores: FloatArray, band: float) -> list[UncertainTile]:
    """:func:`uncertain_tiles` with the classes and thresholds of the daemon's verdict rule."""
    return _select(scores, rule.labels, rule.defect_indices, rule.thresholds, band)


def _select(
    scores: FloatArray,
    labels: list[str],
    defect_indices: npt.NDArray[np.intp],
    thresholds: npt.NDArray[np.floating],
    band: float,
) -> list[UncertainTile]:
    if band < 0:
        raise ValueError(f"band must be >= 0, not {band}")
    if scores.ndim != 2 or scores.shape[1] != len(labels):
        raise ValueError(f"scores of shape {scores.shape} do not match {len(labels)} labels")
    if len(defect_indices) == 0 or len(scores) == 0:
        return []
    # The same best-class rule as VerdictRule.verdicts, which keeps only the classes of
    # tiles that pass: here the class of a tile just below its threshold is the point.
    defect_scores = scores[:, defect_indices].astype(np.float32, copy=False)
    best = defect_scores.argmax(axis=1)
    best_score = defect_scores[np.arange(len(best)), best]
    threshold = np.asarray(thresholds, np.float64)[best]
    low = (threshold - band).astype(np.float32)
    high = (threshold + band).astype(np.float32)
    picked = np.nonzero((best_score >= low) & (best_score <= high))[0]
    return [
        UncertainTile(
            index=int(i),
            label=labels[int(defect_indices[best[i]])],
            score=float(best_score[i]),
            threshold=float(threshold[i]),
        )
        for i in picked
    ]
