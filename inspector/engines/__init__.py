"""Inference engines: one backend per file behind :class:`Engine`, picked by ``model.backend``.

Backends are imported only when chosen, so a CPU-only line PC never imports
CUDA or TensorRT, and a missing optional runtime is a clear configuration error
rather than an ``ImportError`` at start-up.
"""

from __future__ import annotations

from inspector.config import BackendName, ModelSettings
from inspector.engines.base import Engine
from inspector.engines.card import ModelCard, load_model
from inspector.errors import ModelError

__all__ = ["Engine", "ModelCard", "create_engine", "load_model"]


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
    # Imported only when chosen: the backend imports tensorrt and cuda-python (the
    # [tensorrt] extra) in its constructor and names what is missing as a ModelError.
    from inspector.engines.tensorrt_engine import TensorRtEngine

    return TensorRtEngine(settings.path, card, max_batch=max_batch)
