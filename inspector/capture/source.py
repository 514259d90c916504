"""The one small protocol every camera type implements.

A new camera type (a test pattern, a vendor SDK) is one new class with these
methods, in its own module of :mod:`inspector.capture.sources`; nothing
downstream knows which kind produced a frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from inspector.types.frames import Image


@dataclass(slots=True)
class Grab:
    """What a source hands over: the pixels and the source's own frame number, if any."""

    image: Image
    frame_id: int | None = None
    timestamp_ns: int | None = None  # the camera's own clock, where it has one
    part_id: int | None = None  # the camera's trigger/block count, where it has one


class NoFrameYet(Exception):
    """A triggered camera had no trigger within the fetch timeout: waiting, not a fault."""


class FrameSource(Protocol):
    description: str
    """Where the frames come from, for logs and errors (a path, a device, a URL)."""

    live: bool
    """True for cameras (frames go stale, drop the oldest); False for recordings."""

    paced: bool
    """True where the capture thread paces the frames at ``nominal_fps`` (a recording played
    as the live line would deliver it); a camera paces itself."""

    @property
    def lost(self) -> int:
        """Frames the camera or its transport lost (gaps in block IDs, incomplete buffers)."""

    @property
    def is_open(self) -> bool:
        """Whether ``open`` succeeded and ``close`` has not been called since."""

    def open(self) -> None:
        """Open the device or file; raise SourceError with one clear line if it cannot."""

    def grab(self) -> Grab | None:
        """Block for the next frame; None at the end of a recording.

        Raises SourceError when a live source stops delivering, so the caller
        can reconnect with backoff, and NoFrameYet when a triggered camera simply
        had no trigger (the caller checks for a stop and asks again).
        """

    def nominal_fps(self) -> float | None:
        """The frame rate the source declares, where it declares one."""

    def close(self) -> None:
        """Release the device; safe to call twice."""
