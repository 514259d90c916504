"""A recorded line built from a labelled dataset: parts on a conveyor, and the truth file.

Parts (the dataset's TEST images, so a model never replays its own training data)
ride left to right in columns of ``rows`` parts, each resized to one tile. With the
default step of one tile per frame the camera fires as an encoder-triggered line
camera does: parts sit on the tile grid in every frame, and each is seen in
``cols`` consecutive frames. The truth file (DESIGN.md) lists, per frame, every
visible part that is not of the ok class, its box clipped to the frame.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from inspector.acceptance.truth import Defect, truth_path, truth_record
from inspector.errors import DatasetError, SourceError
from inspector.stderr import silenced_stderr
from inspector.training.datasets import Dataset, Sample, read_image, resize_to
from inspector.types.frames import Image

BELT_GRAY = 40
# Container -> codecs to try, best first. H.264 needs an OpenCV built with an encoder for
# it; the pip wheels may lack one, and MPEG-4 part 2 plays everywhere.
CODECS = {".mp4": ("avc1", "mp4v"), ".mkv": ("avc1", "mp4v"), ".avi": ("MJPG",)}


@dataclass(frozen=True, slots=True)
class ConveyorLayout:
    tile: int = 224  # part size in pixels: the daemon's tiling size
    rows: int = 2  # parts across the belt
    cols: int = 6  # field of view along the belt, in tiles
    step: int = 224  # belt travel per frame, in pixels

    @property
    def width(self) -> int:
        return self.cols * self.tile

    @property
    def height(self) -> int:
        return self.rows * self.tile

    def frame_count(self, parts: int) -> int:
        """Frames until the last column of parts has left the field of view."""
        columns = -(-parts // self.rows)
        return -(-(self.width + columns * self.tile) // self.step) - 1


@dataclass(frozen=True, slots=True)
class RecordingInfo:
    video: Path
    truth: Path
    codec: str
    frames: int
    parts: int
    defective_parts: int
    fps: float


def choose_parts(dataset: Dataset, limit: int | None, seed: int) -> list[Sample]:
    parts = list(dataset.test)
    if not parts:
        raise DatasetError(f"{dataset.name}: the test part is empty; nothing to record")
    random.Random(seed).shuffle(parts)  # interleave the classes along the belt
    return parts[:limit] if limit is not None else parts


def open_writer(video: Path, fps: float, size: tuple[int, int]) -> tuple[cv2.VideoWriter, str]:
    codecs = CODECS.get(video.suffix.lower())
    if codecs is None:
        raise SourceError(f"{video}: use one of {', '.join(CODECS)} as the video's extension")
    video.parent.mkdir(parents=True, exist_ok=True)
    for codec in codecs:
        # FFmpeg prints red errors for an encoder it lists but cannot open (h264_v4l2m2m);
        # the next codec is the answer, and the caller says which one was used.
        with silenced_stderr():
            writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*codec), fps, size)
        if writer.isOpened():
            return writer, codec
        writer.release()
    raise SourceError(f"{video}: this OpenCV build can write none of {', '.join(codecs)}")


def render_frame(
    frame_index: int,
    layout: ConveyorLayout,
    cells: list[Image],
    labels: list[str],
    ok_label: str | None,
) -> tuple[Image, list[Defect]]:
    frame = np.full((layout.height, layout.width, 3), BELT_GRAY, np.uint8)
    defects = []
    for column in range(-(-len(cells) // layout.rows)):
        x = (frame_index + 1) * layout.step - (column + 1) * layout.tile
        if x >= layout.width:
            continue
        if x + layout.tile <= 0:
            break  # later columns are further upstream
        left, right = max(x, 0), min(x + layout.tile, layout.width)
        for row in range(layout.rows):
            index = column * layout.rows + row
            if index >= len(cells):
                break
            y = row * layout.tile
            frame[y : y + layout.tile, left:right] = cells[index][:, left - x : right - x]
            if labels[index] != ok_label:
                defects.append(Defect(labels[index], (left, y, right - left, layout.tile)))
    return frame, defects


def write_recording(
    dataset: Dataset,
    video: Path,
    layout: ConveyorLayout = ConveyorLayout(),
    fps: float = 15.0,
    limit: int | None = None,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> RecordingInfo:
    """Write ``video`` and ``<video>.truth.jsonl``; both are complete or neither is left."""
    parts = choose_parts(dataset, limit, seed)
    cells = [resize_to(read_image(s.path, "rgb"), layout.tile, layout.tile) for s in parts]
    labels = [dataset.labels[s.label] for s in parts]
    frames = layout.frame_count(len(parts))
    truth = truth_path(video)
    writer, codec = open_writer(video, fps, (layout.width, layout.height))
    try:
        with truth.open("w", encoding="utf-8") as lines:
            for index in range(frames):
                image, defects = render_frame(index, layout, cells, labels, dataset.ok_label)
                writer.write(image)
                if defects:
                    lines.write(truth_record(index, defects) + "\n")
                if progress is not None:
                    progress(1)
    except BaseException:
        writer.release()
        video.unlink(missing_ok=True)
        truth.unlink(missing_ok=True)
        raise
    writer.release()
    return RecordingInfo(
        video=video,
        truth=truth,
        codec=codec,
        frames=frames,
        parts=len(parts),
        defective_parts=sum(label != dataset.ok_label for label in labels),
        fps=fps,
    )
