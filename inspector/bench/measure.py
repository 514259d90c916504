"""Throughput measurements, each on the same model, tiles, batch size and threads.

- engine: the backend alone, full batches from a preallocated buffer, back to back;
- pipeline: the daemon (decode, tiling, batching, inference, post-processing, MQTT
  publish to a real broker) replaying a recording, timed from start to its last verdict
  (every event must then be acknowledged, or the run fails);
- naive: one tile at a time, resize, normalise, run: how the papers' code would run.

Ratios only mean something between figures taken in one run on one machine, and even
then a shared machine drifts by several per cent within a minute: :func:`interleaved`
measures every configuration once per round, round after round, and the report takes
each one's median run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pydantic import ValidationError

from inspector.config import QueuePolicyName, Settings
from inspector.daemon import run_pipeline
from inspector.engines.auto import median_infer_ms
from inspector.engines.base import AsyncEngine
from inspector.engines.normalize import TileNormalizer
from inspector.engines.registry import PLUGINS, create_engine, parse_model_settings
from inspector.errors import ConfigError, SourceError
from inspector.pipeline.stats import percentiles
from inspector.sinks.evidence import EvidenceSettings
from inspector.tiling import Tiler
from inspector.types.frames import Image

_WARMUP_RUNS = 3


@dataclass(frozen=True, slots=True)
class Throughput:
    tiles_per_s: float
    tiles: int
    seconds: float
    latency_ms: dict[str, float]  # per engine call (engine, naive) or per frame (pipeline)

    def as_dict(self) -> dict[str, Any]:
        return {
            "tiles_per_s": round(self.tiles_per_s, 1),
            "tiles": self.tiles,
            "seconds": round(self.seconds, 3),
            "latency_ms": self.latency_ms,
        }


def interleaved(
    measurements: Mapping[str, Callable[[], Throughput]],
    rounds: int,
    on_start: Callable[[str], None] = lambda _: None,
) -> dict[str, list[Throughput]]:
    """Each measurement once per round, in order, ``rounds`` times: drift hits all alike."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    runs: dict[str, list[Throughput]] = {name: [] for name in measurements}
    for round_index in range(rounds):
        for name, measure in measurements.items():
            on_start(f"round {round_index + 1}/{rounds}: {name}")
            runs[name].append(measure())
    return runs


def median_run(runs: list[Throughput]) -> Throughput:
    """The run with the median throughput (the lower one of the middle two for an even count),
    so its latencies are those of a real run, not a blend."""
    middle = statistics.median_low(run.tiles_per_s for run in runs)
    return next(run for run in runs if run.tiles_per_s == middle)


def sample_tiles(settings: Settings, limit: int = 256) -> Image:
    """Real tiles, cut by the daemon's tiler from the first camera's recording."""
    source = settings.cameras[0].source
    capture = cv2.VideoCapture(source)
    tiler = Tiler(settings.tiling.size, settings.tiling.stride, settings.tiling.roi)
    tiles: list[Image] = []
    try:
        while len(tiles) < limit:
            ok, frame = capture.read()
            if not ok:
                break
            tiles.extend(tiler.views(frame))
    finally:
        capture.release()
    if not tiles:
        raise SourceError(f"{source}: no frames to take benchmark tiles from")
    return np.stack(tiles[:limit])


def _timed_loop(step: Callable[[], int], seconds: float) -> tuple[int, float, list[float]]:
    for _ in range(_WARMUP_RUNS):
        step()
    done, calls_ms = 0, []
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        before = time.perf_counter()
        done += step()
        calls_ms.append((time.perf_counter() - before) * 1e3)
    return done, elapsed, calls_ms


def engine_throughput(settings: Settings, tiles: Image, seconds: float) -> Throughput:
    batch_size = settings.batching.max_batch
    engine = create_engine(settings.model, batch_size)
    try:
        normalizer = TileNormalizer(engine.card.input)
        picked = np.resize(tiles, (batch_size, *tiles.shape[1:]))  # repeat to a full batch
        batch = normalizer.normalize(picked, np.empty((batch_size, *normalizer.shape), np.float32))

        if isinstance(engine, AsyncEngine):
            in_flight = 0

            def step() -> int:
                # Kept as busy as the pipeline keeps it: every stream/context has a batch.
                nonlocal in_flight
                while not engine.full:
                    engine.submit(batch)
                    in_flight += 1
                engine.collect()
                in_flight -= 1
                return batch_size

        else:

            def step() -> int:
                engine.infer(batch)
                return batch_size

        done, elapsed, calls = _timed_loop(step, seconds)
        if isinstance(engine, AsyncEngine):
            for _ in range(in_flight):
                engine.collect()
    finally:
        engine.close()
    return Throughput(done / elapsed, done, elapsed, percentiles(calls))


def naive_throughput(settings: Settings, tiles: Image, seconds: float) -> Throughput:
    """A tile at a time through the same runtime: resize, normalise in float64, run, repeat."""
    engine = create_engine(settings.model, 1)
    try:
        spec = engine.card.input
        mean, std = np.asarray(spec.mean), np.asarray(spec.std)
        index = 0

        def step() -> int:
            nonlocal index
            tile = tiles[index % len(tiles)]
            index += 1
            rgb = cv2.cvtColor(cv2.resize(tile, (spec.width, spec.height)), cv2.COLOR_BGR2RGB)
            x = ((rgb / spec.scale - mean) / std).transpose(2, 0, 1)[None]
            engine.infer(np.ascontiguousarray(x, dtype=np.float32))
            return 1

        done, elapsed, calls = _timed_loop(step, seconds)
    finally:
        engine.close()
    return Throughput(done / elapsed, done, elapsed, percentiles(calls))


def pipeline_throughput(settings: Settings) -> Throughput:
    summary = run_pipeline(settings)
    seconds = max(summary.elapsed_s, 1e-9)
    return Throughput(
        summary.tiles_inferred / seconds,
        summary.tiles_inferred,
        seconds,
        dict(summary.stats["latency_ms"]),
    )


def with_model(settings: Settings, model: Path) -> Settings:
    return settings.model_copy(
        update={"model": settings.model.model_copy(update={"path": model.resolve()})}
    )


def has_corrections(settings: Settings) -> bool:
    return any(c.calibration or c.flat_field for c in settings.cameras)


def without_corrections(settings: Settings) -> Settings:
    cameras = [
        camera.model_copy(update={"calibration": None, "flat_field": None})
        for camera in settings.cameras
    ]
    return settings.model_copy(update={"cameras": cameras})


def with_evidence(settings: Settings, root: Path) -> Settings:
    """The same settings with the evidence sink on, writing under ``root``."""
    # A plugin section, added to the settings by the sink registry: not a declared field.
    section = getattr(settings, "evidence", None) or EvidenceSettings()
    on = section.model_copy(update={"enabled": True, "path": root})
    return settings.model_copy(update={"evidence": on})


def with_backend(
    settings: Settings, backend: str, model: Path | None = None, precision: str | None = None
) -> Settings:
    """The same line on another backend (its threads kept where it has them), model or
    precision; raises ConfigError for a backend or precision that does not exist."""
    plugin = PLUGINS.get(backend)
    if plugin is None:
        known = ", ".join(PLUGINS)
        raise ConfigError(f"--backends: unknown backend {backend!r}; known backends: {known}")
    fields: dict[str, Any] = {"backend": backend, "path": model or settings.model.path}
    threads = getattr(settings.model, "threads", None)
    if threads is not None and "threads" in plugin.settings.model_fields:
        fields["threads"] = threads
    if precision is not None:
        fields["precision"] = precision
    try:
        return settings.model_copy(update={"model": parse_model_settings(fields)})
    except ValidationError as exc:
        raise ConfigError(f"--backends {backend}: {exc.errors()[0]['msg']}") from None


def tiles_per_frame(settings: Settings) -> int:
    """How many tiles one frame of the first camera's recording is cut into."""
    capture = cv2.VideoCapture(settings.cameras[0].source)
    try:
        ok, frame = capture.read()
    finally:
        capture.release()
    if not ok:
        raise SourceError(f"{settings.cameras[0].source}: no frame to measure")
    tiler = Tiler(settings.tiling.size, settings.tiling.stride, settings.tiling.roi)
    return tiler.grid(*frame.shape[:2]).count


def frame_inference_ms(
    settings: Settings, tiles: Image, per_frame: int, repeats: int = 15
) -> float:
    """The bare engine's median time for one frame's tiles, in one batch."""
    engine = create_engine(settings.model, max(per_frame, 1))
    try:
        normalizer = TileNormalizer(engine.card.input)
        picked = np.resize(tiles, (per_frame, *tiles.shape[1:]))
        batch = normalizer.normalize(picked, np.empty((per_frame, *normalizer.shape), np.float32))
        return median_infer_ms(engine, batch, repeats)
    finally:
        engine.close()


def paced(settings: Settings, fps: float) -> Settings:
    """The first camera's recording played at ``fps``, dropping the oldest frame when
    behind, as a live camera would: the latency a line at that rate sees."""
    camera = settings.cameras[0].model_copy(
        update={"realtime": True, "fps": fps, "policy": QueuePolicyName.DROP_OLDEST}
    )
    return settings.model_copy(update={"cameras": [camera, *settings.cameras[1:]]})
