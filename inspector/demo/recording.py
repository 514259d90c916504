"""A synthetic conveyor recording with its truth file, for the demo and the tests.

Parts (light gray plates) ride a dark belt from left to right; some carry a
white "crack" band or a red "stain" band wide enough to fill a tile column. The
truth file follows DESIGN.md's ``<video>.truth.jsonl``: one line per frame
that shows a defect, with the defect's box in frame pixels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from inspector.frames import Image

BELT_BGR = (55, 55, 55)
PART_BGR = (95, 95, 95)
DEFECT_BGR = {"crack": (245, 245, 245), "stain": (30, 30, 235)}


@dataclass(frozen=True, slots=True)
class Part:
    index: int
    defect: str | None


def truth_path(video: Path) -> Path:
    return video.with_name(video.name + ".truth.jsonl")


def render_conveyor_frame(
    frame_index: int,
    width: int,
    height: int,
    part_width: int,
    gap: int,
    speed: int,
    patch: int,
) -> tuple[Image, list[dict[str, object]]]:
    """One frame and the defects fully inside it, as truth records."""
    image = np.full((height, width, 3), BELT_BGR, np.uint8)
    defects: list[dict[str, object]] = []
    pitch = part_width + gap
    offset = frame_index * speed
    first = max(0, (offset - part_width - width) // pitch)
    margin = 8  # parts fill the belt's width, the camera sees them from above
    for index in range(first, offset // pitch + 1):
        left = offset - index * pitch - part_width  # part 0 enters first, from the left
        if left >= width or left + part_width <= 0:
            continue
        cv2.rectangle(
            image, (left, margin), (left + part_width - 1, height - margin - 1), PART_BGR, -1
        )
        defect = ("crack", "stain", None)[index % 3]
        if defect is None:
            continue
        # A band across the part, wide enough that a whole tile column lies inside it.
        px = left + (part_width - patch) // 2
        py, patch_height = 2 * margin, height - 4 * margin
        cv2.rectangle(
            image, (px, py), (px + patch - 1, py + patch_height - 1), DEFECT_BGR[defect], -1
        )
        if px >= 0 and px + patch <= width:
            defects.append({"class": defect, "bbox_px": [px, py, patch, patch_height]})
    return image, defects


def write_conveyor_recording(
    video: Path,
    frames: int = 120,
    width: int = 1344,
    height: int = 448,
    fps: float = 15.0,
    speed: int = 32,
    part_width: int = 400,
    gap: int = 120,
    patch: int = 300,
) -> Path:
    """Write an MP4 (mp4v) recording and its truth file; return the truth file's path."""
    video.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"{video}: OpenCV cannot write an mp4v video here")
    truth = truth_path(video)
    with truth.open("w", encoding="utf-8") as lines:
        for frame_index in range(frames):
            image, defects = render_conveyor_frame(
                frame_index, width, height, part_width, gap, speed, patch
            )
            writer.write(image)
            if defects:
                lines.write(json.dumps({"frame_id": frame_index, "defects": defects}) + "\n")
    writer.release()
    return truth
