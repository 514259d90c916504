"""The one small protocol every camera type implements.

A new camera type (GenICam, pylon, a test pattern) is one new class with
these four methods; nothing downstream knows which kind produced a frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from inspector.frames import Image


@dataclass(slots=True)
class Grab:
    """What a source hands over: the pixels and the source's own frame number, if any."""

    image: Image
    frame_id: int | None = None


class FrameSource(Protocol):
    description: str
    """Where the frames come from, for logs and errors (a path, a device, a URL)."""

    live: bool
    """True for cameras (frames go stale, drop the oldest); False for recordings."""

    @property
    def is_open(self) -> bool:
        """Whether ``open`` succeeded and ``close`` has not been called since."""

    def open(self) -> None:
        """Open the device or file; raise SourceError with one clear line if it cannot."""

    def grab(self) -> Grab | None:
        """Block for the next frame; None at the end of a recording.

        Raises SourceError when a live source stops delivering, so the caller
        can reconnect with backoff.
        """

    def nominal_fps(self) -> float | None:
        """The frame rate the source declares, where it declares one."""

    def close(self) -> None:
        """Release the device; safe to call twice."""
