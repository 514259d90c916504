"""Counters and latency samples of a run, and the periodic ``stats`` snapshot."""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

_SAMPLES = 4096  # recent latencies kept for percentiles; bounded for a months-long run


def percentiles(samples_ms: list[float] | deque[float]) -> dict[str, float]:
    if not samples_ms:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    values = np.asarray(samples_ms, dtype=np.float64)
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {
        "p50": round(float(p50), 3),
        "p95": round(float(p95), 3),
        "p99": round(float(p99), 3),
        "max": round(float(values.max()), 3),
    }


# Milliseconds; Prometheus-style cumulative buckets, from a fast CPU tile to a stalled second.
LATENCY_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


class Histogram:
    """Counts per bucket and a sum, for the metrics endpoint (no dependency down here)."""

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS_MS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations <= bound)``, ending with ``(inf, count)``."""
        running, out = 0, []
        for bound, count in zip((*self.bounds, math.inf), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


class PipelineStats:
    """Written by the pipeline's threads, read by the stats reporter. Lock-protected."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started_ns = time.monotonic_ns()
        self.frames_inferred = 0
        self.tiles_inferred = 0
        self.batches = 0
        self.events = 0
        self.latency_ms: deque[float] = deque(maxlen=_SAMPLES)
        self.inference_ms: deque[float] = deque(maxlen=_SAMPLES)
        self.latency_histogram = Histogram()
        self.inference_histogram = Histogram()
        self.last_frame_ns = self.started_ns  # when a frame last came out of inference

    def record_batch(self, tiles: int, inference_ms: float) -> None:
        with self.lock:
            self.batches += 1
            self.tiles_inferred += tiles
            self.inference_ms.append(inference_ms)
            self.inference_histogram.observe(inference_ms)

    def record_frame(self, latency_ms: float, event: bool) -> None:
        with self.lock:
            self.frames_inferred += 1
            self.events += int(event)
            self.latency_ms.append(latency_ms)
            self.latency_histogram.observe(latency_ms)
            self.last_frame_ns = time.monotonic_ns()

    def elapsed_s(self) -> float:
        return (time.monotonic_ns() - self.started_ns) / 1e9

    def rate_window(self) -> RateWindow:
        """A window of one's own for :meth:`snapshot`'s rates: readers (the MQTT stats, the
        systemd status line) each get rates over their own interval, not the gap since
        whichever of them looked last."""
        return RateWindow(self.started_ns)

    def snapshot(self, window: RateWindow | None = None) -> dict[str, Any]:
        """Totals, plus rates since ``window``'s previous snapshot (since start without one)."""
        with self.lock:
            now = time.monotonic_ns()
            since = window if window is not None else RateWindow(self.started_ns)
            span_s = max((now - since.at_ns) / 1e9, 1e-9)
            snapshot = {
                "uptime_s": round((now - self.started_ns) / 1e9, 3),
                "fps": round((self.frames_inferred - since.frames) / span_s, 2),
                "tiles_per_s": round((self.tiles_inferred - since.tiles) / span_s, 1),
                "frames_inferred": self.frames_inferred,
                "tiles_inferred": self.tiles_inferred,
                "batches": self.batches,
                "events": self.events,
                "latency_ms": percentiles(self.latency_ms),
                "inference_ms": percentiles(self.inference_ms),
            }
            since.at_ns, since.frames, since.tiles = now, self.frames_inferred, self.tiles_inferred
            return snapshot


@dataclass(slots=True)
class RateWindow:
    """Where one reader's previous snapshot left off."""

    at_ns: int
    frames: int = 0
    tiles: int = 0
