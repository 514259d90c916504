"""UVC cameras through V4L2, by index ('0') or path ('/dev/video0')."""

from __future__ import annotations

from typing import Literal

import cv2
from pydantic import Field, field_validator

from inspector.capture.sources._opencv import OpenCvSource
from inspector.capture.sources.base import DEVICE_PATH, SourcePlugin, SourceSettings, is_device


class UsbSettings(SourceSettings):
    """``type = "usb"``: inferred for a device index or /dev/videoN."""

    type: Literal["usb"] = "usb"
    width: int | None = Field(default=None, ge=1, description="requested live capture width")
    height: int | None = Field(default=None, ge=1, description="requested live capture height")
    fps: float | None = Field(default=None, gt=0, description="requested live frame rate")

    @field_validator("source")
    @classmethod
    def _a_device(cls, value: str) -> str:
        if not is_device(value):
            raise ValueError(
                f"a usb camera's source is a device index or /dev/videoN, got {value!r}"
            )
        return value


class UsbSource(OpenCvSource[UsbSettings]):
    """A UVC camera through V4L2, by index ('0') or path ('/dev/video0')."""

    def _open_capture(self) -> cv2.VideoCapture:
        source = self.settings.source
        match = DEVICE_PATH.match(source)
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


PLUGIN = SourcePlugin(UsbSettings, UsbSource)
