"""The ``ui`` sink: the operator's live page (``[ui]``, extra ``[ui]``: Starlette, uvicorn).

Per camera the newest frame with each tile's verdict, the last defects with their evidence
crops, OK/NOK counts per class over the last hour, the frame rate, latency and drops, the
state of cameras, broker and outbox, and the model: pushed to the browser as it changes.
See :mod:`inspector.ui.app` for the routes.

Bound to 127.0.0.1 by default; any other address needs ``token`` (checked at load: exit 78).
This sink's thread only records references and counters; pictures are drawn when a page asks
for them, a few a second at most, on the server's threads: it never slows inference.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from pydantic import Field, model_validator

from inspector.errors import ConfigError
from inspector.sections import SinkSettings
from inspector.sinks.base import SinkContext
from inspector.sinks.registry import SinkPlugin
from inspector.types.results import FrameResult, SinkHealth, SinkMetric
from inspector.ui.state import CameraInfo, LiveState

if TYPE_CHECKING:
    from inspector.ui.server import UiServer


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


class UiSettings(SinkSettings):
    host: str = Field(default="127.0.0.1", description="any other address needs token")
    port: int = Field(default=8080, ge=0, le=65535, description="0: any free port")
    token: str | None = Field(
        default=None, min_length=8, description="required to listen beyond loopback"
    )
    evidence: Path | None = Field(
        default=None, description="the evidence store served at /evidence/ "
        "(default: the pictures the line keeps, [evidence]'s when that sink is on)",
    )  # fmt: skip
    frame_width: int = Field(default=640, ge=64, le=4096, description="the page's pictures")
    frame_fps: float = Field(default=2.0, gt=0, le=10, description="pictures per camera at most")
    jpeg_quality: int = Field(default=70, ge=10, le=100)
    events: int = Field(default=100, ge=1, le=10_000, description="defects kept for the page")
    max_pages: int = Field(default=16, ge=1, le=1000, description="live pages at once")
    max_connections: int = Field(
        default=64, ge=4, le=10_000, description="open at once; idle ones make room first"
    )
    max_pending_per_client: int = Field(
        default=8, ge=1, le=10_000, description="connections without a request, per address"
    )
    header_timeout_s: float = Field(
        default=5.0, gt=0, le=600, description="to send a whole request head after connecting"
    )
    idle_timeout_s: float = Field(default=10.0, gt=0, le=3600, description="kept alive")

    @model_validator(mode="after")
    def _token_beyond_loopback(self) -> Self:
        if self.enabled and not is_loopback(self.host) and not self.token:
            raise ValueError(
                f"host {self.host!r} is not loopback: set ui.token (or "
                "INSPECTOR__UI__TOKEN) so that only people given it can open the page"
            )
        return self

    @model_validator(mode="after")
    def _room_beside_the_live_pages(self) -> Self:
        if self.max_connections < self.max_pages + 4:
            raise ValueError(
                f"max_connections ({self.max_connections}) must be max_pages "
                f"({self.max_pages}) + 4 or more: live pages would take every connection"
            )
        return self


class UiSink:
    name = "ui"
    lossless = False  # the page shows the newest: a backlog is worth nothing

    def __init__(self, state: LiveState, server: UiServer) -> None:
        self.state, self.server = state, server

    @classmethod
    def open(cls, settings: UiSettings, context: SinkContext) -> UiSink:
        try:
            from inspector.ui.app import create_app
            from inspector.ui.server import UiServer
        except ImportError as exc:
            raise ConfigError(
                f"ui: the page needs the [ui] extra (pip install 'line-inspector[ui]'): {exc}"
            ) from None
        card = context.card
        test = (card.model_extra or {}).get("metrics", {}).get("test", {})
        model = {"name": card.name, "test_accuracy": test.get("accuracy"), "labels": card.labels}
        evidence_root = settings.evidence or context.pictures
        cameras = [CameraInfo(camera, camera in context.triggered) for camera in context.camera_ids]
        state = LiveState(
            context.line_id, cameras, model, card.labels,
            frame_width=settings.frame_width, frame_fps=settings.frame_fps,
            jpeg_quality=settings.jpeg_quality, events_kept=settings.events,
            evidence_url="/evidence/" if evidence_root is not None else None,
        )  # fmt: skip
        app = create_app(
            state, evidence_root, settings.token, settings.max_pages, 1.0 / settings.frame_fps
        )
        server = UiServer(
            app, settings.host, settings.port, settings.max_connections, settings.idle_timeout_s,
            header_timeout_s=settings.header_timeout_s,
            max_pending_per_client=settings.max_pending_per_client, refusals=state.refused,
        )  # fmt: skip
        server.start()
        # The broker's and the outbox's state, from the other sinks, once they are all open.
        state.watch_line(context.line.health, context.line.figures)
        return cls(state, server)

    def frame_result(self, result: FrameResult) -> None:
        self.state.add_result(result)

    def camera_status(self, camera: str, status: Mapping[str, Any]) -> None:
        self.state.camera_status(camera, status)

    def stats(self, stats: Mapping[str, Any]) -> None:
        self.state.stats(stats)

    def health(self) -> SinkHealth:
        if not self.server.running:
            return SinkHealth("down", f"the page's server on {self.server.url} has stopped")
        return SinkHealth()

    def metrics(self) -> Sequence[SinkMetric]:
        figures = self.server.figures()
        return [
            SinkMetric("inspector_ui_connections", "Open connections to the page's server",
                       "gauge", figures["connections"]),
            SinkMetric("inspector_ui_live_pages", "Pages receiving live updates",
                       "gauge", self.state.live_pages),
            SinkMetric("inspector_ui_frames_encoded", "Pictures drawn for the page",
                       "counter", self.state.frames_encoded),
            *(SinkMetric("inspector_ui_refused",
                         "Connections and requests the page's server turned away, by reason",
                         "counter", count, (("reason", reason),))
              for reason, count in self.state.refused.counts().items()),
        ]  # fmt: skip

    def close(self) -> None:
        self.state.closing.set()  # live streams end within a push interval, then the server
        deadline = time.monotonic() + 1.0
        while self.state.live_pages and time.monotonic() < deadline:
            time.sleep(0.02)
        self.server.close()


PLUGIN = SinkPlugin("ui", UiSettings, UiSink.open)
