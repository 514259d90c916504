"""The verdicts sink, ``[verdicts]``: one verdict for every part, by a deadline (DESIGN.md,
schema ``inspector.verdict/1``).

It hears of each frame as its queue takes it in or drops it (:class:`CaptureWatchingSink`)
and of each inference result, decides each part's verdict with a
:class:`~inspector.pipeline.verdicts.VerdictTracker`, and hands every verdict to the fan-out,
which passes it to the sinks that carry verdicts: MQTT (``line/<line>/verdicts/<camera>``,
QoS 1, through the durable outbox) and OPC UA. It counts parts per camera and verdict, and
defects per camera and class, for ``/metrics``.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from inspector.pipeline.verdicts import VerdictTracker
from inspector.sections import SinkSettings
from inspector.sinks.registry import SinkPlugin
from inspector.types.frames import Frame
from inspector.types.results import FrameResult, SinkHealth, SinkMetric, Verdict, VerdictListener

if TYPE_CHECKING:
    from inspector.config import Settings

VERDICTS = ("ok", "nok", "late")
_SWITCH_S = 0.001  # the GIL's switch interval while a deadline is kept


class VerdictsSettings(SinkSettings):
    """``[verdicts]``: the per-part verdict stream for PLCs, and its deadline."""

    deadline_ms: float | None = Field(
        default=None,
        gt=0,
        le=600_000,
        description="a part without a verdict this long after its capture gets a 'late' "
        "verdict at that moment, and its real verdict follows with late = true; unset: no "
        "deadline",
    )
    on_late: Literal["reject", "pass"] = Field(
        default="reject", description="the fail-safe a late verdict asks for (its 'action')"
    )


class VerdictsSink:
    name = "verdicts"
    lossless = True  # every part must get its verdict: never dropped for speed

    def __init__(self, settings: VerdictsSettings, line: str, cameras: list[str]) -> None:
        self.settings = settings
        self._listeners: list[VerdictListener] = []
        self._lock = threading.Lock()
        # Every camera's rows from the start, at 0: a rate over a counter that appears only
        # with its first late part would miss that part.
        self._parts: Counter[tuple[str, str]] = Counter(
            {(camera, verdict): 0 for camera in cameras for verdict in VERDICTS}
        )
        self._defects: Counter[tuple[str, str]] = Counter()
        self.tracker = VerdictTracker(line, settings.deadline_ms, settings.on_late, self._decided)

    @classmethod
    def open(cls, settings: VerdictsSettings, config: Settings) -> VerdictsSink:
        if settings.deadline_ms is not None and sys.getswitchinterval() > _SWITCH_S:
            # A late verdict crosses two threads (the deadline timer, paho's) that each wait
            # for the GIL while the batcher and the results thread hold it: at Python's
            # default 5 ms a hand-off, the fail-safe itself would be late by that much.
            sys.setswitchinterval(_SWITCH_S)
        return cls(settings, config.line.id, [camera.id for camera in config.cameras])

    def listen_for_verdicts(self, listener: VerdictListener) -> None:
        self._listeners.append(listener)

    def frame_captured(self, frame: Frame, event_id: str) -> None:
        self.tracker.captured(frame, event_id)

    def frame_dropped(self, frame: Frame, event_id: str) -> None:
        self.tracker.dropped(frame)

    def frame_result(self, result: FrameResult) -> None:
        if result.regions:
            camera = result.frame.camera_id
            with self._lock:
                self._defects.update((camera, region.label) for region in result.regions)
        self.tracker.result(result)

    def _decided(self, verdict: Verdict) -> None:
        with self._lock:
            self._parts[(str(verdict["camera"]), str(verdict["verdict"]))] += 1
        for listener in self._listeners:
            listener(verdict)

    def counts(self) -> dict[str, dict[str, int]]:
        """Per camera: verdicts sent of each kind (a late part counts once as late, and once
        more as ok or nok when its real verdict follows)."""
        with self._lock:
            report: dict[str, dict[str, int]] = {}
            for (camera, verdict), count in self._parts.items():
                report.setdefault(camera, {})[verdict] = count
            return report

    def camera_status(self, camera: str, status: Mapping[str, Any]) -> None:
        pass

    def stats(self, stats: Mapping[str, Any]) -> None:
        pass

    def health(self) -> SinkHealth:
        return SinkHealth()

    def metrics(self) -> list[SinkMetric]:
        with self._lock:
            parts, defects = sorted(self._parts.items()), sorted(self._defects.items())
        figures = [
            SinkMetric("inspector_parts", "Verdicts sent, per camera and verdict (ok, nok, "
                       "late; a late part's real verdict counts too)", "counter", count,
                       (("camera", camera), ("verdict", verdict)))
            for (camera, verdict), count in parts
        ]  # fmt: skip
        figures += [
            SinkMetric("inspector_defects", "Defect regions found, per camera and class",
                       "counter", count, (("camera", camera), ("class", label)))
            for (camera, label), count in defects
        ]  # fmt: skip
        figures.append(
            SinkMetric("inspector_verdicts_pending", "Parts captured whose verdict is not out yet",
                       "gauge", self.tracker.pending)
        )  # fmt: skip
        return figures

    def close(self) -> None:
        self.tracker.close()


PLUGIN = SinkPlugin("verdicts", VerdictsSettings, VerdictsSink.open)
