"""The Prometheus endpoint and the health check, read from the pipeline on each scrape.

Nothing on the hot path talks to prometheus-client: the pipeline keeps its own
counters and histograms (inspector.pipeline.stats) and this collector turns them
into metric families when Prometheus asks. ``/healthz`` answers 503 while no frame
has come out of inference for ``metrics.stall_after_s``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
from inspector.publishing.mqtt import MqttPublisher
from inspector.publishing.outbox import Outbox
from inspector.service.health import Health, line_health
from inspector.sinks.fanout import FanOut


def _histogram(name: str, doc: str, line: str, histogram: Histogram) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=["line"])
    buckets = [
        ("+Inf" if bound == float("inf") else f"{bound / 1e3:g}", count)
        for bound, count in histogram.cumulative()
    ]
    family.add_metric([line], buckets, sum_value=histogram.total / 1e3)
    return family


class PipelineCollector(Collector):
    def __init__(
        self, pipeline: Pipeline, publisher: MqttPublisher, outbox: Outbox | None, sinks: FanOut
    ):
        self.pipeline, self.publisher, self.outbox, self.sinks = pipeline, publisher, outbox, sinks
        self.line = pipeline.settings.line.id

    def collect(self) -> Iterator[Metric]:
        line, pipeline, stats = self.line, self.pipeline, self.pipeline.stats
        captured = CounterMetricFamily(
            "inspector_frames_captured", "Frames grabbed from the camera", labels=["line", "camera"]
        )
        dropped = CounterMetricFamily(
            "inspector_frames_dropped",
            "Frames dropped by a drop_oldest queue (inference behind)",
            labels=["line", "camera"],
        )
        errors = CounterMetricFamily(
            "inspector_camera_errors", "Camera read/reopen failures", labels=["line", "camera"]
        )
        reconnects = CounterMetricFamily(
            "inspector_camera_reconnects",
            "Cameras reopened after a loss",
            labels=["line", "camera"],
        )
        lost = CounterMetricFamily(
            "inspector_frames_lost",
            "Frames the camera lost (block-ID gaps, incomplete buffers)",
            labels=["line", "camera"],
        )
        corrupt = CounterMetricFamily(
            "inspector_frames_corrupt", "Unusable frames skipped", labels=["line", "camera"]
        )
        depth = GaugeMetricFamily(
            "inspector_queue_depth", "Frames waiting for batching", labels=["line", "camera"]
        )
        for camera, frames, capture in zip(
            pipeline.cameras, pipeline.queues, pipeline.capture_threads, strict=True
        ):
            labels = [line, camera.settings.id]
            captured.add_metric(labels, capture.captured)
            dropped.add_metric(labels, frames.dropped)
            errors.add_metric(labels, capture.errors)
            reconnects.add_metric(labels, capture.reconnects)
            corrupt.add_metric(labels, capture.corrupt)
            lost.add_metric(labels, camera.source.lost)
            depth.add_metric(labels, frames.depth)
        yield from (captured, dropped, lost, errors, reconnects, corrupt, depth)
        with stats.lock:
            totals: list[tuple[str, str, float]] = [
                ("inspector_frames_inferred", "Frames classified", stats.frames_inferred),
                ("inspector_tiles_inferred", "Tiles classified", stats.tiles_inferred),
                ("inspector_batches", "Engine calls", stats.batches),
                ("inspector_events_published", "Defect events handed to MQTT", stats.events),
            ]
            latency = _histogram(
                "inspector_latency_seconds",
                "Capture to verdict, per frame",
                line,
                stats.latency_histogram,
            )
            inference = _histogram(
                "inspector_inference_seconds",
                "Engine time per batch",
                line,
                stats.inference_histogram,
            )
            idle_s = (time.monotonic_ns() - stats.last_frame_ns) / 1e9
        for name, doc, value in totals:
            family = CounterMetricFamily(name, doc, labels=["line"])
            family.add_metric([line], value)
            yield family
        yield latency
        yield inference
        yield _gauge("inspector_engine_queue_depth", "Batches waiting for the engine", line,
                     pipeline.engine_queue_depth)  # fmt: skip
        yield _gauge("inspector_seconds_since_last_frame", "Time since a frame left inference",
                     line, idle_s)  # fmt: skip
        yield _gauge("inspector_broker_connected", "1 while connected to the MQTT broker", line,
                     int(self.publisher.connected))  # fmt: skip
        yield _gauge("inspector_events_unacknowledged", "Events the broker has not acked yet",
                     line, self.publisher.pending)  # fmt: skip
        if self.outbox is not None:
            yield _gauge("inspector_outbox_backlog", "Events on disk awaiting an ack", line,
                         len(self.outbox))  # fmt: skip
            dropped_full = CounterMetricFamily(
                "inspector_outbox_dropped", "Events given up because the outbox was full",
                labels=["line"],
            )  # fmt: skip
            dropped_full.add_metric([line], self.outbox.dropped)
            yield dropped_full
            write_errors = CounterMetricFamily(
                "inspector_outbox_write_errors",
                "Events that could not be written to the outbox (disk full, I/O error)",
                labels=["line"],
            )
            write_errors.add_metric([line], self.outbox.write_errors)
            yield write_errors
        sink_errors = CounterMetricFamily(
            "inspector_sink_errors", "Calls on which a sink raised", labels=["line", "sink"]
        )
        sink_dropped = CounterMetricFamily(
            "inspector_sink_dropped",
            "Results a slow sink lost (its queue was full)",
            labels=["line", "sink"],
        )
        for name, (errors_n, dropped_n) in self.sinks.counters().items():
            sink_errors.add_metric([line, name], errors_n)
            sink_dropped.add_metric([line, name], dropped_n)
        yield sink_errors
        yield sink_dropped


def _gauge(name: str, doc: str, line: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=["line"])
    family.add_metric([line], value)
    return family


class MetricsServer:
    """``/metrics`` (Prometheus text format) and ``/healthz`` on a small threaded HTTP server."""

    def __init__(
        self,
        settings: MetricsSettings,
        pipeline: Pipeline,
        publisher: MqttPublisher,
        outbox: Outbox | None,
        sinks: FanOut,
    ) -> None:
        assert settings.port is not None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(PipelineCollector(pipeline, publisher, outbox, sinks))
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
            self._server = ThreadingHTTPServer((settings.host, settings.port), Handler)
        except OSError as exc:
            raise ConfigError(
                f"metrics.port: cannot listen on {settings.host}:{settings.port}: {exc.strerror}"
            ) from None
        self._server.daemon_threads = True
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
