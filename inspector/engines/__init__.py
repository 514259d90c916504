"""Inference engines: one backend per file behind :class:`Engine`, picked by ``model.backend``.

Each backend module holds its settings class and a ``PLUGIN`` (see
:mod:`inspector.engines.registry`); its runtime is imported only when it is
opened, so a CPU-only line PC never imports CUDA or TensorRT, and a missing
optional runtime is a clear configuration error rather than an ``ImportError``
at start-up.
"""

from __future__ import annotations

from inspector.engines.auto import AUTO, AutoSettings, open_fastest
from inspector.engines.base import Engine, EngineSettings
from inspector.engines.card import load_model
from inspector.engines.registry import PLUGINS, ModelSettings
from inspector.errors import ModelError
from inspector.types.card import ModelCard

__all__ = ["Engine", "EngineSettings", "ModelCard", "ModelSettings", "create_engine", "load_model"]


def create_engine(settings: EngineSettings, max_batch: int) -> Engine:
    """Validate the model and its card, then open it on the configured backend (``auto``:
    the fastest of the candidates, measured here)."""
    card = load_model(settings.path)
    if isinstance(settings, AutoSettings):
        return open_fastest(settings, card, max_batch, PLUGINS)
    plugin = PLUGINS.get(settings.backend)
    if plugin is None or not isinstance(settings, plugin.settings):
        problem = PLUGINS.problem(settings.backend, also=[AUTO])
        raise ModelError(f"model.backend: {problem}")
    return plugin.open(settings, card, max_batch)
