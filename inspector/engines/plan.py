"""TensorRT plans as files: names, metadata, staleness checks, profiles, buffers, scheduling.

Everything here is pure Python (no TensorRT, no CUDA), so the rules that decide
whether a plan may be used, and in which order results come back, are tested on
the CPU-only CI machines; ``tensorrt_engine.py`` and ``trt_build.py`` only apply
them.

A plan is only valid for the GPU model, compute capability, TensorRT version and
ONNX file it was built from. Its name carries the parts a human needs to tell
plans apart (``engines/<name>.<precision>.sm<cc>.trt<major.minor>.plan``) and
the JSON sidecar ``<plan>.json`` carries the rest, so the daemon can refuse a
stale plan with one line that says what differs and which command rebuilds it.
"""

from __future__ import annotations

import json
import math
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import onnx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from inspector.errors import ModelError

PLAN_SCHEMA: Final = "inspector.plan/1"
FLOAT32_BYTES: Final = 4
QDQ_OPS: Final = frozenset({"QuantizeLinear", "DequantizeLinear"})

Precision = Literal["fp32", "fp16", "int8"]
Shape = tuple[int, ...]


class PlanMetadata(BaseModel):
    """What a plan was built from and for: the sidecar ``<plan>.json``."""

    # A newer builder may add fields; an older daemon must still read the sidecar.
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    schema_: Literal["inspector.plan/1"] = Field(default=PLAN_SCHEMA, alias="schema")
    model: str = Field(default="", description="the model card's name")
    gpu: str = Field(min_length=1, description="e.g. 'NVIDIA H100 80GB HBM3'")
    compute_capability: str = Field(pattern=r"^\d+\.\d+$", description="e.g. '9.0'")
    tensorrt_version: str = Field(pattern=r"^\d+\.\d+", description="e.g. '10.13.2.6'")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="of the .onnx it was built from")
    precision: Precision
    min_batch: int = Field(ge=1)
    opt_batch: int = Field(ge=1)
    max_batch: int = Field(ge=1)
    contexts: int = Field(ge=1, description="optimisation profiles, one per execution context")

    @model_validator(mode="after")
    def _batch_order(self) -> PlanMetadata:
        validate_batch_range(self.min_batch, self.opt_batch, self.max_batch)
        return self

    @property
    def sm(self) -> str:
        """``'9.0'`` -> ``'90'``, as CUDA names architectures (sm_90)."""
        return self.compute_capability.replace(".", "")

    @property
    def trt_major_minor(self) -> str:
        """``'10.13.2.6'`` -> ``'10.13'``: plans of one minor release share a name."""
        return ".".join(self.tensorrt_version.split(".")[:2])


def validate_batch_range(min_batch: int, opt_batch: int, max_batch: int) -> None:
    if not 1 <= min_batch <= opt_batch <= max_batch:
        raise ValueError(
            f"batch sizes must satisfy 1 <= min <= opt <= max, got min {min_batch}, "
            f"opt {opt_batch}, max {max_batch}"
        )


# --- names -------------------------------------------------------------------------------------


def plan_path(onnx_path: Path, meta: PlanMetadata) -> Path:
    """``engines/<name>.<precision>.sm<cc>.trt<major.minor>.plan`` beside the ONNX file."""
    onnx_path = Path(onnx_path)
    name = f"{onnx_path.stem}.{meta.precision}.sm{meta.sm}.trt{meta.trt_major_minor}.plan"
    return onnx_path.with_name(name)


def sidecar_path(plan: Path) -> Path:
    """``<plan>.json``: the metadata of one plan."""
    return plan.with_name(plan.name + ".json")


def timing_cache_path(onnx_path: Path, meta: PlanMetadata) -> Path:
    """``engines/<name>.sm<cc>.trt<ver>.timing.cache``: shared by every precision of the model.

    Kernel timings depend on the GPU and TensorRT version, not on the batch range,
    so a rebuild for a new range or precision reuses them and takes seconds
    instead of minutes.
    """
    onnx_path = Path(onnx_path)
    name = f"{onnx_path.stem}.sm{meta.sm}.trt{meta.trt_major_minor}.timing.cache"
    return onnx_path.with_name(name)


def write_sidecar(plan: Path, meta: PlanMetadata) -> Path:
    path = sidecar_path(plan)
    text = json.dumps(meta.model_dump(mode="json", by_alias=True), indent=2)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def read_sidecar(plan: Path) -> PlanMetadata:
    """The metadata beside ``plan``, or a ModelError naming the file and the problem."""
    path = sidecar_path(plan)
    try:
        return PlanMetadata.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path}: plan metadata not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: cannot read plan metadata: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise ModelError(f"{path}: {where}: {first['msg']}") from None


# --- precision -----------------------------------------------------------------------------------


def has_qdq(onnx_path: Path) -> bool:
    """Whether the model is explicitly quantized (QuantizeLinear/DequantizeLinear nodes).

    Such a model is INT8 by construction: TensorRT 10 and 11 and ONNX Runtime
    all take their precision from the Q/DQ nodes, with no calibrator or flag.
    """
    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:  # protobuf raises several unrelated types on garbage input
        raise ModelError(f"{onnx_path}: not a readable ONNX model: {exc}") from None
    bodies: list[onnx.GraphProto | onnx.FunctionProto] = [model.graph, *model.functions]
    while bodies:
        for node in bodies.pop().node:
            if node.op_type in QDQ_OPS:
                return True
            # Control flow (If, Loop, Scan) keeps its sub-graphs in attributes.
            for attribute in node.attribute:
                if attribute.HasField("g"):
                    bodies.append(attribute.g)
                bodies.extend(attribute.graphs)
    return False


def model_precision(onnx_path: Path, fp16: bool) -> Precision:
    """``int8`` for a Q/DQ model whatever ``fp16`` says, else ``fp16`` or ``fp32``."""
    if has_qdq(onnx_path):
        return "int8"
    return "fp16" if fp16 else "fp32"


# --- staleness -----------------------------------------------------------------------------------


def check_plan(plan: Path, expected: PlanMetadata) -> list[str]:
    """Why ``plan`` cannot serve ``expected``: one phrase per mismatch, empty when it can.

    GPU, compute capability, TensorRT version, model hash and precision must be
    equal; the plan's batch range must cover the expected one and it must have
    at least as many optimisation profiles as execution contexts are wanted.
    """
    plan = Path(plan)
    if not plan.is_file():
        return [f"{plan.name} does not exist"]
    try:
        found = read_sidecar(plan)
    except ModelError as exc:
        return [str(exc)]
    problems = [
        f"it was built for {what} {have}, this is {want}"
        for what, have, want in (
            ("GPU", repr(found.gpu), repr(expected.gpu)),
            ("compute capability", found.compute_capability, expected.compute_capability),
            ("TensorRT", found.tensorrt_version, expected.tensorrt_version),
            ("precision", found.precision, expected.precision),
        )
        if have != want
    ]
    if found.sha256 != expected.sha256:
        problems.append(
            f"it was built from a model with sha256 {found.sha256[:12]}…, "
            f"the model is now {expected.sha256[:12]}…"
        )
    if found.min_batch > expected.min_batch or found.max_batch < expected.max_batch:
        problems.append(
            f"it takes batches of {found.min_batch}..{found.max_batch}, "
            f"{expected.min_batch}..{expected.max_batch} are needed"
        )
    if found.contexts < expected.contexts:
        problems.append(
            f"it has {found.contexts} optimisation profile(s), "
            f"{expected.contexts} execution contexts need {expected.contexts}"
        )
    return problems


def rebuild_command(onnx_path: Path, meta: PlanMetadata) -> str:
    """The exact ``inspector build-engine`` command line that builds a plan for ``meta``."""
    words = ["inspector", "build-engine", str(onnx_path)]
    if meta.precision == "fp16":
        words.append("--fp16")
    if meta.min_batch != 1:
        words += ["--min-batch", str(meta.min_batch)]
    if meta.opt_batch != meta.max_batch:
        words += ["--opt-batch", str(meta.opt_batch)]
    words += ["--max-batch", str(meta.max_batch), "--contexts", str(meta.contexts)]
    return shlex.join(words)


def _rebuild_target(expected: PlanMetadata, found: PlanMetadata | None) -> PlanMetadata:
    # A rebuild must serve what is needed now without shrinking what the operator
    # chose before (a wider batch range, more contexts, their opt batch).
    if found is None:
        return expected
    low = min(expected.min_batch, found.min_batch)
    high = max(expected.max_batch, found.max_batch)
    chosen = found.opt_batch < found.max_batch  # not the default (= max): keep it
    opt = found.opt_batch if chosen and low <= found.opt_batch <= high else high
    contexts = max(expected.contexts, found.contexts)
    update = {"min_batch": low, "opt_batch": opt, "max_batch": high, "contexts": contexts}
    return expected.model_copy(update=update)


def require_plan(onnx_path: Path, expected: PlanMetadata) -> Path:
    """The plan for ``expected``, or a ModelError that says what is wrong and how to rebuild."""
    plan = plan_path(onnx_path, expected)
    where = (
        f"{expected.gpu}, sm{expected.sm}, TensorRT {expected.tensorrt_version}, "
        f"{expected.precision}"
    )
    if not plan.is_file():
        raise ModelError(
            f"{onnx_path}: no TensorRT plan for this GPU ({where}) at {plan}; build it with: "
            f"{rebuild_command(onnx_path, expected)}"
        )
    problems = check_plan(plan, expected)
    if problems:
        try:
            found: PlanMetadata | None = read_sidecar(plan)
        except ModelError:
            found = None
        target = _rebuild_target(expected, found)
        raise ModelError(
            f"{onnx_path}: the TensorRT plan {plan} is stale: {'; '.join(problems)}; "
            f"rebuild it with: {rebuild_command(onnx_path, target)}"
        )
    return plan


def choose_precision(
    onnx_path: Path, base: PlanMetadata, requested: Precision | None = None
) -> Precision:
    """Which plan the daemon loads when the configuration does not say.

    A Q/DQ model only has an INT8 plan. For a float model FP16 is preferred when
    someone built it (``--fp16`` is a deliberate choice), else FP32.
    """
    if requested is not None:
        return requested
    if has_qdq(onnx_path):
        return "int8"
    fp16 = base.model_copy(update={"precision": "fp16"})
    return "fp16" if plan_path(onnx_path, fp16).is_file() else "fp32"


# --- optimisation profiles and buffers --------------------------------------------------------


@dataclass(frozen=True)
class ProfileShape:
    """One optimisation profile of the input tensor: NCHW shapes for min, opt and max."""

    index: int
    min: Shape
    opt: Shape
    max: Shape


def profile_shapes(
    min_batch: int,
    opt_batch: int,
    max_batch: int,
    channels: int,
    height: int,
    width: int,
    contexts: int,
) -> list[ProfileShape]:
    """One identical profile per execution context.

    TensorRT lets each profile be used by one context at a time, so N contexts
    running concurrently need N profiles even though their shapes are the same.
    """
    validate_batch_range(min_batch, opt_batch, max_batch)
    if contexts < 1:
        raise ValueError(f"contexts must be >= 1, got {contexts}")
    if min(channels, height, width) < 1:
        raise ValueError(f"channels, height and width must be >= 1, got {channels, height, width}")
    tile = (channels, height, width)
    return [
        ProfileShape(i, (min_batch, *tile), (opt_batch, *tile), (max_batch, *tile))
        for i in range(contexts)
    ]


@dataclass(frozen=True)
class BufferPlan:
    """The float32 input and output buffers of one context, sized for ``max_batch``."""

    context: int
    input_shape: Shape
    output_shape: Shape

    @property
    def input_nbytes(self) -> int:
        return math.prod(self.input_shape) * FLOAT32_BYTES

    @property
    def output_nbytes(self) -> int:
        return math.prod(self.output_shape) * FLOAT32_BYTES


def plan_buffers(
    max_batch: int, input_shape: Shape, n_labels: int, contexts: int
) -> list[BufferPlan]:
    """Buffers per context: ``input_shape`` is one tile's ``(C, H, W)``."""
    if max_batch < 1 or n_labels < 1 or contexts < 1:
        raise ValueError(
            f"max_batch, n_labels and contexts must be >= 1, got {max_batch, n_labels, contexts}"
        )
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ValueError(f"input_shape must be a tile's (C, H, W), got {input_shape}")
    return [
        BufferPlan(i, (max_batch, *input_shape), (max_batch, n_labels)) for i in range(contexts)
    ]
