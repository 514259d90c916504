"""What GenTL and pylon cameras share: their options (features, software trigger, fetch
timeout, the camera selector), pixel formats to the model's pixels in one pass and
lost-frame bookkeeping from block IDs."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Self

import cv2
import numpy as np
from pydantic import Field, model_validator

from inspector.capture.sources.base import SourceSettings
from inspector.errors import SourceError
from inspector.frames import Image

FeatureValue = bool | int | float | str
_SELECTORS = ("serial:", "name:", "index:")


class IndustrialSettings(SourceSettings):
    """The options of a GenICam camera, whichever stack (GenTL, pylon) opens it."""

    features: dict[str, FeatureValue] = Field(
        default_factory=dict,
        description="GenICam features set at start, e.g. ExposureTime = 5000.0, PixelFormat = "
        "'Mono8', TriggerMode = 'On'",
    )
    software_trigger_hz: float | None = Field(
        default=None, gt=0, description="fire TriggerSoftware at this rate (tests, bench setups)"
    )
    read_timeout_s: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _a_selector(self) -> Self:
        if not self.source.startswith(_SELECTORS):
            raise ValueError(
                f"a {self.type} camera's source is serial:SN, name:USER-NAME or index:N, "
                f"got {self.source!r}"
            )
        return self


# Pixel format (GenICam SFNC names) -> OpenCV conversion into BGR, or None for Mono8 (gray).
CONVERSIONS: dict[str, int | None] = {
    "Mono8": None,
    "RGB8": cv2.COLOR_RGB2BGR,
    "BGR8": -1,  # already BGR: a plain copy
    "RGBa8": cv2.COLOR_RGBA2BGR,
    "BGRa8": cv2.COLOR_BGRA2BGR,
    "BayerRG8": cv2.COLOR_BayerRGGB2BGR,
    "BayerGR8": cv2.COLOR_BayerGRBG2BGR,
    "BayerGB8": cv2.COLOR_BayerGBRG2BGR,
    "BayerBG8": cv2.COLOR_BayerBGGR2BGR,
}
ALIASES = {
    "RGB8Packed": "RGB8",
    "BGR8Packed": "BGR8",
    "BGRA8Packed": "BGRa8",
    "RGBA8Packed": "RGBa8",
}
_CHANNELS = {"RGB8": 3, "BGR8": 3, "RGBa8": 4, "BGRa8": 4}


def to_bgr(data: np.ndarray, width: int, height: int, pixel_format: str) -> Image:
    """One pass from the camera's buffer into a new array the pipeline owns."""
    pixel_format = ALIASES.get(pixel_format, pixel_format)
    if pixel_format not in CONVERSIONS:
        raise SourceError(
            f"pixel format {pixel_format} is not supported; set PixelFormat to one of "
            f"{', '.join(CONVERSIONS)}"
        )
    channels = _CHANNELS.get(pixel_format, 1)
    shape = (height, width, channels) if channels > 1 else (height, width)
    shaped = data.reshape(shape)
    code = CONVERSIONS[pixel_format]
    if code is None or code == -1:
        return np.array(shaped, np.uint8, copy=True)
    return np.asarray(cv2.cvtColor(shaped, code), np.uint8)


class LostFrames:
    """Block-ID bookkeeping: a jump of n counts n - 1 frames lost."""

    def __init__(self) -> None:
        self.lost = 0
        self._last: int | None = None

    def seen(self, block_id: int) -> None:
        if self._last is not None and block_id > self._last + 1:
            self.lost += block_id - self._last - 1
        self._last = block_id

    def incomplete(self) -> None:
        self.lost += 1

    def restart(self) -> None:
        self._last = None  # a reopened camera may restart its block IDs


def parse_selector(source: str) -> tuple[str, str]:
    """``serial:SN``, ``name:USER-NAME`` or ``index:N`` (validated by the config)."""
    kind, _, value = source.partition(":")
    return kind, value


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def trigger_mode_on(features: Mapping[str, object]) -> bool:
    """A camera in trigger mode waits for parts: a fetch timeout is no fault then."""
    return str(features.get("TriggerMode", "Off")) == "On"


class TriggerPacer:
    """Paces a software trigger at ``hz``: ``due()`` sleeps until the next one is due."""

    def __init__(self, hz: float) -> None:
        self.period_s = 1 / hz
        self._next = 0.0

    def due(self) -> None:
        delay = self._next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self._next = time.monotonic() + self.period_s
