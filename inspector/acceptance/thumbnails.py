"""Pictures for the replay report: the missed, false and some correctly found frames.

The frames come from the recording itself, read again in one sequential pass
(seeking in MPEG-4 lands on key frames, so a seek can return the wrong frame).
Each picture is the frame scaled down, with the true boxes of the truth file and
the reported boxes of the delivered event drawn in two colours, class names inside.
Drawing and choosing are pure functions; only :func:`save_thumbnails` does I/O,
and it never raises: a recording that cannot be read back leaves a notice instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import structlog

from inspector.acceptance.scoring import Reported, found_frames
from inspector.acceptance.truth import Box, Defect, Truth
from inspector.types.frames import Image

log = structlog.get_logger(__name__)

# Green and magenta: apart for the common colour blindnesses, and unlike the belt, the parts
# and the usual defect colours. BGR, as OpenCV draws.
TRUE_BGR = (0, 200, 0)
REPORTED_BGR = (255, 0, 255)
LINE_PX = 2
MAX_WIDTH = 480
MAX_PER_LIST = 200
EXAMPLES_PER_CLASS = 3
IMAGES_DIR = "images"
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FONT_SCALE = 0.4
_JPEG_QUALITY = 85

Corners = tuple[int, int, int, int]  # x0, y0, x1, y1, inclusive, in thumbnail pixels


def hex_colour(bgr: tuple[int, int, int]) -> str:
    blue, green, red = bgr
    return f"#{red:02x}{green:02x}{blue:02x}"


def scale_for(width: int, max_width: int = MAX_WIDTH) -> float:
    """Down to ``max_width``, never up: a small frame is drawn on at its own size."""
    return min(1.0, max_width / width) if width > 0 else 1.0


def scale_box(box: Box, scale: float, width: int, height: int) -> Corners | None:
    """A frame box in thumbnail pixels, clipped to the thumbnail; None when wholly outside."""
    x, y, w, h = box
    x0, y0 = max(round(x * scale), 0), max(round(y * scale), 0)
    x1, y1 = min(round((x + w) * scale) - 1, width - 1), min(round((y + h) * scale) - 1, height - 1)
    return (x0, y0, x1, y1) if x0 <= x1 and y0 <= y1 else None


def outline(
    image: Image, corners: Corners, bgr: tuple[int, int, int], inset: int, thickness: int
) -> None:
    """A rectangle ``thickness`` pixels wide, ``inset`` pixels inside ``corners``, in place.

    Drawn band by band rather than with cv2.rectangle, whose thick lines straddle the
    edge: here a true box and a reported box on the same tile both stay visible.
    """
    x0, y0, x1, y1 = corners[0] + inset, corners[1] + inset, corners[2] - inset, corners[3] - inset
    if x0 > x1 or y0 > y1:
        return
    colour = np.asarray(bgr, np.uint8)
    image[y0 : min(y0 + thickness, y1 + 1), x0 : x1 + 1] = colour
    image[max(y1 - thickness + 1, y0) : y1 + 1, x0 : x1 + 1] = colour
    image[y0 : y1 + 1, x0 : min(x0 + thickness, x1 + 1)] = colour
    image[y0 : y1 + 1, max(x1 - thickness + 1, x0) : x1 + 1] = colour


def label(image: Image, text: str, x: int, y: int, bgr: tuple[int, int, int], top: bool) -> None:
    """``text`` on a black strip, its top (or bottom) edge at ``y``, in place."""
    (width, height), baseline = cv2.getTextSize(text, _FONT, _FONT_SCALE, 1)
    y0 = y if top else y - height - baseline - 2
    cv2.rectangle(image, (x, y0), (x + width + 2, y0 + height + baseline + 2), (0, 0, 0), -1)
    cv2.putText(image, text, (x + 1, y0 + height + 1), _FONT, _FONT_SCALE, bgr, 1, cv2.LINE_AA)


def draw_thumbnail(
    frame: Image,
    true_defects: Sequence[Defect],
    reported: Sequence[Defect],
    max_width: int = MAX_WIDTH,
) -> Image:
    """The frame scaled to at most ``max_width``, true boxes outermost and reported boxes just
    inside them; true class names at a box's top left, reported ones at its bottom left."""
    if frame.ndim == 2:
        frame = np.asarray(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR), np.uint8)
    height, width = frame.shape[:2]
    scale = scale_for(width, max_width)
    size = (max(round(width * scale), 1), max(round(height * scale), 1))
    image = (
        frame.copy()
        if scale == 1.0
        else np.asarray(cv2.resize(frame, size, interpolation=cv2.INTER_AREA), np.uint8)
    )
    height, width = image.shape[:2]
    boxes = [
        (defect.label, corners, bgr, inset, top)
        for defects, bgr, inset, top in (
            (true_defects, TRUE_BGR, 0, True),
            (reported, REPORTED_BGR, LINE_PX, False),
        )
        for defect in defects
        if (corners := scale_box(defect.bbox, scale, width, height)) is not None
    ]
    for _, corners, bgr, inset, _ in boxes:
        outline(image, corners, bgr, inset, LINE_PX)
    # Names after every outline, so a neighbour's outline never covers one.
    margin = 2 * LINE_PX + 1
    for text, (x0, y0, _, y1), bgr, _, top in boxes:
        label(image, text, x0 + margin, y0 + margin if top else y1 - margin + 1, bgr, top)
    return image


def spread(items: Sequence[int], count: int) -> list[int]:
    """At most ``count`` of ``items``, evenly spaced from the first to the last."""
    if len(items) <= count:
        return list(items)
    if count <= 1:
        return list(items[:count])
    return [items[round(i * (len(items) - 1) / (count - 1))] for i in range(count)]


@dataclass(frozen=True, slots=True)
class Plan:
    missed: list[int]
    false: list[int]
    examples: dict[str, list[int]]  # class -> frames where a true defect of it was found
    missed_left_out: int
    false_left_out: int

    @property
    def frames(self) -> set[int]:
        return {*self.missed, *self.false, *(f for fs in self.examples.values() for f in fs)}


def plan_thumbnails(
    truth: Truth,
    reported: Reported,
    missed: Sequence[int],
    false: Sequence[int],
    limit: int = MAX_PER_LIST,
    examples: int = EXAMPLES_PER_CLASS,
) -> Plan:
    """Every missed and false frame up to ``limit`` each (spread over the run beyond that),
    and up to ``examples`` frames per class where the class was found."""
    return Plan(
        missed=spread(missed, limit),
        false=spread(false, limit),
        examples={c: spread(fs, examples) for c, fs in found_frames(truth, reported).items()},
        missed_left_out=max(len(missed) - limit, 0),
        false_left_out=max(len(false) - limit, 0),
    )


def read_frames(video: Path, wanted: Iterable[int]) -> Iterator[tuple[int, Image]]:
    """``(frame_id, image)`` for the wanted frames in order, in one pass from the start;
    stops quietly where the file ends. frame_id is the index in the file, as in a replay."""
    remaining = sorted(set(wanted))
    capture = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
    try:
        if not capture.isOpened():
            raise OSError(f"{video}: not a video OpenCV/FFmpeg can decode")
        index = 0
        for target in remaining:
            while index < target:
                if not capture.grab():  # grab skips the colour conversion of unwanted frames
                    return
                index += 1
            ok, image = capture.read()
            if not ok or image is None:
                return
            index += 1
            yield target, np.asarray(image, np.uint8)
    finally:
        capture.release()


def encode_jpeg(image: Image) -> bytes:
    # Full-resolution colour: with the usual 4:2:0 the two-pixel bands of a true and a
    # reported box side by side would blur into one grey line.
    params = [
        cv2.IMWRITE_JPEG_QUALITY,
        _JPEG_QUALITY,
        cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
        cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
    ]
    ok, data = cv2.imencode(".jpg", image, params)
    if not ok:
        raise ValueError("OpenCV could not encode a JPEG")
    return bytes(np.asarray(data).tobytes())


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    lines = str(exc).strip().splitlines()
    return lines[-1].strip() if lines else type(exc).__name__  # cv2.error spans lines


def _classes(defects: Sequence[Defect]) -> list[str]:
    return sorted({d.label for d in defects})


def save_thumbnails(
    video: Path,
    report_dir: Path,
    truth: Truth,
    reported: Reported,
    missed: Sequence[int],
    false: Sequence[int],
    limit: int = MAX_PER_LIST,
    max_width: int = MAX_WIDTH,
) -> dict[str, Any]:
    """Write ``report_dir/images/frame-<id>.jpg`` and return the report's ``thumbnails``.

    Paths in it are relative to ``report_dir``, so the page opens from disk. Any failure
    to read or write becomes the one-line ``notice``; the replay's verdict never depends
    on its pictures.
    """
    plan = plan_thumbnails(truth, reported, missed, false, limit)
    folder = report_dir / IMAGES_DIR
    made: dict[int, dict[str, Any]] = {}
    notice = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("frame-*.jpg"):  # an earlier replay into the same folder
            stale.unlink()
        for frame_id, frame in read_frames(video, plan.frames) if plan.frames else ():
            true_defects, regions = truth.get(frame_id, []), reported.get(frame_id, [])
            picture = draw_thumbnail(frame, true_defects, regions, max_width)
            name = f"frame-{frame_id}.jpg"
            (folder / name).write_bytes(encode_jpeg(picture))
            made[frame_id] = {
                "frame_id": frame_id,
                "path": f"{IMAGES_DIR}/{name}",
                "width": int(picture.shape[1]),
                "height": int(picture.shape[0]),
                "true": _classes(true_defects),
                "reported": _classes(regions),
            }
    except (OSError, ValueError, cv2.error) as exc:
        notice = f"no pictures: {_reason(exc)}"
        made = {}
    unread = sorted(plan.frames - made.keys())
    if notice is None and unread:
        notice = (
            f"{video}: {len(unread)} of {len(plan.frames)} frames to picture could not be read "
            f"back (the first is frame {unread[0]}); they are left out"
        )
    if notice is not None:
        log.warning("replay_thumbnails", notice=notice)

    def entries(frames: Iterable[int]) -> list[dict[str, Any]]:
        return [made[f] for f in frames if f in made]

    return {
        "colours": {"true": hex_colour(TRUE_BGR), "reported": hex_colour(REPORTED_BGR)},
        "limit": limit,
        "missed": entries(plan.missed),
        "missed_left_out": plan.missed_left_out,
        "false": entries(plan.false),
        "false_left_out": plan.false_left_out,
        "examples": {c: entries(fs) for c, fs in plan.examples.items()},
        "notice": notice,
    }
