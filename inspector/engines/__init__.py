"""Inference engines: one backend per file behind :class:`Engine`, picked by ``model.backend``.

Each backend module holds its settings class and a ``PLUGIN`` (see
:mod:`inspector.engines.registry`, which also opens the configured one:
``create_engine``); its runtime is imported only when it is opened, so a CPU-only line
PC never imports CUDA or TensorRT, and a missing optional runtime is a clear
configuration error rather than an ``ImportError`` at start-up. This package imports
no backend and not the registry: an installed backend may import ``inspector.engines.base``
while the registry is still finding it.
"""

from __future__ import annotations

from inspector.engines.base import Engine, EngineSettings

__all__ = ["Engine", "EngineSettings"]
