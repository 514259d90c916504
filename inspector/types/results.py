"""What the pipeline hands the sinks: an inspected frame, a part's verdict, and the figures
and health a sink reports about itself. Plain types; the stages produce and consume them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from inspector.types.frames import Frame
from inspector.types.tiles import TileGrid


@dataclass(frozen=True, slots=True)
class Region:
    """Adjacent defect tiles of one class, merged."""

    label: str
    score: float
    bbox_px: tuple[int, int, int, int]  # x, y, width, height
    tiles: tuple[tuple[int, int], ...]  # (col, row) of each tile


HealthState = Literal["ok", "degraded", "down"]


@dataclass(frozen=True, slots=True)
class FrameResult:
    """One inspected frame: a reference to its pixels (never copied), its defect regions
    and, where it has any, the defect event (schema ``inspector.defect/1``) as published."""

    frame: Frame
    regions: tuple[Region, ...]
    event: Mapping[str, Any] | None
    latency_ms: float  # capture to verdict
    tiles: int  # tiles inferred (those inside the product mask)
    event_id: str = ""  # the id its event has, or would have had (line/camera/run/frame)
    grid: TileGrid | None = None  # where each tile lies in the frame
    # Per tile of the grid, row-major: the defect label index (or NO_DEFECT), every class's
    # probability, and whether it was inferred (False: outside the product mask).
    tile_labels: npt.NDArray[np.intp] | None = None
    tile_probabilities: npt.NDArray[np.float32] | None = None
    tile_inferred: npt.NDArray[np.bool_] | None = None

    @property
    def verdict(self) -> Literal["ok", "nok"]:
        return "nok" if self.regions else "ok"


@dataclass(frozen=True, slots=True)
class SinkHealth:
    state: HealthState = "ok"
    detail: str = ""


@dataclass(frozen=True, slots=True)
class SinkMetric:
    """One figure a sink reports about itself, exported on ``/metrics`` with the line's label."""

    name: str  # inspector_<sink>_<what>; counters without the _total suffix
    doc: str
    kind: Literal["gauge", "counter"]
    value: float
    # Labels beside ``line``, e.g. (("camera", "cam0"), ("verdict", "ok")): figures of one
    # name with different label values are one metric family.
    labels: tuple[tuple[str, str], ...] = ()


# A verdict, schema ``inspector.verdict/1`` (DESIGN.md), as a JSON-ready mapping.
Verdict = Mapping[str, Any]
VerdictListener = Callable[[Verdict], None]
