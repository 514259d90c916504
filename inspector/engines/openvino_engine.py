"""The OpenVINO backend: Intel CPUs (bf16 and INT8 where the CPU has them), integrated GPUs
and NPUs, with several infer requests in flight (extra ``[openvino]``).

``openvino`` is imported when an engine is opened. The model is the same ONNX file and
card as for ONNX Runtime (same checks); ``precision = "int8"`` runs the Q/DQ model that
``inspector calibrate int8`` writes, ``bf16`` asks the CPU plugin for bf16 inference,
which needs a CPU that computes in bf16 (AVX-512 BF16 or AMX): elsewhere it is refused
at start rather than silently emulated.
"""

from __future__ import annotations

import re
from collections import deque
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from inspector.engines.base import Batch, Engine, EngineBase, EnginePlugin, EngineSettings, Scores
from inspector.engines.card import checked_scores
from inspector.engines.plan import has_qdq
from inspector.errors import ConfigError, ModelError, first_line
from inspector.types.card import ModelCard

Precision = Literal["f32", "bf16", "int8"]
_DEVICE = re.compile(r"(CPU|GPU(\.\d+)?|NPU|AUTO(:[A-Z0-9.,]+)?|HETERO:[A-Z0-9.,]+)")
_HINTS = {"throughput": "THROUGHPUT", "latency": "LATENCY"}


class OpenVinoSettings(EngineSettings):
    """``[model]`` with ``backend = "openvino"``."""

    backend: Literal["openvino"] = "openvino"
    device: str = Field(default="CPU", description="CPU, GPU, GPU.1, NPU, AUTO or AUTO:GPU,CPU")
    precision: Precision = Field(
        default="f32", description="f32; bf16 (CPUs with bf16 units); int8 (a Q/DQ model)"
    )
    threads: int = Field(default=0, ge=0, le=256, description="inference threads; 0 = all cores")
    streams: int = Field(
        default=0, ge=0, le=64, description="parallel streams on the device; 0 = the hint's"
    )
    hint: Literal["throughput", "latency"] = Field(
        default="throughput", description="OpenVINO's performance hint"
    )
    requests: int = Field(default=2, ge=1, le=16, description="batches in flight (infer requests)")

    @field_validator("device")
    @classmethod
    def _a_device(cls, value: str) -> str:
        if not _DEVICE.fullmatch(value):
            raise ValueError(
                f"unknown device {value!r}; OpenVINO devices: CPU, GPU, GPU.N, NPU, AUTO, "
                "AUTO:<devices>, HETERO:<devices>"
            )
        return value


class OpenVinoEngine(EngineBase):
    """One compiled model and ``requests`` infer requests used round robin (an
    :class:`~inspector.engines.base.AsyncEngine`): while one batch computes, the next is
    copied in."""

    def __init__(self, settings: OpenVinoSettings, card: ModelCard, max_batch: int) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        try:
            import openvino as ov
        except ImportError:
            raise ConfigError(
                "model.backend = 'openvino' needs the [openvino] extra: "
                "pip install 'line-inspector[openvino]'"
            ) from None
        super().__init__(card, max_batch)
        core = ov.Core()
        _check_device(core, settings)
        if settings.precision == "int8" and not has_qdq(settings.path):
            raise ConfigError(
                f"model.precision = 'int8': {settings.path} has no Q/DQ nodes; make one with "
                "`inspector calibrate int8`"
            )
        config: dict[str, Any] = {"PERFORMANCE_HINT": _HINTS[settings.hint]}
        if settings.device.startswith("CPU"):
            # int8 runs the Q/DQ model's own precision; f32 must not be lowered to bf16 behind
            # our back (OpenVINO does that by default on CPUs with AMX).
            precision = "bf16" if settings.precision == "bf16" else "f32"
            config["INFERENCE_PRECISION_HINT"] = precision
            if settings.threads:
                config["INFERENCE_NUM_THREADS"] = settings.threads
        if settings.streams:
            config["NUM_STREAMS"] = settings.streams
        try:
            model = core.read_model(str(settings.path))
            self._compiled = core.compile_model(model, settings.device, config)
        except RuntimeError as exc:
            first = first_line(exc)
            raise ModelError(
                f"{settings.path}: OpenVINO cannot compile the model: {first}"
            ) from None
        self.settings = settings
        self._requests = [self._compiled.create_infer_request() for _ in range(settings.requests)]
        # Each request owns an input buffer that it reads until collected: one copy per batch.
        spec = card.input
        shape = (max_batch, spec.channels, spec.height, spec.width)
        self._inputs = [np.zeros(shape, np.float32) for _ in self._requests]
        self.shapes = batch_shapes(max_batch)
        self._busy: deque[tuple[Any, int]] = deque()  # (request, batch size), oldest first
        self._next = 0
        self._closed = False
        self._check_output(settings.path)

    @property
    def full(self) -> bool:
        return len(self._busy) == len(self._requests)

    def submit(self, batch: Batch) -> None:
        if self._closed:
            raise RuntimeError("submit() after close()")
        n = batch.shape[0]
        self._check_size(n)
        if self.full:
            raise RuntimeError("every infer request is busy: collect() first")
        index, self._next = self._next, (self._next + 1) % len(self._requests)
        request, buffer = self._requests[index], self._inputs[index]
        # A batch runs at the next of a few fixed sizes (padded with the zeros already there
        # or left from an earlier batch: padding rows are never read back), so OpenVINO
        # meets no new input shape after warmup.
        size = next(shape for shape in self.shapes if shape >= n)
        buffer[:n] = batch
        request.start_async({0: buffer[:size]}, share_inputs=True)
        self._busy.append((request, n))

    def collect(self, ticket: Any = None) -> Scores:
        request, n = self._busy.popleft()
        request.wait()
        scores = request.get_output_tensor(0).data[:n]
        # A copy (np.array): the request's output memory is reused by its next batch.
        return checked_scores(np.array(scores), n, self._card, self.settings.path)

    def infer(self, batch: Batch) -> Scores:
        while self._busy:  # results come back in order: finish what is in flight first
            self.collect()
        self.submit(batch)
        return self.collect()

    def warmup(self) -> None:
        """Every batch shape through every request: OpenVINO prepares each new input shape
        on first use (about 0.2 s here), which must happen at start, not at the line."""
        spec = self._card.input
        zeros = np.zeros((self._max_batch, spec.channels, spec.height, spec.width), np.float32)
        for size in self.shapes:
            for _ in self._requests:
                self.submit(zeros[:size])
            while self._busy:
                self.collect()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for request, _ in self._busy:
            request.wait()
        self._busy.clear()
        self._requests.clear()


def batch_shapes(max_batch: int) -> tuple[int, ...]:
    """The powers of two below ``max_batch``, and ``max_batch``: a batch is padded to the next
    one, which costs at most its own size again and only when the line is quiet (under load
    the batches are full)."""
    shapes = [1 << i for i in range(max_batch.bit_length()) if 1 << i < max_batch]
    return (*shapes, max_batch)


def _check_device(core: Any, settings: OpenVinoSettings) -> None:
    """A device that is not there, or bf16 on a CPU without bf16 units: one line, exit 78."""
    available = list(core.available_devices)
    name = settings.device.split(":")[0]
    if name not in ("AUTO", "HETERO") and settings.device not in available:
        wanted = settings.device.split(".")[0]
        if not any(device.split(".")[0] == wanted for device in available):
            raise ConfigError(
                f"model.device = {settings.device!r}: no such OpenVINO device here; "
                f"available: {', '.join(available) or 'none'}"
            )
    if settings.precision == "bf16" and settings.device.startswith("CPU"):
        capabilities = cpu_capabilities()
        if "BF16" not in capabilities:
            raise ConfigError(
                "model.precision = 'bf16': this CPU has no bf16 units (OpenVINO's CPU "
                f"capabilities: {', '.join(capabilities)}); use f32, or int8 with a Q/DQ model"
            )


def cpu_capabilities() -> list[str]:
    """What OpenVINO's CPU plugin can compute in here (FP32, INT8, BF16...); none without
    OpenVINO."""
    try:
        import openvino as ov
    except ImportError:
        return []
    return list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def _open(settings: OpenVinoSettings, card: ModelCard, max_batch: int) -> Engine:
    return OpenVinoEngine(settings, card, max_batch)


def _auto(path: Path, threads: int) -> OpenVinoSettings | None:
    """Where OpenVINO is installed: INT8 for a calibrated (Q/DQ) model, else FP32."""
    if not openvino_available():
        return None
    precision: Precision = "int8" if has_qdq(path) else "f32"
    return OpenVinoSettings(path=path, threads=threads, precision=precision)


PLUGIN = EnginePlugin(OpenVinoSettings, _open, auto=_auto)
