"""``model.backend = "auto"``: the fastest CPU runtime installed here, measured at start.

ONNX Runtime is always a candidate; OpenVINO is one where it is installed. Each runs a
few full batches after its warm-up, the faster one stays, and the choice is logged with
both figures: the same model can favour either runtime, depending on the CPU (AMX and
AVX-512 favour OpenVINO, and measured here on an AVX2 EPYC they were within 15 %).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

import numpy as np
import structlog
from pydantic import Field

from inspector.engines.base import AsyncEngine, Batch, Engine, EnginePlugin, EngineSettings
from inspector.engines.onnxruntime_engine import OnnxRuntimeEngine
from inspector.engines.openvino_engine import (
    OpenVinoEngine,
    OpenVinoSettings,
    Precision,
    openvino_available,
)
from inspector.engines.plan import has_qdq
from inspector.types.card import ModelCard

log = structlog.get_logger(__name__)

_TIMED_BATCHES = 3


class AutoSettings(EngineSettings):
    """``[model]`` with ``backend = "auto"``."""

    backend: Literal["auto"] = "auto"
    threads: int = Field(default=0, ge=0, le=256, description="engine threads; 0 = all cores")


def median_infer_ms(engine: Engine, batch: Batch, repeats: int) -> float:
    """The median time of ``repeats`` runs of ``batch``, after the engine's own warm-up."""
    engine.warmup()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        engine.infer(batch)
        times.append((time.perf_counter() - started) * 1e3)
    return float(np.median(times))


def steady_batch_ms(engine: Engine, batch: Batch, repeats: int) -> float:
    """The time per batch with the engine kept busy, as the pipeline keeps it.

    An :class:`AsyncEngine` (OpenVINO's streams, TensorRT's contexts) gets as many batches
    in flight as it takes: timed one at a time, two streams on two cores would show half
    their throughput. Another engine is timed one batch at a time (the median).
    """
    if not isinstance(engine, AsyncEngine):
        return median_infer_ms(engine, batch, repeats)
    engine.warmup()
    submitted = collected = 0
    started = time.perf_counter()
    while collected < repeats:
        while submitted < repeats and not engine.full:
            engine.submit(batch)
            submitted += 1
        engine.collect()
        collected += 1
    return (time.perf_counter() - started) * 1e3 / repeats


def full_batch_ms(engine: Engine) -> float:
    spec = engine.card.input
    batch = np.zeros((engine.max_batch, spec.channels, spec.height, spec.width), np.float32)
    return steady_batch_ms(engine, batch, _TIMED_BATCHES * 2)


def _open(settings: AutoSettings, card: ModelCard, max_batch: int) -> Engine:
    candidates: dict[str, Callable[[], Engine]] = {
        "onnxruntime": lambda: OnnxRuntimeEngine(settings.path, card, settings.threads, max_batch)
    }
    if openvino_available():
        precision: Precision = "int8" if has_qdq(settings.path) else "f32"
        openvino = OpenVinoSettings(path=settings.path, threads=settings.threads,
                                    precision=precision)  # fmt: skip
        candidates["openvino"] = lambda: OpenVinoEngine(openvino, card, max_batch)
    best: tuple[float, str, Engine] | None = None
    figures: dict[str, float] = {}
    for name, open_engine in candidates.items():
        engine = open_engine()
        figures[name] = round(full_batch_ms(engine), 1)
        if best is None or figures[name] < best[0]:
            if best is not None:
                best[2].close()
            best = (figures[name], name, engine)
        else:
            engine.close()
    assert best is not None
    why = "the only runtime installed" if len(figures) == 1 else "the faster here"
    log.info("engine_chosen", backend=best[1], why=why, full_batch_ms=figures)
    return best[2]


PLUGIN = EnginePlugin(AutoSettings, _open)
