"""The daemon's health in one word and the reasons behind it, for /healthz and the logs.

``stalled``: no frame has left inference for ``metrics.stall_after_s`` (restart helps).
``degraded``: inspection goes on but results are at risk: the broker is not connected,
or the outbox could not store events (a full or failing disk). ``ok`` otherwise.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from inspector.pipeline.stats import PipelineStats
from inspector.publishing.mqtt import MqttPublisher
from inspector.publishing.outbox import Outbox

State = Literal["ok", "degraded", "stalled"]


@dataclass(frozen=True, slots=True)
class Health:
    state: State
    reasons: tuple[str, ...] = ()

    def text(self) -> str:
        return self.state if not self.reasons else f"{self.state}: {'; '.join(self.reasons)}"


def line_health(
    stats: PipelineStats, stall_after_s: float, publisher: MqttPublisher, outbox: Outbox | None
) -> Health:
    idle_s = (time.monotonic_ns() - stats.last_frame_ns) / 1e9
    if idle_s > stall_after_s:
        return Health("stalled", (f"no frame inferred for {idle_s:.0f} s",))
    reasons: list[str] = []
    if not publisher.connected:
        why = publisher.down_reason
        reasons.append(f"broker: down ({why})" if why else "broker: down")
    if outbox is not None:
        if outbox.write_errors:
            reasons.append(f"outbox: {outbox.write_errors} events could not be written")
        if outbox.undeletable:
            reasons.append(f"outbox: {outbox.undeletable} acknowledged rows could not be deleted")
    return Health("degraded" if reasons else "ok", tuple(reasons))
