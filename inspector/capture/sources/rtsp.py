"""IP cameras: RTSP(S) and HTTP(S) (MJPEG) streams decoded by FFmpeg through OpenCV."""

from __future__ import annotations

import os
from typing import Literal

import cv2
from pydantic import Field, field_validator

from inspector.capture.sources._opencv import OpenCvSource
from inspector.capture.sources.base import SourcePlugin, SourceSettings

# FFmpeg options for RTSP: TCP survives lossy plant networks where UDP smears
# frames; nobuffer/low_delay keep the decoder from queueing seconds of video.
_RTSP_FFMPEG_OPTIONS = "rtsp_transport;tcp|fflags;nobuffer|flags;low_delay|max_delay;500000"


_SCHEMES = {"rtsp://": "rtsp", "rtsps://": "rtsp", "http://": "http", "https://": "http"}


def stream_type(source: str) -> str | None:
    """``rtsp`` or ``http`` for a stream URL, else None."""
    lowered = source.lower()
    return next((kind for scheme, kind in _SCHEMES.items() if lowered.startswith(scheme)), None)


class RtspSettings(SourceSettings):
    """``type = "rtsp"`` or ``"http"``: inferred for rtsp://, rtsps://, http:// and https://."""

    type: Literal["rtsp", "http"] = "rtsp"
    open_timeout_s: float = Field(default=10.0, gt=0)
    read_timeout_s: float = Field(default=5.0, gt=0)

    @field_validator("source")
    @classmethod
    def _a_stream_url(cls, value: str) -> str:
        if stream_type(value) is None:
            raise ValueError(
                f"an rtsp/http camera's source is an rtsp://, rtsps://, http:// or https:// URL, "
                f"got {value!r}"
            )
        return value


class RtspSource(OpenCvSource[RtspSettings]):
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


PLUGIN = SourcePlugin(RtspSettings, RtspSource, infer=stream_type)
