"""The one interface every inference backend implements, and what a backend plugin declares.

A backend is one small file (``onnxruntime_engine.py``, ``tensorrt_engine.py``)
holding a class that satisfies :class:`Engine`, its settings (an
:class:`EngineSettings` subclass whose ``backend`` is a ``Literal``) and a
module-level ``PLUGIN = EnginePlugin(...)``; ``registry.py`` finds it and
``create_engine`` opens it by the validated ``model.backend`` setting. The rest
of the pipeline only ever sees this protocol, so adding a runtime never touches
the batcher or the post-processing.

This module must not import :mod:`inspector.config`: the configuration is built
from the engines, not the other way round.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, field_validator

from inspector.errors import ModelError, first_line
from inspector.types.card import ModelCard

Batch = npt.NDArray[np.float32]
Scores = npt.NDArray[np.float32]


class Engine(Protocol):
    """Runs the model on a batch of normalised tiles.

    Threading and memory contract:

    - ``infer`` is called from one inference thread only (backends need no
      locks), and may release the GIL while the runtime works, so capture and
      pre-processing keep running meanwhile.
    - ``batch`` is a view of a preallocated buffer that the caller reuses for
      the next batch as soon as ``infer`` returns: a backend must not keep a
      reference to it (or to memory aliasing it) after returning.
    - The returned array is owned by the caller: a backend must not reuse it.
    """

    @property
    def card(self) -> ModelCard:
        """The validated card of the loaded model."""
        ...

    @property
    def max_batch(self) -> int:
        """The largest ``n`` that ``infer`` accepts."""
        ...

    def infer(self, batch: Batch) -> Scores:
        """Run ``batch`` (float32, C-contiguous, shape ``(n, C, H, W)``, 1 <= n <= max_batch).

        Returns the model's raw output, float32 of shape ``(n, len(card.labels))``:
        logits or probabilities as ``card.output.kind`` says.
        """
        ...

    def warmup(self) -> None:
        """Run full batches of zeros through every execution context once, so that memory
        planning, kernel selection and graph capture happen at start, not on the first part."""
        ...

    def close(self) -> None:
        """Release the runtime's sessions and device memory; idempotent."""
        ...


class EngineBase:
    """What every backend holds the same way: the card, the batch limit and the size check.

    Shared so that a batch of the wrong size is refused in the same words whichever
    backend the configuration picks.
    """

    def __init__(self, card: ModelCard, max_batch: int) -> None:
        self._card = card
        self._max_batch = max_batch

    @property
    def card(self) -> ModelCard:
        return self._card

    @property
    def max_batch(self) -> int:
        return self._max_batch

    def _check_output(self, model: Path) -> None:
        """One real inference of one tile at load: a class dimension the graph leaves dynamic
        is checked against the card's labels (``checked_scores``) at start, not on the first
        part at the line. Called last by a backend's ``__init__``."""
        spec = self._card.input
        zeros = np.zeros((1, spec.channels, spec.height, spec.width), np.float32)
        try:
            self.infer(zeros)  # type: ignore[attr-defined]  # every backend defines it
        except ModelError:
            raise
        except Exception as exc:  # the runtime's own error types (a reshape in the graph...)
            raise ModelError(f"{model}: one inference at load failed: {first_line(exc)}") from None

    def _check_size(self, n: int) -> None:
        if not 1 <= n <= self._max_batch:
            raise ValueError(f"batch of {n} tiles; this engine takes 1..{self._max_batch}")


@runtime_checkable
class AsyncEngine(Engine, Protocol):
    """An engine that keeps several batches in flight (the TensorRT backend: one CUDA
    stream per execution context), so copies and compute of different batches overlap.

    ``submit`` starts a batch and may return before it is done; the caller may reuse
    ``batch`` as soon as it returns. ``collect`` waits for the oldest batch still in
    flight and returns its scores; results come back in submission order.
    """

    @property
    def full(self) -> bool:
        """Whether every context is busy: collect before the next submit."""
        ...

    def submit(self, batch: Batch) -> Any: ...

    def collect(self, ticket: Any = None) -> Scores: ...


class EngineSettings(BaseModel):
    """The ``[model]`` table common to every backend; each backend subclasses it.

    A subclass narrows ``backend`` to ``Literal["<name>"] = "<name>"``: that tag
    picks it out of the ``ModelSettings`` union, and its own fields are the
    backend's options (an option of another backend is rejected by name).
    """

    # A typo in a key must fail loudly, not be silently ignored on a line PC.
    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: str
    path: Path = Path("engines/elpv-lite0.onnx")

    @field_validator("path")
    @classmethod
    def _onnx_suffix(cls, value: Path) -> Path:
        if value.suffix != ".onnx":
            raise ValueError(f"must name an .onnx file, got {str(value)!r}")
        return value


SettingsT = TypeVar("SettingsT", bound=EngineSettings)


@dataclass(frozen=True)
class EnginePlugin(Generic[SettingsT]):
    """What a backend module exports as ``PLUGIN``: its settings and how to open it.

    ``open(settings, card, max_batch)`` gets the validated settings and the
    model's checked card, and imports its runtime only then, so that the
    configuration (which imports every backend module) stays lean.
    """

    settings: type[SettingsT]
    open: Callable[[SettingsT, ModelCard, int], Engine]
    # For ``backend = "auto"``: the settings this backend would serve the model at ``path``
    # with on ``threads`` threads, or None where it cannot run here (a runtime missing).
    auto: Callable[[Path, int], SettingsT | None] | None = None

    @property
    def backend(self) -> str:
        """The ``model.backend`` value that picks this plugin (its settings' tag)."""
        tag = self.settings.model_fields["backend"].default
        if not isinstance(tag, str) or not tag:
            raise TypeError(
                f"{self.settings.__qualname__}.backend needs a default: "
                'backend: Literal["<name>"] = "<name>"'
            )
        return tag
