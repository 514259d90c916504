"""What every camera source shares, and what a source plugin declares.

A kind of camera is one file of this package (``file.py``, ``usb.py``, ``gentl.py``...)
holding its settings (a :class:`SourceSettings` subclass whose ``type`` is a
``Literal`` and whose own fields are the kind's options), its source class (a
:class:`~inspector.capture.source.FrameSource`) and ``PLUGIN = SourcePlugin(...)``;
``registry.py`` finds it and builds ``cameras[]``'s union from it.

This module must not import :mod:`inspector.config`: the configuration is built
from the sources, not the other way round.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Generic, Literal, Self, TypeVar, get_args, get_origin

from pydantic import Field, model_validator

from inspector.capture.source import FrameSource
from inspector.sections import Section

Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]

DEVICE_PATH = re.compile(r"^/dev/video(\d+)$")


class QueuePolicyName(StrEnum):
    AUTO = "auto"  # live sources drop the oldest frame, recordings block
    DROP_OLDEST = "drop_oldest"
    BLOCK = "block"


def is_device(source: str) -> bool:
    """A V4L2 device: an index ('0') or /dev/videoN."""
    return source.isdigit() or DEVICE_PATH.match(source) is not None


class SourceSettings(Section):
    """One ``[[cameras]]`` entry: what every kind of camera has.

    A kind subclasses it with ``type: Literal["<kind>"] = "<kind>"``: that tag picks
    it out of the ``CameraSettings`` union, and its own fields are the kind's options
    (an option of another kind is rejected by name).
    """

    id: Identifier
    type: str
    source: str = Field(
        min_length=1,
        description="a video file, a device index ('0'), /dev/videoN, rtsp://… or http://…; "
        "for gentl/pylon: serial:SN, name:USER-NAME or index:N",
    )
    queue_size: int = Field(default=8, ge=1, le=1024)
    policy: QueuePolicyName = QueuePolicyName.AUTO
    calibration: Path | None = Field(
        default=None, description="camera model from `inspector calibrate camera` (undistortion)"
    )
    flat_field: Path | None = Field(
        default=None, description="correction from `inspector calibrate flat-field`"
    )
    mm_per_px: float | None = Field(
        default=None, gt=0, description="scale on the conveyor; default: the calibration's"
    )
    roi_mask: Path | None = Field(
        default=None,
        description="mask image, white where the product is: tiles mostly outside are skipped",
    )
    conveyor_mm_per_frame: float | None = Field(
        default=None, gt=0, description="belt travel per frame (encoder-triggered cameras)"
    )
    conveyor_mm_per_s: float | None = Field(
        default=None, gt=0, description="belt speed (free-running cameras)"
    )

    @model_validator(mode="after")
    def _one_conveyor_speed(self) -> Self:
        if self.conveyor_mm_per_frame is not None and self.conveyor_mm_per_s is not None:
            raise ValueError("give conveyor_mm_per_frame or conveyor_mm_per_s, not both")
        return self

    def triggered(self) -> bool:
        """Whether the camera waits for a trigger (its frames are parts a PLC counts)."""
        return False

    def common(self) -> dict[str, object]:
        """The fields every kind has, except ``type`` and ``source``: to make a camera of
        another kind with the same id, queue and calibration (a replay of a recording)."""
        names = set(SourceSettings.model_fields) - {"type", "source"}
        return {name: getattr(self, name) for name in names}


SettingsT = TypeVar("SettingsT", bound=SourceSettings)


@dataclass(frozen=True)
class SourcePlugin(Generic[SettingsT]):
    """What a source module exports as ``PLUGIN``: its settings and how to make its source.

    ``create(settings)`` gets the validated settings and returns an unopened source; a
    kind that needs a vendor SDK imports it when the source is opened, not at import,
    so the configuration (which imports every source module) stays lean. ``infer(source)``
    says which of its types a camera with no ``type`` gets from its ``source`` (None: not
    one of its sources); the plugins' answers must not overlap.
    """

    settings: type[SettingsT]
    create: Callable[[SettingsT], FrameSource]
    infer: Callable[[str], str | None] | None = None

    @property
    def types(self) -> tuple[str, ...]:
        """The ``cameras[].type`` values that pick this plugin (its settings' tag)."""
        annotation = self.settings.model_fields["type"].annotation
        values = get_args(annotation) if get_origin(annotation) is Literal else ()
        if not values or not all(isinstance(value, str) and value for value in values):
            raise TypeError(
                f"{self.settings.__qualname__}.type must be a Literal of names: "
                'type: Literal["<kind>"] = "<kind>"'
            )
        return values
