"""Replay a recording through the daemon and score what the broker delivered.

The run itself is :func:`inspector.daemon.run_pipeline`, the code ``inspector run``
uses. Around it: a subscriber on the line's own defects topic (so the report
counts events that reached the broker, not events the daemon meant to send) and
an ack listener timing each event from capture to the broker's PUBACK.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from inspector.acceptance.html import render_html
from inspector.acceptance.report import ReplayRun, build_report
from inspector.acceptance.scoring import reported_defects
from inspector.acceptance.thumbnails import save_thumbnails
from inspector.acceptance.truth import load_truth, truth_path
from inspector.capture.sources.base import QueuePolicyName
from inspector.capture.sources.file import FileSettings
from inspector.config import AcceptanceSettings, Settings
from inspector.daemon import run_pipeline
from inspector.engines.card import load_model
from inspector.errors import SourceError
from inspector.pipeline.events import event_id, new_run_id
from inspector.publishing.subscription import Subscription
from inspector.publishing.topics import defects_topic

log = structlog.get_logger(__name__)

_DELIVERY_GRACE_S = 5.0  # after the last PUBACK, how long the subscriber may take to catch up


@dataclass(frozen=True, slots=True)
class ReplayResult:
    report: dict[str, Any]
    json_path: Path | None
    html_path: Path | None


class AckClock:
    """Wall-clock time of each event's PUBACK, keyed by event_id (called on paho's thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.acked_at_ns: dict[str, int] = {}

    def __call__(self, event_id: str, acked_monotonic_ns: int) -> None:
        wall_ns = time.time_ns() - (time.monotonic_ns() - acked_monotonic_ns)
        with self._lock:
            self.acked_at_ns[event_id] = wall_ns

    def latency_ms(self, event_id: str, captured_at: str) -> float | None:
        with self._lock:
            acked = self.acked_at_ns.get(event_id)
        if acked is None:
            return None
        captured = datetime.fromisoformat(captured_at.replace("Z", "+00:00"))
        return (acked / 1e3 - captured.timestamp() * 1e6) / 1e3


def replay_settings(settings: Settings, video: Path, realtime: bool) -> Settings:
    """The first camera, whatever its kind, as a recording of ``video`` with the same id,
    calibration and belt: and only that camera.

    ``--realtime`` plays the file at its frame rate and drops the oldest frame when
    inference falls behind, as a live camera would; otherwise the replay is lossless.
    The file plays once (a config's ``loop`` would never let the replay end).
    """
    camera = FileSettings.model_validate(
        {
            **settings.cameras[0].common(),
            "source": str(video),
            "realtime": realtime,
            "policy": QueuePolicyName.DROP_OLDEST if realtime else QueuePolicyName.BLOCK,
        }
    )
    return settings.model_copy(update={"cameras": [camera]})


def _delivered(subscription: Subscription, prefix: str, events: dict[str, Any]) -> None:
    """Move what the subscriber received for this run into ``events`` (by event_id)."""
    while not subscription.messages.empty():
        message = subscription.messages.get_nowait()
        try:
            event = json.loads(message.payload)
            eid = event["event_id"]
        except (ValueError, TypeError, KeyError):
            continue  # another publisher's payload on the topic is not this run's business
        if isinstance(eid, str) and eid.startswith(prefix):
            events.setdefault(eid, event)


def replay(
    settings: Settings,
    video: Path,
    truth_file: Path | None = None,
    realtime: bool = False,
    report_dir: Path | None = None,
    limits: AcceptanceSettings | None = None,
) -> ReplayResult:
    if not video.is_file():
        raise SourceError(f"{video}: no such video file")
    if truth_file is None and truth_path(video).is_file():
        truth_file = truth_path(video)
    truth = load_truth(truth_file) if truth_file is not None else None
    limits = limits or settings.acceptance
    settings = replay_settings(settings, video.resolve(), realtime)
    card = load_model(settings.model.path)  # fail on a bad model before touching the broker
    camera = settings.cameras[0].id
    run_id = new_run_id()
    prefix = event_id(settings.line.id, camera, run_id, 0).removesuffix("0")  # "line/cam/run/"

    subscription = Subscription(
        settings.mqtt,
        defects_topic(settings.line.id),
        client_prefix="inspector-replay",
        on_notice=lambda message: log.warning("replay_subscriber", notice=message),
    )
    subscription.start()
    acks = AckClock()
    events: dict[str, Any] = {}
    try:
        summary = run_pipeline(settings, run_id=run_id, on_ack=acks)
        deadline = time.monotonic() + _DELIVERY_GRACE_S
        while time.monotonic() < deadline:
            _delivered(subscription, prefix, events)
            if len(events) >= summary.events:
                break
            time.sleep(0.05)
    finally:
        subscription.stop()

    latencies = [
        latency
        for eid, event in events.items()
        if (latency := acks.latency_ms(eid, str(event.get("captured_at", "")))) is not None
    ]
    run = ReplayRun(
        video=str(video),
        truth=str(truth_file) if truth_file is not None else None,
        line=settings.line.id,
        camera=camera,
        run_id=run_id,
        model={"name": card.name, "sha256": card.sha256},
        realtime=realtime,
        frames=summary.frames_captured,
        frames_inferred=summary.frames_inferred,
        tiles=summary.tiles_inferred,
        elapsed_s=summary.elapsed_s,
        dropped_frames=summary.frames_dropped,
        events_published=summary.events,
        events_delivered=len(events),
        ack_latency_ms=latencies,
        frame_latency_ms=summary.stats["latency_ms"],
    )
    reported = reported_defects(events.values())
    report = build_report(run, truth, reported, limits)
    json_path = html_path = None
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        if truth is not None:  # without truth nothing is missed or false, so nothing to show
            report["thumbnails"] = save_thumbnails(
                video, report_dir, truth, reported, report["missed_frames"], report["false_frames"]
            )
        json_path, html_path = report_dir / "report.json", report_dir / "report.html"
        json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        html_path.write_text(render_html(report), encoding="utf-8")
    return ReplayResult(report, json_path, html_path)
