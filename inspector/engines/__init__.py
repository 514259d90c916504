"""Inference engines: one backend per file behind :class:`Engine`, picked by ``model.backend``.

Backends are imported only when chosen, so a CPU-only line PC never imports
CUDA or TensorRT, and a missing optional runtime is a clear configuration error
rather than an ``ImportError`` at start-up.
"""

from __future__ import annotations

import importlib

from inspector.config import BackendName, ModelSettings
from inspector.engines.base import Engine
from inspector.engines.card import ModelCard, load_model
from inspector.errors import ModelError

__all__ = ["Engine", "ModelCard", "create_engine", "load_model"]

_TENSORRT_MISSING = (
    "model.backend = 'tensorrt': the TensorRT backend is not available in this build "
    "(needs the [tensorrt] extra and an NVIDIA GPU); use backend = 'onnxruntime'"
)


def create_engine(settings: ModelSettings, max_batch: int) -> Engine:
    """Validate the model and its card, then open it on the configured backend."""
    card = load_model(settings.path)
    if settings.backend is BackendName.ONNXRUNTIME:
        from inspector.engines.onnxruntime_engine import OnnxRuntimeEngine

        return OnnxRuntimeEngine(settings.path, card, settings.threads, max_batch)
    if settings.backend is BackendName.TENSORRT:
        return _tensorrt(settings, card, max_batch)
    raise ModelError(f"model.backend = {settings.backend.value!r}: unknown backend")


def _tensorrt(settings: ModelSettings, card: ModelCard, max_batch: int) -> Engine:
    # Imported by name: the module (and the tensorrt/cuda packages it needs)
    # is optional, and may be absent from this build altogether.
    try:
        module = importlib.import_module("inspector.engines.tensorrt_engine")
    except ImportError as exc:
        raise ModelError(_TENSORRT_MISSING) from exc
    engine: Engine = module.TensorRtEngine(settings.path, card, max_batch=max_batch)
    return engine
