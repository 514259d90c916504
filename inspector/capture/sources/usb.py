"""UVC cameras through V4L2, by index ('0') or path ('/dev/video0')."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import cv2
from pydantic import Field, field_validator

from inspector.capture.sources._opencv import OpenCvSource
from inspector.capture.sources.base import DEVICE_PATH, SourcePlugin, SourceSettings, is_device
from inspector.errors import SourceError

_SYS = Path("/sys/class/video4linux")
_DEV = Path("/dev")


def video_devices() -> list[tuple[str, str]]:
    """(``/dev/videoN``, the driver's name for it) of every V4L2 device this PC has, in
    number order. A UVC camera has two nodes (capture and metadata): both are listed."""
    found = []
    for node in _DEV.glob("video*"):
        match = re.fullmatch(r"video(\d+)", node.name)
        if match is None:
            continue
        try:
            name = (_SYS / node.name / "name").read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            name = ""
        found.append((int(match.group(1)), str(node), name))
    return [(path, name) for _, path, name in sorted(found)]


def describe_devices(devices: list[tuple[str, str]]) -> str:
    if not devices:
        return "this PC has no video devices"
    listed = ", ".join(f"{path} ({name})" if name else path for path, name in devices)
    return f"this PC has {listed}"


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

    def _index(self) -> int:
        match = DEVICE_PATH.match(self.settings.source)
        return int(match.group(1)) if match else int(self.settings.source)

    def _open(self) -> None:
        """Open the device, or one SourceError line that says which video devices this PC
        has and what to check; OpenCV is not asked about a device node that is not there
        (it would print its own warnings on every retry)."""
        node = _DEV / f"video{self._index()}"
        where = f"camera {self.settings.id}: cannot open {self.settings.source}"
        if not node.exists():
            raise SourceError(
                f"{where}: there is no {node}; {describe_devices(video_devices())}. Check the "
                "camera's cable and power, and `source` in the config (`inspector cameras` "
                "lists the cameras)"
            )
        try:
            super()._open()
        except SourceError:
            raise SourceError(
                f"{where}: {node} is there but does not deliver video; check that no other "
                "program uses it, that this user may open it (group `video`), and that it is "
                f"the capture node, not the metadata one ({describe_devices(video_devices())})"
            ) from None

    def _open_capture(self) -> cv2.VideoCapture:
        index = self._index()
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


PLUGIN = SourcePlugin(
    UsbSettings, UsbSource, infer=lambda source: "usb" if is_device(source) else None
)
