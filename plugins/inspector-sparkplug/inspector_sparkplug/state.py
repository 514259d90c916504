"""What the edge node keeps: each camera's metrics between two messages, and the ``bdSeq`` of
its last session between two runs (so a restart never reuses the number of a session whose
will the broker may still hold)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from inspector_sparkplug.payload import DataType, Metric, Value

log = structlog.get_logger(__name__)


def device_metrics(model_name: str) -> dict[str, tuple[DataType, Value | None]]:
    """Every metric of a camera and its value before anything is known (None: null)."""
    return {
        "Verdict/Last": (DataType.STRING, None),
        "Verdict/OkCount": (DataType.UINT64, 0),
        "Verdict/NokCount": (DataType.UINT64, 0),
        "Verdict/LateCount": (DataType.UINT64, 0),
        "Frame/LastId": (DataType.UINT64, None),
        "Latency/P99Ms": (DataType.DOUBLE, None),
        "Model/Name": (DataType.STRING, model_name),
    }


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Device:
    """One camera's metrics: their types, values, and which changed since its last message."""

    types: dict[str, DataType]
    values: dict[str, Value | None]
    changed: dict[str, int] = field(default_factory=dict)  # name -> when, in ms
    alive: bool = True

    @classmethod
    def new(cls, model_name: str) -> Device:
        metrics = device_metrics(model_name)
        return cls({n: t for n, (t, _) in metrics.items()}, {n: v for n, (_, v) in metrics.items()})

    def set(self, name: str, value: Value | None, at_ms: int) -> None:
        if self.values[name] != value:
            self.values[name] = value
            self.changed[name] = at_ms

    def metrics(self, names: Sequence[str], at_ms: int) -> list[Metric]:
        # A value's own time where it changed since the last message, else the message's.
        return [Metric(n, self.types[n], self.values[n], self.changed.get(n, at_ms)) for n in names]


def next_bdseq(path: Path | None) -> int:
    """One past the bdSeq of the last session this edge node opened (0 for the first)."""
    if path is None:
        return 0
    try:
        last = int(path.read_text().strip())
    except (OSError, ValueError):
        return 0
    return (last + 1) % 256 if 0 <= last <= 255 else 0


def keep_bdseq(path: Path | None, bdseq: int) -> None:
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        spare = path.with_name(path.name + ".tmp")
        spare.write_text(f"{bdseq}\n")
        os.replace(spare, path)
    except OSError as exc:  # the next start may reuse this bdSeq: worth a line, not a stop
        log.warning("sparkplug: cannot keep bdSeq", path=str(path), error=str(exc))
