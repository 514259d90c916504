"""The daemon assembled: cameras, engine and sinks around one :class:`Pipeline`.

``inspector run`` and ``inspector replay`` both go through :func:`run_pipeline`, so an
acceptance replay exercises exactly the code that runs at the line.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

import cv2
import structlog

from inspector.capture.sources.registry import PLUGINS as SOURCE_PLUGINS
from inspector.capture.sources.registry import create_source
from inspector.config import Settings
from inspector.engines.registry import PLUGINS as ENGINE_PLUGINS
from inspector.engines.registry import create_engine
from inspector.errors import InspectorError, SourceError
from inspector.logs import interactive_terminal
from inspector.pipeline.runner import Camera, Pipeline, RunSummary
from inspector.preprocess.corrector import camera_corrections
from inspector.publishing.acks import AckListener
from inspector.publishing.outbox import Outbox
from inspector.service.metrics import MetricsServer
from inspector.service.stop_signals import StopSignals
from inspector.service.systemd import PipelineWatchdog, SystemdNotifier, watchdog_interval_s
from inspector.sinks import FanOut, Sink
from inspector.sinks.base import LineView, SinkContext
from inspector.sinks.registry import open_sinks, sink_plugins
from inspector.tiling import TileMask
from inspector.tiling.fit import check_tiles_fit
from inspector.types.card import ModelCard
from inspector.types.results import SinkHealth

log = structlog.get_logger(__name__)


def run_pipeline(
    settings: Settings,
    run_id: str | None = None,
    on_ack: AckListener | None = None,
    extra_sinks: Sequence[Sink] = (),
    on_finished: Callable[[RunSummary, InspectorError | None], None] | None = None,
) -> RunSummary:
    """Load the model, open the cameras and the sinks, run to the end, close the sinks.

    SIGINT/SIGTERM stop capturing; what was already captured is still inferred and
    handed to the sinks. Raises what a sink reports on closing: :class:`BrokerError`
    when events stay unacknowledged, :class:`StorageError` when the outbox could not
    keep them. ``on_ack`` hears every acknowledged event (a replay times them);
    ``on_finished`` hears the summary of a run that started, with the error it ends with,
    so a failed run still reports what it inspected.
    """
    _warn_of_broken_plugins()
    # OpenCV's pool and the engine's would fight over the same cores (measured: the
    # corrections cost 7 % of throughput with OpenCV's default pool on 2 cores, 2 % with 1).
    cv2.setNumThreads(settings.cpu.opencv_threads or -1)
    engine = create_engine(settings.model, settings.batching.max_batch)
    cameras: list[Camera] = []
    opened: list[Sink] = []
    try:
        for camera_settings in settings.cameras:
            corrector, mm_per_px = camera_corrections(camera_settings)
            source = create_source(camera_settings)
            try:
                source.open()
            except SourceError as exc:
                if not source.live:
                    raise  # a missing or unreadable recording is an operator's mistake
                # A live camera that is down at start is retried by its capture thread,
                # while the other cameras inspect.
                log.warning("camera_down_at_start", camera=camera_settings.id, error=str(exc))
            mask = (
                TileMask.from_file(camera_settings.roi_mask) if camera_settings.roi_mask else None
            )
            cameras.append(Camera(camera_settings, source, corrector, mm_per_px, mask))
        check_tiles_fit(settings.tiling, cameras)  # before the broker: a config mistake, exit 78
        line = LineView()
        opened = open_sinks(settings.sink_sections(), sink_contexts(settings, engine.card, line))
        sinks = FanOut([*opened, *extra_sinks])
        line.bind(sinks.health, sinks.metrics)
        if on_ack is not None:
            sinks.add_ack_listener(on_ack)
        # After everything that checks configuration, before READY: the first part at the
        # line must not pay for it, and a mistake in the config must not wait for it.
        started = time.perf_counter()
        engine.warmup()
        log.info("engine_ready", warmup_ms=round((time.perf_counter() - started) * 1e3, 1))
    except BaseException:
        for camera in cameras:
            camera.source.close()
        engine.close()
        for sink in opened:
            sink.close()
        raise
    pipeline = Pipeline(settings, cameras, engine, sinks, run_id=run_id)
    notifier = SystemdNotifier()
    keepalive_s = watchdog_interval_s()
    status_window = pipeline.stats.rate_window()
    watchdog = PipelineWatchdog(
        notifier,
        keepalive_s or settings.mqtt.stats_interval_s,
        lambda: pipeline.stats.frames_inferred,
        lambda: status_line(pipeline.stats_snapshot(status_window), sinks.health()),
        keepalive=keepalive_s is not None,
        # A person at a terminal sees the line too; under systemd it is STATUS= only.
        echo=_print_status if interactive_terminal() else None,
    )
    metrics: MetricsServer | None = None
    failure: InspectorError | None = None
    try:
        if settings.metrics.port is not None:
            metrics = MetricsServer(settings.metrics, pipeline, sinks)
            metrics.start()

        def stop() -> None:
            notifier.stopping()
            pipeline.stop()

        # Over the sinks' close too: a signal while it waits for the broker must not be
        # Python's default (a traceback for SIGINT, an abrupt end for SIGTERM).
        with StopSignals(on_stop=stop, on_hurry=sinks.stop_waiting).installed():
            notifier.ready(
                f"inspecting {len(cameras)} camera(s) with {engine.card.name} "
                f"on {settings.model.backend}"
            )
            watchdog.start()
            try:
                summary = pipeline.run()
            except InspectorError as exc:
                failure = exc  # what was inspected before the failure is still delivered
            sinks.stats(pipeline.stats_snapshot())  # the final figures
            sinks.close()  # every result handed to every sink; what one could not deliver raises
        if failure is not None:
            raise failure
        return summary
    except InspectorError as exc:
        failure = exc
        raise
    finally:
        watchdog.stop()
        if metrics is not None:
            metrics.close()
        notifier.stopping("stopped")
        try:
            sinks.close(timeout=1.0)  # a no-op after a normal end; after a failure, a flush
        finally:
            engine.close()
            final = pipeline.summary()
            log.info("run_finished", **summary_dict(final))
            if on_finished is not None:
                on_finished(final, failure)


def _warn_of_broken_plugins() -> None:
    """Installed plugins that could not be loaded, and which this line does not use (it
    would have stopped at its configuration): one line each, so they are not a surprise."""
    for plugins in (SOURCE_PLUGINS, ENGINE_PLUGINS, sink_plugins()):
        for broken in plugins.broken.values():
            log.warning("plugin_not_loaded", kind=plugins.kind.noun, name=broken.name,
                        reason=str(broken))  # fmt: skip


def sink_contexts(
    settings: Settings, card: ModelCard, line: LineView
) -> Callable[[str], SinkContext]:
    """Each sink's context: the line's facts, and its own outbox file (the MQTT sink keeps
    ``outbox.path``, the file it always had; another sink gets ``<sink>-outbox.sqlite``)."""
    kept = settings.outbox
    state = settings.state
    sections = settings.sink_sections().values()
    base = SinkContext(
        line_id=settings.line.id,
        camera_ids=tuple(camera.id for camera in settings.cameras),
        card=card,
        state=state,
        broker=settings.mqtt,
        triggered=frozenset(camera.id for camera in settings.cameras if camera.triggered()),
        verdicts=settings.verdicts.enabled,
        pictures=next((p for s in sections if (p := s.pictures()) is not None), None),
        line=line,
    )

    def outbox_of(name: str) -> Outbox:
        path = kept.path if name == "mqtt" and kept.path else state.place(f"{name}-outbox.sqlite")
        return Outbox(path, kept.max_events, kept.when_full, kept.reserve_mb)

    def context(name: str) -> SinkContext:
        open_outbox = partial(outbox_of, name) if kept.enabled else None
        return replace(base, open_outbox=open_outbox)

    return context


def summary_dict(summary: RunSummary) -> dict[str, object]:
    return {
        "run_id": summary.run_id,
        "frames_captured": summary.frames_captured,
        "frames_dropped": summary.frames_dropped,
        "frames_inferred": summary.frames_inferred,
        "tiles_inferred": summary.tiles_inferred,
        "events": summary.events,
        "elapsed_s": summary.elapsed_s,
        "latency_ms": summary.stats["latency_ms"],
    }


def status_line(stats: Mapping[str, Any], health: Mapping[str, SinkHealth] | None = None) -> str:
    """The one line ``systemctl status`` shows, and a terminal every stats interval."""
    latency = stats["latency_ms"]
    line = (
        f"{stats['fps']:.1f} frames/s, {stats['tiles_per_s']:.0f} tiles/s, "
        f"latency p50 {latency['p50']:.0f} / p99 {latency['p99']:.0f} ms, "
        f"{stats['events']} events, {stats['dropped_frames']} dropped"
    )
    for name, state in (health or {}).items():
        line += f"; {name} {state.state}" + (f" ({state.detail})" if state.detail else "")
    return line


def _print_status(line: str) -> None:
    print(f"inspector: {line}", file=sys.stderr, flush=True)
