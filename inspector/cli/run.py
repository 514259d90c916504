"""``inspector run``: the daemon."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from types import FrameType

import structlog

from inspector.capture.opencv_source import create_source
from inspector.config import Settings, load_settings
from inspector.engines import create_engine
from inspector.errors import BrokerError
from inspector.logs import configure_logging
from inspector.pipeline.runner import Camera, Pipeline, RunSummary
from inspector.publishing import MqttPublisher

log = structlog.get_logger(__name__)

DEFAULT_CONFIG = Path("config.toml")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "run",
        help="run the inspection daemon",
        description=(
            "Capture frames from the configured cameras, classify their tiles and publish "
            "defect events to line/<line>/defects. A recording plays once and the run ends "
            "(exit 0) when the broker has acknowledged every event; live cameras run until "
            "SIGINT/SIGTERM."
        ),
        epilog=(
            "exit codes: 0 done, 66 a source cannot be opened, 69 broker unreachable or "
            "events unacknowledged, 78 bad configuration or model.\n"
            "example: inspector run --config config.toml"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help="TOML file (default: config.toml)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the run summary as one JSON object on stdout"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    configure_logging(settings.logging.level, settings.logging.format)
    summary = run_pipeline(settings)
    if args.json:
        print(json.dumps(summary_dict(summary)))
    else:
        print(
            f"inspected {summary.frames_inferred} frames ({summary.tiles_inferred} tiles) "
            f"in {summary.elapsed_s:.1f} s; {summary.events} defect events delivered; "
            f"{summary.frames_dropped} frames dropped",
            file=sys.stderr,
        )
    return 0


def run_pipeline(settings: Settings) -> RunSummary:
    """Load the model, open the cameras, connect, run to the end, wait for every ack."""
    engine = create_engine(settings.model, settings.batching.max_batch)
    cameras: list[Camera] = []
    try:
        for camera_settings in settings.cameras:
            source = create_source(camera_settings)
            source.open()
            cameras.append(Camera(camera_settings, source))
        publisher = MqttPublisher(settings.mqtt, settings.line.id)
        publisher.connect()
    except BaseException:
        for camera in cameras:
            camera.source.close()
        engine.close()
        raise
    pipeline = Pipeline(settings, cameras, engine, publisher)
    previous = _install_stop_handlers(pipeline)
    try:
        summary = pipeline.run()
        pending = publisher.wait_for_acks(settings.mqtt.ack_timeout_s)
        if pending:
            raise BrokerError(
                f"{pending} events not acknowledged by {settings.mqtt.host}:{settings.mqtt.port} "
                f"within {settings.mqtt.ack_timeout_s:g} s"
            )
        return summary
    finally:
        _restore_handlers(previous)
        publisher.publish_stats(pipeline.stats_snapshot())
        publisher.close()
        engine.close()
        log.info("run_finished", **summary_dict(pipeline.summary()))


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


_Handler = signal.Handlers | int | None | object


def _install_stop_handlers(pipeline: Pipeline) -> dict[int, _Handler]:
    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stop_requested", signal=signal.Signals(signum).name)
        pipeline.stop()

    previous: dict[int, _Handler] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, stop)
    return previous


def _restore_handlers(previous: dict[int, _Handler]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)  # type: ignore[arg-type]
