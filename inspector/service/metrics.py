"""The Prometheus endpoint and the health check, read from the pipeline on each scrape.

Nothing on the hot path talks to prometheus-client: the pipeline keeps its own
counters and histograms (inspector.pipeline.stats) and this collector turns them
into metric families when Prometheus asks. ``/healthz`` answers 503 while no frame
has come out of inference for ``metrics.stall_after_s``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from inspector.config import MetricsSettings
from inspector.errors import ConfigError
from inspector.pipeline.runner import Pipeline
from inspector.pipeline.stats import Histogram
from inspector.service.bounded_http import BoundedHTTPServer
from inspector.service.health import Health, line_health
from inspector.sinks.fanout import FanOut
from inspector.types.results import SinkMetric

Rows = Sequence[tuple[Sequence[str], float]]


def _family(kind: str, name: str, doc: str, labels: Sequence[str], rows: Rows) -> Metric:
    family = (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(
        name, doc, labels=list(labels)
    )
    for values, value in rows:
        family.add_metric(list(values), value)
    return family


def _histogram(name: str, doc: str, line: str, histogram: Histogram) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=["line"])
    buckets = [
        ("+Inf" if bound == float("inf") else f"{bound / 1e3:g}", count)
        for bound, count in histogram.cumulative()
    ]
    family.add_metric([line], buckets, sum_value=histogram.total / 1e3)
    return family


def _sink_families(line: str, reports: Iterable[Sequence[SinkMetric]]) -> Iterator[Metric]:
    """The sinks' own figures: those of one name (one per label value, e.g. per camera and
    verdict) make one family, labelled ``line`` and the figure's own labels."""
    families: dict[str, tuple[SinkMetric, list[tuple[Sequence[str], float]]]] = {}
    for figure in (figure for report in reports for figure in report):
        rows = families.setdefault(figure.name, (figure, []))[1]
        rows.append(([line, *(value for _, value in figure.labels)], figure.value))
    for first, rows in families.values():
        labels = ["line", *(name for name, _ in first.labels)]
        yield _family(first.kind, first.name, first.doc, labels, rows)


# Per camera: (kind, name, doc, the figure of (camera, its queue, its capture thread)).
_CAMERA_FIGURES: tuple[tuple[str, str, str, Callable[[Any, Any, Any], float]], ...] = (
    ("counter", "inspector_frames_captured", "Frames grabbed from the camera",
     lambda camera, frames, capture: capture.captured),
    ("counter", "inspector_frames_dropped",
     "Frames dropped by a drop_oldest queue (inference behind)",
     lambda camera, frames, capture: frames.dropped),
    ("counter", "inspector_frames_lost",
     "Frames the camera lost (block-ID gaps, incomplete buffers)",
     lambda camera, frames, capture: camera.source.lost),
    ("counter", "inspector_camera_errors", "Camera read/reopen failures",
     lambda camera, frames, capture: capture.errors),
    ("counter", "inspector_camera_reconnects", "Cameras reopened after a loss",
     lambda camera, frames, capture: capture.reconnects),
    ("counter", "inspector_frames_corrupt", "Unusable frames skipped",
     lambda camera, frames, capture: capture.corrupt),
    ("gauge", "inspector_queue_depth", "Frames waiting for batching",
     lambda camera, frames, capture: frames.depth),
)  # fmt: skip


class PipelineCollector(Collector):
    def __init__(self, pipeline: Pipeline, sinks: FanOut):
        self.pipeline, self.sinks = pipeline, sinks
        self.line = pipeline.settings.line.id

    def collect(self) -> Iterator[Metric]:
        line, pipeline, stats = self.line, self.pipeline, self.pipeline.stats
        cameras = list(
            zip(pipeline.cameras, pipeline.queues, pipeline.capture_threads, strict=True)
        )
        for kind, name, doc, figure in _CAMERA_FIGURES:
            rows = [([line, c[0].settings.id], figure(*c)) for c in cameras]
            yield _family(kind, name, doc, ["line", "camera"], rows)
        with stats.lock:
            figures: list[tuple[str, str, str, float]] = [
                ("counter", "inspector_frames_inferred", "Frames classified",
                 stats.frames_inferred),
                ("counter", "inspector_tiles_inferred", "Tiles classified", stats.tiles_inferred),
                ("counter", "inspector_batches", "Engine calls", stats.batches),
                ("counter", "inspector_events_published", "Defect events handed to the sinks",
                 stats.events),
                ("gauge", "inspector_engine_queue_depth", "Batches waiting for the engine",
                 pipeline.engine_queue_depth),
                ("gauge", "inspector_seconds_since_last_frame",
                 "Time since a frame left inference",
                 (time.monotonic_ns() - stats.last_frame_ns) / 1e9),
            ]  # fmt: skip
            histograms = [
                _histogram("inspector_latency_seconds", "Capture to verdict, per frame", line,
                           stats.latency_histogram),
                _histogram("inspector_inference_seconds", "Engine time per batch", line,
                           stats.inference_histogram),
            ]  # fmt: skip
        yield from histograms
        for kind, name, doc, value in figures:
            yield _family(kind, name, doc, ["line"], [([line], value)])
        reports = list(self.sinks.metrics().values())
        if self.pipeline.verdicts is not None:  # parts per verdict, defects per class
            reports.append(self.pipeline.verdicts.metrics())
        yield from _sink_families(line, reports)
        counters = self.sinks.counters().items()
        errors = [([line, name], float(errors)) for name, (errors, _) in counters]
        dropped = [([line, name], float(dropped)) for name, (_, dropped) in counters]
        yield _family("counter", "inspector_sink_errors", "Calls on which a sink raised",
                      ["line", "sink"], errors)  # fmt: skip
        yield _family("counter", "inspector_sink_dropped",
                      "Results a slow sink lost (its queue was full)", ["line", "sink"],
                      dropped)  # fmt: skip


class MetricsServer:
    """``/metrics`` (Prometheus text format) and ``/healthz`` on a small bounded HTTP server."""

    def __init__(
        self,
        settings: MetricsSettings,
        pipeline: Pipeline,
        sinks: FanOut,
    ) -> None:
        assert settings.port is not None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(PipelineCollector(pipeline, sinks))
        registry = self.registry

        def health() -> Health:
            return line_health(pipeline.stats, settings.stall_after_s, sinks.health())

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/metrics":
                    self._reply(200, generate_latest(registry), "text/plain; version=0.0.4")
                elif self.path == "/healthz":
                    # 503 only where a restart helps; a degraded daemon is still inspecting.
                    state = health()
                    code = 503 if state.state == "stalled" else 200
                    self._reply(code, f"{state.text()}\n".encode(), "text/plain")
                else:
                    self._reply(404, b"try /metrics or /healthz\n", "text/plain")

            def _reply(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # scrapes every 15 s would flood the journal

        try:
            # A fixed few threads, bounded connections, idle ones closed (bounded_http.py).
            self._server = BoundedHTTPServer((settings.host, settings.port), Handler)
        except OSError as exc:
            raise ConfigError(
                f"metrics.port: cannot listen on {settings.host}:{settings.port}: {exc.strerror}"
            ) from None
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
