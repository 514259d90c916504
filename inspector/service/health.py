"""The daemon's health in one word and the reasons behind it, for /healthz and the logs.

``stalled``: no frame has left inference for ``metrics.stall_after_s`` (restart helps).
``degraded``: inspection goes on but a sink says its results are at risk (the broker is
not connected, the outbox could not store events on a full disk...). ``ok`` otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from inspector.pipeline.stats import PipelineStats
from inspector.types.results import SinkHealth

State = Literal["ok", "degraded", "stalled"]


@dataclass(frozen=True, slots=True)
class Health:
    state: State
    reasons: tuple[str, ...] = ()

    def text(self) -> str:
        return self.state if not self.reasons else f"{self.state}: {'; '.join(self.reasons)}"


def line_health(
    stats: PipelineStats, stall_after_s: float, sinks: Mapping[str, SinkHealth]
) -> Health:
    """From the pipeline's last frame and what each sink says of itself."""
    idle_s = (time.monotonic_ns() - stats.last_frame_ns) / 1e9
    if idle_s > stall_after_s:
        return Health("stalled", (f"no frame inferred for {idle_s:.0f} s",))
    reasons = tuple(
        f"{name}: {health.state}" if not health.detail else
        (health.detail if name == "mqtt" else f"{name}: {health.detail}")
        for name, health in sinks.items()
        if health.state != "ok"
    )  # fmt: skip
    return Health("degraded" if reasons else "ok", reasons)
