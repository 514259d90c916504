"""The ONNX Runtime backend: CPU inference, and the reference for every other backend.

``onnxruntime`` is imported when an engine is opened, not when the configuration
(which imports every backend's settings) is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from inspector.engines.base import Batch, Engine, EngineBase, EnginePlugin, EngineSettings, Scores
from inspector.engines.card import checked_scores
from inspector.errors import ModelError, first_line
from inspector.types.card import ModelCard

# ORT logs warnings (e.g. unused initializers) straight to stderr, outside our
# structured logs; only real errors are worth a line in the journal.
_ORT_LOG_ERROR = 3


class OnnxRuntimeSettings(EngineSettings):
    """``[model]`` with ``backend = "onnxruntime"`` (the default when ``backend`` is absent)."""

    backend: Literal["onnxruntime"] = "onnxruntime"
    threads: int = Field(default=0, ge=0, le=256, description="intra-op threads; 0 = all cores")


class OnnxRuntimeEngine(EngineBase):
    """One ``InferenceSession`` on the ``CPUExecutionProvider``."""

    def __init__(self, onnx_path: Path, card: ModelCard, threads: int, max_batch: int) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        import onnxruntime as ort

        options = ort.SessionOptions()
        # 0 lets ORT use one thread per physical core.
        options.intra_op_num_threads = threads
        # One batch runs at a time from one thread; the parallelism is inside ops.
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = _ORT_LOG_ERROR
        try:
            session = ort.InferenceSession(
                str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises its own pybind types (Fail, InvalidGraph, ...)
            raise ModelError(
                f"{onnx_path}: ONNX Runtime cannot load the model: {first_line(exc)}"
            ) from None
        super().__init__(card, max_batch)
        self._session: Any | None = session
        self._input = card.input.name
        self._output = card.output.name
        self._path = onnx_path
        self._check_output(onnx_path)

    def infer(self, batch: Batch) -> Scores:
        if self._session is None:
            raise RuntimeError("infer() after close()")
        n = batch.shape[0]
        self._check_size(n)
        # run() releases the GIL and returns fresh arrays, so nothing we return
        # aliases the caller's reusable input buffer.
        (scores,) = self._session.run([self._output], {self._input: batch})
        return checked_scores(scores, n, self._card, self._path)

    def warmup(self) -> None:
        # The first run plans the arena and picks kernels: about 100 ms more on the demo model.
        spec = self._card.input
        self.infer(np.zeros((self._max_batch, spec.channels, spec.height, spec.width), np.float32))

    def close(self) -> None:
        # Dropping the last reference frees the session's arenas.
        self._session = None


def _open(settings: OnnxRuntimeSettings, card: ModelCard, max_batch: int) -> Engine:
    return OnnxRuntimeEngine(settings.path, card, settings.threads, max_batch)


def _auto(path: Path, threads: int) -> OnnxRuntimeSettings:
    return OnnxRuntimeSettings(path=path, threads=threads)  # installed with the daemon


PLUGIN = EnginePlugin(OnnxRuntimeSettings, _open, auto=_auto)
