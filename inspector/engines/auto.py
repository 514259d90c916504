"""``model.backend = "auto"``: the fastest backend installed here, measured at start.

Not a backend of its own but a choice among them: every backend plugin whose ``auto`` hook
gives settings for this model on this machine is a candidate (ONNX Runtime always,
OpenVINO where it is installed, an installed backend that declares the hook). Each runs a
few full batches after its warm-up, the fastest stays, and the choice is logged with every
figure: the same model can favour either runtime, depending on the CPU (AMX and AVX-512
favour OpenVINO, and measured here on an AVX2 EPYC they were within 15 %).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Literal

import numpy as np
import structlog
from pydantic import Field

from inspector.engines.base import AsyncEngine, Batch, Engine, EnginePlugin, EngineSettings
from inspector.errors import ModelError
from inspector.types.card import ModelCard

log = structlog.get_logger(__name__)

_TIMED_BATCHES = 3
AUTO = "auto"


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


def open_fastest(
    settings: AutoSettings,
    card: ModelCard,
    max_batch: int,
    plugins: Mapping[str, EnginePlugin[Any]],
) -> Engine:
    """Open every candidate among ``plugins``, time a full batch on each, keep the fastest."""
    candidates: dict[str, Callable[[], Engine]] = {}
    for name, plugin in plugins.items():
        chosen = plugin.auto(settings.path, settings.threads) if plugin.auto else None
        if chosen is not None:
            candidates[name] = partial(plugin.open, chosen, card, max_batch)
    if not candidates:
        raise ModelError(f"model.backend = 'auto': no backend here can run {settings.path}")
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
    why = "the only runtime installed" if len(figures) == 1 else "the fastest here"
    log.info("engine_chosen", backend=best[1], why=why, full_batch_ms=figures)
    return best[2]
