"""Video files, USB/V4L2 cameras and RTSP streams, all through OpenCV's VideoCapture."""

from __future__ import annotations

import os
import re
from pathlib import Path

import cv2
import numpy as np

from inspector.capture.source import FrameSource, Grab
from inspector.config import CameraSettings
from inspector.errors import SourceError

_DEVICE_PATH = re.compile(r"^/dev/video(\d+)$")

# FFmpeg options for RTSP: TCP survives lossy plant networks where UDP smears
# frames; nobuffer/low_delay keep the decoder from queueing seconds of video.
_RTSP_FFMPEG_OPTIONS = "rtsp_transport;tcp|fflags;nobuffer|flags;low_delay|max_delay;500000"


class OpenCvSource:
    """One cv2.VideoCapture; subclasses say how to open it."""

    live = True
    lost = 0  # OpenCV does not say when a camera skipped a frame

    def __init__(self, settings: CameraSettings) -> None:
        self.settings = settings
        self.description = settings.source
        self._capture: cv2.VideoCapture | None = None

    def _open_capture(self) -> cv2.VideoCapture:
        raise NotImplementedError

    @property
    def is_open(self) -> bool:
        return self._capture is not None

    def open(self) -> None:
        self.close()
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

    def nominal_fps(self) -> float | None:
        if self._capture is None:
            return None
        fps = float(self._capture.get(cv2.CAP_PROP_FPS))
        return fps if fps > 0 else None

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class VideoFileSource(OpenCvSource):
    """A recording: played once, every frame, frame_id = index in the file."""

    live = False

    def __init__(self, settings: CameraSettings) -> None:
        super().__init__(settings)
        self._index = 0  # frames read in this pass
        self._played = 0  # frames of earlier passes (loop = true)
        self.frame_count: int | None = None

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


class UsbSource(OpenCvSource):
    """A UVC camera through V4L2, by index ('0') or path ('/dev/video0')."""

    def _open_capture(self) -> cv2.VideoCapture:
        source = self.settings.source
        match = _DEVICE_PATH.match(source)
        index = int(match.group(1)) if match else int(source)
        capture = cv2.VideoCapture(index, cv2.CAP_V4L2)
        if capture.isOpened():
            # MJPG lets USB 2 cameras reach full resolution at full rate; YUYV cannot.
            capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*"MJPG"))
            if self.settings.width:
                capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.settings.width)
            if self.settings.height:
                capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.settings.height)
            if self.settings.fps:
                capture.set(cv2.CAP_PROP_FPS, self.settings.fps)
            # One driver buffer: the frame we read is the newest, not one from a second ago.
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return capture


class RtspSource(OpenCvSource):
    """An IP camera over RTSP, decoded by FFmpeg over TCP with low-delay options."""

    def _open_capture(self) -> cv2.VideoCapture:
        os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", _RTSP_FFMPEG_OPTIONS)
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(self.settings.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(self.settings.read_timeout_s * 1000),
        ]
        return cv2.VideoCapture(self.settings.source, cv2.CAP_FFMPEG, params)


def create_source(settings: CameraSettings) -> FrameSource:
    """Pick the source type from ``type``, and for OpenCV from the form of ``source``."""
    if settings.type == "gentl":
        from inspector.capture.gentl_source import GenTlSource

        return GenTlSource(settings)
    if settings.type == "pylon":
        from inspector.capture.pylon_source import PylonSource

        return PylonSource(settings)
    source = settings.source
    if source.isdigit() or _DEVICE_PATH.match(source):
        return UsbSource(settings)
    if source.lower().startswith(("rtsp://", "rtsps://", "http://", "https://")):
        return RtspSource(settings)
    if "://" in source:
        raise SourceError(f"camera {settings.id}: unsupported source URL scheme: {source}")
    return VideoFileSource(settings)
