"""Recordings: a video file played through OpenCV/FFmpeg, once or in a loop."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

import cv2
import numpy as np
from pydantic import Field, field_validator

from inspector.capture.source import Grab
from inspector.capture.sources._opencv import OpenCvSource
from inspector.capture.sources.base import SourcePlugin, SourceSettings, is_device
from inspector.errors import SourceError
from inspector.sections import StateFolder


class FileSettings(SourceSettings):
    """``type = "file"``: inferred for any ``source`` that is neither a device nor a URL."""

    type: Literal["file"] = "file"
    realtime: bool = Field(
        default=False, description="pace a recording at its own frame rate, as a live line would"
    )
    loop: bool = Field(
        default=False, description="play a recording again at its end (soak tests, showrooms)"
    )
    fps: float | None = Field(
        default=None, gt=0, description="with realtime: play at this rate, not the file's own"
    )

    @field_validator("source")
    @classmethod
    def _a_path(cls, value: str) -> str:
        if "://" in value:
            raise ValueError(f"a file camera's source is a path, got {value!r}")
        return value

    def resolve_paths(self, base: Path, state: StateFolder | None = None) -> Self:
        settings = super().resolve_paths(base, state)
        source = Path(settings.source)
        if source.is_absolute():
            return settings
        return settings.model_copy(update={"source": str(base / source)})


class VideoFileSource(OpenCvSource[FileSettings]):
    """A recording: played once, every frame, frame_id = index in the file."""

    live = False

    def __init__(self, settings: FileSettings) -> None:
        super().__init__(settings)
        self.paced = settings.realtime
        self._index = 0  # frames read in this pass
        self._played = 0  # frames of earlier passes (loop = true)
        self.frame_count: int | None = None

    def nominal_fps(self) -> float | None:
        return self.settings.fps or super().nominal_fps()

    def _open_capture(self) -> cv2.VideoCapture:
        path = Path(self.settings.source)
        if not path.is_file():
            raise SourceError(f"camera {self.settings.id}: video file not found: {path}")
        capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        if not capture.isOpened():
            raise SourceError(
                f"camera {self.settings.id}: {path}: not a video OpenCV/FFmpeg can decode"
            )
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = count if count > 0 else None
        self._index = 0
        return capture

    def grab(self) -> Grab | None:
        if self._capture is None:
            raise SourceError(f"camera {self.settings.id}: {self.description} is not open")
        ok, image = self._capture.read()
        if not ok or image is None:
            self._check_complete()
            if not self.settings.loop or self._index == 0:
                return None
            self._played += self._index  # frame ids go on counting across passes
            self._capture.release()
            self._capture = self._open_capture()
            return self.grab()
        grab = Grab(image=np.asarray(image, dtype=np.uint8), frame_id=self._played + self._index)
        self._index += 1
        return grab

    def _check_complete(self) -> None:
        """A file that stops well before the frame count in its header is truncated: say so,
        rather than end the replay as if it had played in full."""
        expected = self.frame_count
        if expected is not None and expected - self._index > max(1, expected // 50):
            raise SourceError(
                f"camera {self.settings.id}: {self.settings.source} ended after {self._index} "
                f"of {expected} frames: the file is truncated or corrupt"
            )


def _a_file(source: str) -> str | None:
    """Anything with no ``scheme://`` that is not a device is a path to a recording."""
    return "file" if "://" not in source and not is_device(source) else None


PLUGIN = SourcePlugin(FileSettings, VideoFileSource, infer=_a_file)
