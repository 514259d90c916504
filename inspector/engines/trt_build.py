"""Building TensorRT plans (``inspector build-engine``), and the TensorRT/CUDA glue both
this builder and ``tensorrt_engine.py`` use.

TensorRT and cuda-python are imported inside functions, so this module imports
and type-checks anywhere; without them the functions raise one-line
:class:`ModelError`s naming what is missing.

Precision follows the TensorRT 10 -> 11 change (see DESIGN.md):

- INT8 comes only from Q/DQ nodes in the ONNX model (explicit quantization), the
  same model ONNX Runtime runs on the CPU. It builds as a strongly typed network,
  with no flag and no calibrator, on both versions.
- FP16 is ``BuilderFlag.FP16`` on TensorRT 10. TensorRT 11 removed that flag (all
  networks are strongly typed), so there the ONNX model is converted to FP16 first
  (inputs and outputs stay float32) and built as it is: see :func:`fp16_route`.
- FP32 builds strongly typed on both.
"""

from __future__ import annotations

import importlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import onnx
import structlog

from inspector.engines.card import file_sha256
from inspector.engines.plan import (
    PlanMetadata,
    model_precision,
    plan_path,
    profile_shapes,
    sidecar_path,
    timing_cache_path,
    write_sidecar,
)
from inspector.errors import EX_UNAVAILABLE, InspectorError, ModelError
from inspector.types.card import ModelCard

log = structlog.get_logger(__name__)

TENSORRT_MISSING: Final = "TensorRT (pip package tensorrt) is not installed"
CUDA_PYTHON_MISSING: Final = "cuda-python is not installed"
NO_GPU: Final = "no CUDA GPU is visible"
MIN_TENSORRT_MAJOR: Final = 10
# cuda-python >= 12.6 names the runtime cuda.bindings.runtime; older releases cuda.cudart.
_CUDART_MODULES: Final = ("cuda.bindings.runtime", "cuda.cudart")
_GIB: Final = 1 << 30


class CudaError(InspectorError):
    """A CUDA or TensorRT call failed at run time (driver, memory, device lost)."""

    exit_code = EX_UNAVAILABLE


# --- glue shared with tensorrt_engine.py ------------------------------------------------------


def import_tensorrt(prefix: str) -> Any:
    """``import tensorrt``, or a one-line ModelError that starts with ``prefix``."""
    try:
        trt = importlib.import_module("tensorrt")
    except (ImportError, OSError):  # OSError: the wheel is there but libnvinfer is not
        raise ModelError(f"{prefix}: {TENSORRT_MISSING}") from None
    version = str(trt.__version__)
    if tensorrt_major(version) < MIN_TENSORRT_MAJOR:
        raise ModelError(f"{prefix}: TensorRT {version} is too old; {MIN_TENSORRT_MAJOR}+ needed")
    return trt


def tensorrt_major(version: str) -> int:
    return int(version.split(".")[0])


@dataclass(frozen=True)
class Gpu:
    name: str
    compute_capability: str


class Cuda:
    """cuda-python's runtime with every call checked: ``cuda("cudaMalloc", n)`` -> the pointer."""

    def __init__(self, runtime: Any) -> None:
        self.rt = runtime

    def __call__(self, function: str, *args: Any) -> Any:
        # Every cuda-python call returns (cudaError_t, *values).
        err, *values = getattr(self.rt, function)(*args)
        if err != self.rt.cudaError_t.cudaSuccess:
            raise CudaError(f"{function} failed: {self.error_name(err)}")
        if not values:
            return None
        return values[0] if len(values) == 1 else tuple(values)

    def error_name(self, err: Any) -> str:
        try:
            _, name = self.rt.cudaGetErrorName(err)
            return name.decode() if isinstance(name, bytes) else str(name)
        except Exception:  # naming an error must never hide it
            return str(err)


def open_cuda(prefix: str) -> tuple[Cuda, Gpu]:
    """cuda-python's runtime and the current GPU, or a one-line ModelError."""
    runtime = None
    for name in _CUDART_MODULES:
        try:
            runtime = importlib.import_module(name)
            break
        except ImportError:
            continue
    if runtime is None:
        raise ModelError(f"{prefix}: {CUDA_PYTHON_MISSING}")
    cuda = Cuda(runtime)
    err, count = runtime.cudaGetDeviceCount()
    if err != runtime.cudaError_t.cudaSuccess or count < 1:
        reason = cuda.error_name(err) if err != runtime.cudaError_t.cudaSuccess else "0 devices"
        raise ModelError(f"{prefix}: {NO_GPU} ({reason})")
    props = cuda("cudaGetDeviceProperties", cuda("cudaGetDevice"))
    raw = props.name
    name = (raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)).strip("\x00 ")
    return cuda, Gpu(name, f"{props.major}.{props.minor}")


def trt_logger(trt: Any) -> Any:
    """A TensorRT logger that writes to our structured log (warnings and errors only)."""

    class _Bridge(trt.ILogger):  # type: ignore[misc]  # TensorRT is untyped
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: Any, msg: str) -> None:
            level = int(severity)  # INTERNAL_ERROR 0, ERROR 1, WARNING 2, INFO 3, VERBOSE 4
            if level <= 1:
                log.error("tensorrt", message=msg)
            elif level == 2:
                log.warning("tensorrt", message=msg)

    return _Bridge()


# --- building ----------------------------------------------------------------------------------


def fp16_route(trt_major: int) -> Literal["builder_flag", "strongly_typed"]:
    """How FP16 is asked for: the builder flag up to TensorRT 10, an FP16 graph from 11 on."""
    return "strongly_typed" if trt_major >= 11 else "builder_flag"


def build_engine(
    onnx_path: Path,
    card: ModelCard,
    fp16: bool = False,
    min_batch: int = 1,
    opt_batch: int | None = None,
    max_batch: int = 32,
    contexts: int = 2,
    workspace_gib: float = 4.0,
) -> Path:
    """Build the plan of ``onnx_path`` for this GPU; return its path (sidecar written beside).

    ``card`` must be the model's validated card (``load_model``). ``opt_batch``
    defaults to ``max_batch``: a line under load runs full batches.
    """
    onnx_path = Path(onnx_path)
    opt_batch = max_batch if opt_batch is None else opt_batch
    shapes = profile_shapes(
        min_batch,
        opt_batch,
        max_batch,
        card.channels,
        card.input.height,
        card.input.width,
        contexts,
    )
    if workspace_gib <= 0:
        raise ValueError(f"workspace_gib must be > 0, got {workspace_gib}")
    prefix = str(onnx_path)
    trt = import_tensorrt(prefix)
    _, gpu = open_cuda(prefix)
    if file_sha256(onnx_path) != card.sha256:
        raise ModelError(f"{onnx_path}: the file's sha256 differs from its card's; re-export")
    precision = model_precision(onnx_path, fp16)
    if precision == "int8" and fp16:
        raise ModelError(
            f"{onnx_path}: the model is explicitly quantized (QuantizeLinear/DequantizeLinear "
            "nodes), so its graph fixes its precision; build it without --fp16"
        )
    version = str(trt.__version__)
    meta = PlanMetadata(
        model=card.name,
        gpu=gpu.name,
        compute_capability=gpu.compute_capability,
        tensorrt_version=version,
        sha256=card.sha256,
        precision=precision,
        min_batch=min_batch,
        opt_batch=opt_batch,
        max_batch=max_batch,
        contexts=contexts,
    )
    flag_fp16 = precision == "fp16" and fp16_route(tensorrt_major(version)) == "builder_flag"
    model = _fp16_model(onnx_path) if precision == "fp16" and not flag_fp16 else None

    logger = trt_logger(trt)
    builder = trt.Builder(logger)
    # Strong typing everywhere except the TensorRT 10 FP16 flag, which needs weak typing.
    strongly_typed = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(0 if flag_fp16 else strongly_typed)
    parser = trt.OnnxParser(network, logger)
    data = onnx_path.read_bytes() if model is None else model
    # The path lets the parser find external weight files beside the model.
    if not parser.parse(data, str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        first = errors[0].strip().splitlines()[0] if errors else "unknown error"
        raise ModelError(f"{onnx_path}: TensorRT cannot parse the model: {first}{more}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * _GIB))
    if flag_fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    for shape in shapes:
        profile = builder.create_optimization_profile()
        profile.set_shape(card.input.name, shape.min, shape.opt, shape.max)
        if config.add_optimization_profile(profile) < 0:
            raise ModelError(f"{onnx_path}: TensorRT rejected optimisation profile {shape}")
    cache_file = timing_cache_path(onnx_path, meta)
    cache = _timing_cache(config, cache_file)

    plan = plan_path(onnx_path, meta)
    log.info("tensorrt_build_started", plan=str(plan), gpu=gpu.name, precision=precision)
    started = time.monotonic()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelError(f"{onnx_path}: TensorRT could not build a plan (see its log above)")
    # A crash half-way must never leave a new plan beside an old, matching sidecar.
    sidecar_path(plan).unlink(missing_ok=True)
    _write_atomic(plan, memoryview(serialized))
    write_sidecar(plan, meta)
    _write_atomic(cache_file, memoryview((config.get_timing_cache() or cache).serialize()))
    log.info("tensorrt_build_done", plan=str(plan), seconds=round(time.monotonic() - started, 1))
    return plan


def _fp16_model(onnx_path: Path) -> bytes:
    """The model with FP16 weights and activations and float32 inputs/outputs (TensorRT 11)."""
    try:
        float16 = importlib.import_module("onnxconverter_common.float16")
    except ImportError:
        raise ModelError(
            f"{onnx_path}: --fp16 on TensorRT 11 needs the package onnxconverter-common "
            "(TensorRT 11 removed the FP16 builder flag, so the model is converted to FP16 "
            "first): pip install onnxconverter-common"
        ) from None
    model = onnx.load(str(onnx_path))
    # keep_io_types: the daemon feeds and reads float32, whatever runs inside.
    converted = float16.convert_float_to_float16(model, keep_io_types=True)
    data: bytes = converted.SerializeToString()
    return data


def _timing_cache(config: Any, path: Path) -> Any:
    """Load the timing cache into ``config`` (a fresh one when absent, corrupt or mismatched)."""
    data = path.read_bytes() if path.is_file() else b""
    try:
        cache = config.create_timing_cache(data)
        if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
            return cache
    except Exception as exc:  # TensorRT raises its own types on a corrupt cache
        log.warning("tensorrt_timing_cache_unusable", path=str(path), reason=str(exc))
    cache = config.create_timing_cache(b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    return cache


def _write_atomic(path: Path, data: memoryview) -> None:
    # Written beside the target and renamed over it, so a daemon starting
    # meanwhile reads either the old file or the new one, never half of one.
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
