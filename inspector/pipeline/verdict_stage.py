"""The verdict stage, ``[verdicts]``: one verdict for every part, by a deadline (DESIGN.md,
schema ``inspector.verdict/1``), decided here in the pipeline and handed to the sinks.

It hears of each frame as its queue takes it in or drops it (on the capture thread: a
deadline runs from the capture) and of each inference result, decides each part's verdict
with a :class:`~inspector.pipeline.verdicts.VerdictTracker`, and hands every verdict to
``emit`` (the fan-out, which gives it to every sink that carries verdicts). It counts parts
per camera and verdict, and defects per camera and class, for ``/metrics``.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from collections.abc import Callable, Sequence

from inspector.config import VerdictsSettings
from inspector.pipeline.verdicts import VerdictTracker
from inspector.types.frames import Frame
from inspector.types.results import FrameResult, SinkMetric, Verdict

VERDICTS = ("ok", "nok", "late")
_SWITCH_S = 0.001  # the GIL's switch interval while a deadline is kept


class VerdictStage:
    def __init__(
        self,
        settings: VerdictsSettings,
        line: str,
        cameras: Sequence[str],
        emit: Callable[[Verdict], None],
    ) -> None:
        if settings.deadline_ms is not None and sys.getswitchinterval() > _SWITCH_S:
            # A late verdict crosses two threads (the deadline timer, paho's) that each wait
            # for the GIL while the batcher and the results thread hold it: at Python's
            # default 5 ms a hand-off, the fail-safe itself would be late by that much.
            sys.setswitchinterval(_SWITCH_S)
        self._emit = emit
        self._lock = threading.Lock()
        # Every camera's rows from the start, at 0: a rate over a counter that appears only
        # with its first late part would miss that part.
        self._parts: Counter[tuple[str, str]] = Counter(
            {(camera, verdict): 0 for camera in cameras for verdict in VERDICTS}
        )
        self._defects: Counter[tuple[str, str]] = Counter()
        self.tracker = VerdictTracker(line, settings.deadline_ms, settings.on_late, self._decided)

    def captured(self, frame: Frame, event_id: str) -> None:
        """A queue took the frame in (capture thread, under the queue's lock: record only)."""
        self.tracker.captured(frame, event_id)

    def dropped(self, frame: Frame, event_id: str) -> None:
        self.tracker.dropped(frame)

    def result(self, result: FrameResult) -> None:
        if result.regions:
            camera = result.frame.camera_id
            with self._lock:
                self._defects.update((camera, region.label) for region in result.regions)
        self.tracker.result(result)

    def _decided(self, verdict: Verdict) -> None:
        with self._lock:
            self._parts[(str(verdict["camera"]), str(verdict["verdict"]))] += 1
        self._emit(verdict)

    def counts(self) -> dict[str, dict[str, int]]:
        """Per camera: verdicts sent of each kind (a late part counts once as late, and once
        more as ok or nok when its real verdict follows)."""
        with self._lock:
            report: dict[str, dict[str, int]] = {}
            for (camera, verdict), count in self._parts.items():
                report.setdefault(camera, {})[verdict] = count
            return report

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
        """Decide what is left (parts the run never decided) and stop the deadline timer."""
        self.tracker.close()
