"""A sink plugin from one file outside the package: it records what it is given."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, ClassVar

from inspector.sections import SinkSettings
from inspector.sinks.base import SinkContext
from inspector.sinks.registry import SinkPlugin
from inspector.types.results import FrameResult, SinkHealth


class RecordingSettings(SinkSettings):
    label: str = "recorded"


class RecordingSink:
    name = "recording"
    lossless = True
    opened: ClassVar[list[RecordingSink]] = []  # every instance, so a test can find the daemon's

    def __init__(self, settings: RecordingSettings, line: str) -> None:
        self.settings, self.line = settings, line
        self.results: list[FrameResult] = []
        self.statuses: list[tuple[str, str]] = []
        self.stats_seen = 0
        self.closed = threading.Event()
        RecordingSink.opened.append(self)

    def frame_result(self, result: FrameResult) -> None:
        self.results.append(result)

    def camera_status(self, camera: str, status: Mapping[str, Any]) -> None:
        self.statuses.append((camera, str(status["state"])))

    def stats(self, stats: Mapping[str, Any]) -> None:
        self.stats_seen += 1

    def health(self) -> SinkHealth:
        return SinkHealth()

    def close(self) -> None:
        self.closed.set()


def _create(settings: RecordingSettings, context: SinkContext) -> RecordingSink:
    return RecordingSink(settings, context.line_id)


PLUGIN = SinkPlugin("recording", RecordingSettings, _create)
