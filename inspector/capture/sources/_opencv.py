"""What the OpenCV kinds (file, usb, rtsp/http) share: one ``cv2.VideoCapture``."""

from __future__ import annotations

import os
from typing import Generic, TypeVar

import cv2
import numpy as np

from inspector.capture.source import Grab
from inspector.capture.sources.base import SourceSettings
from inspector.errors import SourceError

SettingsT = TypeVar("SettingsT", bound=SourceSettings)


# FFmpeg's level for OpenCV's FFmpeg backend, read once, at its first use: AV_LOG_QUIET.
_FFMPEG_LOG_LEVEL = "-8"


def quiet_opencv() -> None:
    """OpenCV's own warnings (``[ WARN:0@…] … can't open camera by index``) and FFmpeg's
    (``[mov,mp4,… @ 0x…] moov atom not found``, ``[tcp @ 0x…] Connection … refused``) go
    straight to stderr, outside the structured logs, and again on every reconnect attempt:
    what failed is said once, in our SourceError line; OpenCV's errors still show. To see
    FFmpeg's lines while debugging a camera, set ``OPENCV_FFMPEG_LOGLEVEL=24`` (warnings)."""
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", _FFMPEG_LOG_LEVEL)


class OpenCvSource(Generic[SettingsT]):
    """One cv2.VideoCapture; subclasses say how to open it."""

    live = True
    paced = False
    lost = 0  # OpenCV does not say when a camera skipped a frame

    def __init__(self, settings: SettingsT) -> None:
        self.settings = settings
        self.description = settings.source
        self._capture: cv2.VideoCapture | None = None
        self.open_error: str | None = None  # why the last open() failed

    def _open_capture(self) -> cv2.VideoCapture:
        raise NotImplementedError

    @property
    def is_open(self) -> bool:
        return self._capture is not None

    def open(self) -> None:
        self.close()
        self.open_error = None
        try:
            self._open()
        except SourceError as exc:
            self.open_error = str(exc)  # for the camera's status while it is retried
            raise

    def _open(self) -> None:
        quiet_opencv()
        capture = self._open_capture()
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"camera {self.settings.id}: cannot open {self.description}")
        self._capture = capture

    def grab(self) -> Grab | None:
        if self._capture is None:
            raise SourceError(f"camera {self.settings.id}: {self.description} is not open")
        ok, image = self._capture.read()
        if not ok or image is None:
            raise SourceError(f"camera {self.settings.id}: {self.description} delivered no frame")
        return Grab(image=np.asarray(image, dtype=np.uint8))

    def frame_size(self) -> tuple[int, int] | None:
        """(width, height) the opened capture declares: a recording's own, the size a
        camera's driver agreed to; None when closed or not declared."""
        if self._capture is None:
            return None
        width = int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        return (width, height) if width > 0 and height > 0 else None

    def nominal_fps(self) -> float | None:
        if self._capture is None:
            return None
        fps = float(self._capture.get(cv2.CAP_PROP_FPS))
        return fps if fps > 0 else None

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
