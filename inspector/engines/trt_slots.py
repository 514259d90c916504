"""Pieces of the TensorRT backend that need no CUDA call: per-context state and plan checks.

Kept apart from ``tensorrt_engine.py`` so that file holds the engine's life
cycle (open, submit, collect, close) and nothing else. Nothing here imports
TensorRT: the modules' objects are passed in.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from inspector.errors import ModelError
from inspector.types.card import ModelCard


@dataclass
class Slot:
    """One execution context and everything it owns."""

    index: int
    context: Any
    stream: Any
    event: Any
    host_in: npt.NDArray[np.float32]  # flat views of pinned memory
    host_out: npt.NDArray[np.float32]
    host_in_ptr: int
    host_out_ptr: int
    dev_in: int
    dev_out: int
    shape_n: int = 0  # the batch size the context's input shape is set to
    n: int = 0  # the batch size in flight
    graphs: dict[int, Any] = field(default_factory=dict)  # batch size -> cudaGraphExec_t
    no_graph: set[int] = field(default_factory=set)  # sizes whose capture failed


def pinned_view(ptr: int, count: int) -> npt.NDArray[np.float32]:
    """A float32 array over ``count`` floats of (pinned) host memory at ``ptr``."""
    pointer = ctypes.cast(ctypes.c_void_p(ptr), ctypes.POINTER(ctypes.c_float))
    view: npt.NDArray[np.float32] = np.ctypeslib.as_array(pointer, shape=(count,))
    return view


def check_plan_io(
    trt: Any,
    engine: Any,
    card: ModelCard,
    plan: Path,
    *,
    contexts: int,
    max_batch: int,
    tile: tuple[int, int, int],
) -> None:
    """The plan must bind just the card's float32 input and output (a sidecar can lie)."""
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    outputs = [n for n in names if n not in inputs]
    problems = []
    if inputs != [card.input.name] or outputs != [card.output.name]:
        problems.append(
            f"it has inputs {inputs} and outputs {outputs}, the card names "
            f"{card.input.name!r} and {card.output.name!r}"
        )
    else:
        for name in names:
            if engine.get_tensor_dtype(name) != trt.float32:
                problems.append(f"tensor {name!r} is {engine.get_tensor_dtype(name)}, not float32")
        if engine.num_optimization_profiles < contexts:
            problems.append(f"it has {engine.num_optimization_profiles} optimisation profile(s)")
        for profile in range(min(engine.num_optimization_profiles, contexts)):
            # trt.Dims iterates but does not slice.
            low, _, high = (
                tuple(d) for d in engine.get_tensor_profile_shape(card.input.name, profile)
            )
            if low[0] > 1 or high[0] < max_batch or high[1:] != tile:
                problems.append(f"profile {profile} is {low}..{high}")
    if problems:
        raise ModelError(f"{plan}: does not match the model card: {'; '.join(problems)}")
