"""The unit of data that flows from capture to publishing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]


@dataclass(slots=True)
class Frame:
    """One captured image and where and when it came from.

    ``frame_id`` follows DESIGN.md: the 0-based index in a recording, the
    camera's own counter where it has one, else a counter of the run; it never
    goes backwards within a run. ``captured_ns`` is ``time.monotonic_ns()`` at
    capture and is what latencies are measured from; ``captured_at`` is the
    wall-clock time reported in events.
    """

    camera_id: str
    frame_id: int
    image: Image  # HxWx3 BGR (OpenCV order) or HxW gray
    captured_at: datetime
    captured_ns: int
    # The camera's own trigger/block count where it has one (GenTL, pylon): what a PLC's
    # shift register counts parts by. None: the camera has none, the frame id stands in.
    part_id: int | None = None

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso_utc(moment: datetime) -> str:
    """RFC 3339 with microseconds and a ``Z``, as the event schema shows."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
