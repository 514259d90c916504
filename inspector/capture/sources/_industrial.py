"""What GenTL and pylon cameras share: their options (features, software trigger, fetch
timeout, the camera selector), pixel formats to the model's pixels in one pass,
lost-frame bookkeeping from block IDs, and :class:`IndustrialSource`, the order of
opening, grabbing and closing that both sources follow around their vendor's calls."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, Generic, Self, TypeVar

import cv2
import numpy as np
from pydantic import Field, model_validator

from inspector.capture.source import Grab, NoFrameYet
from inspector.capture.sources.base import SourceSettings
from inspector.errors import SourceError, first_line
from inspector.types.frames import Image

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

    def triggered(self) -> bool:
        return trigger_mode_on(self.features)

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


SettingsT = TypeVar("SettingsT", bound=IndustrialSettings)


class IndustrialSource(ABC, Generic[SettingsT]):
    """A GenICam camera opened through a vendor's stack: the steps every such source takes,
    in order, around the vendor's calls, which a subclass supplies.

    ``device`` is whatever the vendor hands back for an opened camera (a harvesters image
    acquirer, a pylon InstantCamera); ``buffer`` what one fetch returns.
    """

    live = True
    paced = False

    def __init__(self, settings: SettingsT, description: str) -> None:
        self.settings = settings
        self.description = description
        self._device: Any | None = None
        self._lost = LostFrames()
        self._triggered = trigger_mode_on(settings.features)
        hz = settings.software_trigger_hz
        self._pacer = TriggerPacer(hz) if hz is not None else None

    @property
    def lost(self) -> int:
        return self._lost.lost

    @property
    def is_open(self) -> bool:
        return self._device is not None

    def _fault(self, reason: str) -> SourceError:
        return SourceError(f"camera {self.settings.id}: {reason}")

    def _cannot_open(self, exc: BaseException) -> SourceError:
        return self._fault(f"cannot open {self.settings.source}: {first_line(exc)}")

    def open(self) -> None:
        self.close()
        device = self._connect()
        try:
            self._start(device)
        except BaseException:
            self._discard(device)
            raise
        self._device = device
        self._lost.restart()

    def grab(self) -> Grab | None:
        device = self._device
        if device is None:
            raise self._fault(f"{self.description} is not open")
        if self._pacer is not None:
            self._pacer.due()
            self._trigger(device)
        try:
            buffer = self._fetch(device)
        except Exception as exc:  # device removed, stream error
            raise self._fault(f"{self.description}: {first_line(exc)}") from None
        if buffer is None:
            if self._triggered:
                raise NoFrameYet()
            raise self._fault(f"no frame within {self.settings.read_timeout_s:g} s")
        try:  # convert first, then hand the buffer back to the camera's pool at once
            block_id = self._block_id(buffer)
            if block_id is None:
                self._lost.incomplete()
                raise NoFrameYet()
            self._lost.seen(block_id)
            image = to_bgr(*self._pixels(device, buffer))
            timestamp = self._timestamp_ns(buffer)
        finally:
            self._release(buffer)
        return Grab(image=image, frame_id=block_id, timestamp_ns=timestamp, part_id=block_id)

    def nominal_fps(self) -> float | None:
        return None if self._device is None else self._frame_rate(self._device)

    def close(self) -> None:
        device, self._device = self._device, None
        if device is not None:
            self._stop(device)

    @abstractmethod
    def _connect(self) -> Any:
        """The opened camera, or SourceError (ConfigError for a missing SDK or producer)."""

    @abstractmethod
    def _start(self, device: Any) -> None:
        """Set the configured features and start acquiring."""

    @abstractmethod
    def _discard(self, device: Any) -> None:
        """Release a camera whose start failed."""

    @abstractmethod
    def _trigger(self, device: Any) -> None:
        """Fire one software trigger."""

    @abstractmethod
    def _fetch(self, device: Any) -> Any | None:
        """The next buffer, or None when none came within ``read_timeout_s``."""

    @abstractmethod
    def _block_id(self, buffer: Any) -> int | None:
        """The buffer's block ID, or None when the buffer is incomplete."""

    @abstractmethod
    def _pixels(self, device: Any, buffer: Any) -> tuple[np.ndarray, int, int, str]:
        """The buffer's data, width, height and pixel format, for :func:`to_bgr`."""

    @abstractmethod
    def _timestamp_ns(self, buffer: Any) -> int | None:
        """The camera's own clock at capture, where it has one."""

    @abstractmethod
    def _release(self, buffer: Any) -> None:
        """Hand the buffer back to the camera."""

    @abstractmethod
    def _frame_rate(self, device: Any) -> float | None:
        """The frame rate the camera declares, where it declares one."""

    @abstractmethod
    def _stop(self, device: Any) -> None:
        """Stop acquiring and release the camera."""
