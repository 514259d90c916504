"""The TensorRT backend: plan files and scheduling (pure Python), the engine and the builder on
fakes of TensorRT and cuda-python (real data flow through host memory), and the real thing
where TensorRT and a GPU exist (skipped visibly elsewhere)."""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import random
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from pydantic import ValidationError

from inspector.cli import build_engine as build_engine_cli
from inspector.engines.card import write_card
from inspector.engines.onnxruntime_engine import OnnxRuntimeEngine
from inspector.engines.plan import (
    PlanMetadata,
    check_plan,
    choose_precision,
    has_qdq,
    model_precision,
    plan_buffers,
    plan_path,
    profile_shapes,
    read_sidecar,
    require_plan,
    sidecar_path,
    timing_cache_path,
    write_sidecar,
)
from inspector.engines.registry import create_engine
from inspector.engines.scheduler import SchedulerFull, StreamScheduler
from inspector.engines.tensorrt_engine import TensorRtEngine, TensorRtSettings
from inspector.engines.trt_build import CudaError, build_engine, fp16_route
from inspector.errors import EX_CONFIG, EX_USAGE, ModelError
from inspector.types.card import ModelCard
from inspector.types.results import FrameResult
from tests.fixtures.models import build_color_model, color_model_proto
from tests.fixtures.trt_fakes import FakeContext, FakeCudart, FakeTrt
from tests.fixtures.videos import tiles, write_video

SIZE = 16
SHA = "ab" * 32


def meta(**changes: Any) -> PlanMetadata:
    fields: dict[str, Any] = {
        "model": "demo", "gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0",
        "tensorrt_version": "10.13.2.6", "sha256": SHA, "precision": "fp16",
        "min_batch": 1, "opt_batch": 16, "max_batch": 32, "contexts": 2,
    }  # fmt: skip
    return PlanMetadata(**(fields | changes))


def qdq_model(path: Path) -> ModelCard:
    """The demo model with its input quantized to int8 and back: a real explicit-INT8 model."""
    card = build_color_model(path, size=SIZE)
    model = color_model_proto(SIZE)
    for node in model.graph.node:
        node.input[:] = ["input_dq" if name == "input" else name for name in node.input]
    model.graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(1 / 127, np.float32), "q_scale"),
            numpy_helper.from_array(np.array(0, np.int8), "q_zero"),
        ]
    )
    qdq = [
        helper.make_node("QuantizeLinear", ["input", "q_scale", "q_zero"], ["input_q"]),
        helper.make_node("DequantizeLinear", ["input_q", "q_scale", "q_zero"], ["input_dq"]),
    ]
    nodes = qdq + [copy.deepcopy(node) for node in model.graph.node]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return write_card(card, path)


def batch(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, 3, SIZE, SIZE)).astype(np.float32)


# --- plan files --------------------------------------------------------------------------------


def test_plan_names() -> None:
    onnx_path = Path("engines/elpv-lite0.onnx")
    plan = plan_path(onnx_path, meta())
    assert plan == Path("engines/elpv-lite0.fp16.sm90.trt10.13.plan")
    assert sidecar_path(plan) == Path("engines/elpv-lite0.fp16.sm90.trt10.13.plan.json")
    cache = timing_cache_path(onnx_path, meta(precision="int8"))
    assert cache == Path("engines/elpv-lite0.sm90.trt10.13.timing.cache")
    blackwell = meta(precision="int8", compute_capability="12.0", tensorrt_version="11.1.0.4")
    assert plan_path(onnx_path, blackwell).name == "elpv-lite0.int8.sm120.trt11.1.plan"


def test_sidecar_round_trip(tmp_path: Path) -> None:
    plan = tmp_path / "m.fp16.sm90.trt10.13.plan"
    write_sidecar(plan, meta())
    assert read_sidecar(plan) == meta()
    data = json.loads(sidecar_path(plan).read_text())
    assert data["schema"] == "inspector.plan/1" and data["max_batch"] == 32
    sidecar_path(plan).write_text(json.dumps(data | {"added_by_a_newer_builder": 1}))
    assert read_sidecar(plan) == meta()
    sidecar_path(plan).write_text("{not json")
    with pytest.raises(ModelError, match=r"\.plan\.json"):
        read_sidecar(plan)
    with pytest.raises(ValidationError, match="min <= opt <= max"):
        meta(opt_batch=64)


def test_check_plan_lists_every_mismatch(tmp_path: Path) -> None:
    plan = tmp_path / "m.plan"
    assert check_plan(plan, meta()) == ["m.plan does not exist"]
    plan.write_bytes(b"plan")
    assert "plan metadata not found" in check_plan(plan, meta())[0]
    write_sidecar(plan, meta())
    assert check_plan(plan, meta()) == []
    assert check_plan(plan, meta(max_batch=16, contexts=1)) == []  # a wider plan serves
    stale = meta(
        gpu="NVIDIA H200", compute_capability="9.1", tensorrt_version="10.14.1.48",
        sha256="cd" * 32, max_batch=64, contexts=3,
    )  # fmt: skip
    problems = "\n".join(check_plan(plan, stale))
    for expected in (
        "'NVIDIA H100 80GB HBM3', this is 'NVIDIA H200'",
        "capability 9.0, this is 9.1",
        "TensorRT 10.13.2.6, this is 10.14.1.48",
        "sha256 ababababab",
        "1..64 are needed",
        "3 execution contexts",
    ):
        assert expected in problems


def test_require_plan_names_the_rebuild_command(tmp_path: Path) -> None:
    onnx_path = tmp_path / "demo.onnx"
    with pytest.raises(ModelError, match="no TensorRT plan for this GPU") as missing:
        require_plan(onnx_path, meta())
    command = (
        f"inspector build-engine {onnx_path} --fp16 --opt-batch 16 --max-batch 32 --contexts 2"
    )
    assert str(missing.value).endswith(command) and missing.value.exit_code == EX_CONFIG
    plan = plan_path(onnx_path, meta())
    plan.write_bytes(b"plan")
    write_sidecar(plan, meta(max_batch=64, opt_batch=64, contexts=3, sha256="cd" * 32))
    with pytest.raises(ModelError, match="is stale: it was built from a model") as stale:
        require_plan(onnx_path, meta())
    # The rebuild keeps the wider range and the extra context the operator chose before.
    assert str(stale.value).endswith(f"{onnx_path} --fp16 --max-batch 64 --contexts 3")
    write_sidecar(plan, meta())
    assert require_plan(onnx_path, meta()) == plan


def test_profile_shapes_one_per_context() -> None:
    shapes = profile_shapes(1, 8, 32, 3, 224, 224, contexts=3)
    assert [s.index for s in shapes] == [0, 1, 2]
    assert {(s.min, s.opt, s.max) for s in shapes} == {
        ((1, 3, 224, 224), (8, 3, 224, 224), (32, 3, 224, 224))
    }
    for bad in ((0, 1, 1, 1), (2, 1, 4, 1), (1, 4, 2, 1), (1, 1, 1, 0)):
        with pytest.raises(ValueError):
            profile_shapes(bad[0], bad[1], bad[2], 3, 8, 8, contexts=bad[3])
    with pytest.raises(ValueError, match="channels"):
        profile_shapes(1, 1, 1, 0, 8, 8, contexts=1)


def test_plan_buffers_sizes() -> None:
    buffers = plan_buffers(32, (3, 224, 224), 6, contexts=2)
    assert [b.context for b in buffers] == [0, 1]
    assert buffers[0].input_shape == (32, 3, 224, 224) and buffers[0].output_shape == (32, 6)
    assert buffers[1].input_nbytes == 32 * 3 * 224 * 224 * 4 and buffers[1].output_nbytes == 768
    with pytest.raises(ValueError):
        plan_buffers(0, (3, 8, 8), 2, 1)
    with pytest.raises(ValueError):
        plan_buffers(4, (8, 8), 2, 1)


def test_scheduler_round_robin_and_order() -> None:
    scheduler = StreamScheduler(2)
    a, b = scheduler.submit(), scheduler.submit()
    assert (a.context, b.context) == (0, 1) and scheduler.full
    with pytest.raises(SchedulerFull, match="collect ticket 0"):
        scheduler.submit()
    with pytest.raises(ValueError, match="out of order"):
        scheduler.complete(b)
    scheduler.complete(a)
    c = scheduler.submit()
    assert c.context == 0 and scheduler.next_to_collect() == b
    scheduler.retract(c)  # its launch failed: context 0 is free again, seq reused
    assert scheduler.submit() == c and scheduler.in_flight == 2


@pytest.mark.parametrize("contexts", [1, 2, 3, 4])
def test_scheduler_under_random_interleaving(contexts: int) -> None:
    rng = random.Random(contexts)
    scheduler, submitted, collected = StreamScheduler(contexts), [], []
    for _ in range(500):
        if not scheduler.full and (scheduler.in_flight == 0 or rng.random() < 0.55):
            ticket = scheduler.submit()
            assert ticket.context == ticket.seq % contexts
            busy = [t.context for t in submitted[len(collected) :]]
            assert ticket.context not in busy  # never two batches on one context
            submitted.append(ticket)
        else:
            ticket = scheduler.next_to_collect()
            assert ticket is not None
            scheduler.complete(ticket)
            collected.append(ticket)
    assert collected == submitted[: len(collected)]


def test_fp16_route() -> None:
    assert fp16_route(10) == "builder_flag"
    assert fp16_route(11) == fp16_route(12) == "strongly_typed"


def test_precision_from_qdq_nodes(tmp_path: Path) -> None:
    plain, quantized = tmp_path / "plain.onnx", tmp_path / "int8.onnx"
    build_color_model(plain, size=SIZE)
    card = qdq_model(quantized)
    assert not has_qdq(plain) and has_qdq(quantized)
    assert model_precision(plain, fp16=True) == "fp16" and model_precision(plain, False) == "fp32"
    assert model_precision(quantized, fp16=True) == "int8"
    # A real model: ONNX Runtime runs it and agrees with the float one to the quantization step.
    with_qdq = OnnxRuntimeEngine(quantized, card, threads=1, max_batch=4)
    without = OnnxRuntimeEngine(plain, card, threads=1, max_batch=4)
    np.testing.assert_allclose(with_qdq.infer(batch(4)), without.infer(batch(4)), atol=0.05)
    base = meta(sha256=card.sha256)
    assert choose_precision(quantized, base) == "int8"
    assert choose_precision(plain, base) == "fp32"
    plan_path(plain, base.model_copy(update={"precision": "fp16"})).write_bytes(b"plan")
    assert choose_precision(plain, base) == "fp16"
    assert choose_precision(plain, base, requested="fp32") == "fp32"


# --- without TensorRT ----------------------------------------------------------------------------

HAVE_TENSORRT = importlib.util.find_spec("tensorrt") is not None


@pytest.mark.skipif(HAVE_TENSORRT, reason="TensorRT is installed here")
def test_missing_tensorrt_is_a_model_error(tmp_path: Path) -> None:
    path = tmp_path / "demo.onnx"
    card = build_color_model(path, size=SIZE)
    with pytest.raises(ModelError, match=r"TensorRT \(pip package tensorrt\) is not installed"):
        TensorRtEngine(path, card, max_batch=4)
    with pytest.raises(ModelError, match="is not installed") as error:
        build_engine(path, card, max_batch=4)
    assert error.value.exit_code == EX_CONFIG and "\n" not in str(error.value)


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[FakeTrt, FakeCudart]]:
    def install(
        version: str = "10.13.2.6", devices: int = 1, capture: bool = True, cuda: bool = True
    ) -> tuple[FakeTrt, FakeCudart]:
        cudart = FakeCudart(devices, capture)
        trt = FakeTrt(version, cudart)
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", cudart if cuda else None)
        monkeypatch.setitem(sys.modules, "cuda.cudart", None)
        return trt, cudart

    return install


@pytest.fixture
def demo(tmp_path: Path) -> tuple[Path, ModelCard]:
    path = tmp_path / "demo.onnx"
    return path, build_color_model(path, size=SIZE)


def test_what_is_missing_is_named(fake_gpu: Any, demo: tuple[Path, ModelCard]) -> None:
    path, card = demo
    fake_gpu(cuda=False)
    with pytest.raises(ModelError, match="cuda-python is not installed"):
        TensorRtEngine(path, card, max_batch=4)
    fake_gpu(devices=0)
    with pytest.raises(ModelError, match=r"no CUDA GPU is visible \(cudaErrorNoDevice\)"):
        build_engine(path, card, max_batch=4)
    fake_gpu()
    with pytest.raises(ModelError, match=r"no TensorRT plan .* inspector build-engine"):
        create_engine(TensorRtSettings(path=path), max_batch=4)


@pytest.mark.parametrize("capture", [True, False])
def test_engine_matches_onnxruntime(
    fake_gpu: Any, demo: tuple[Path, ModelCard], capture: bool
) -> None:
    path, card = demo
    trt, cudart = fake_gpu(capture=capture)
    plan = build_engine(path, card, max_batch=8, contexts=2)
    assert read_sidecar(plan).gpu == "Fake GPU" and trt.builds[-1] == {"network": 1, "flags": []}
    reference = OnnxRuntimeEngine(path, card, threads=1, max_batch=8)
    engine = create_engine(TensorRtSettings(path=path), max_batch=8)
    assert isinstance(engine, TensorRtEngine) and engine.plan == plan
    for seed, n in enumerate([3, 8, 3, 5, 3, 8, 1]):
        tiles = batch(n, seed)
        np.testing.assert_allclose(engine.infer(tiles), reference.infer(tiles), atol=1e-5)
    assert (cudart.launches > 0) == capture  # repeated sizes replay their CUDA graph
    engine.close()
    engine.close()
    assert cudart.memory == {} and cudart.live == {}
    with pytest.raises(RuntimeError, match="after close"):
        engine.infer(batch(1))


def test_model_settings_reach_the_tensorrt_engine(
    fake_gpu: Any, demo: tuple[Path, ModelCard]
) -> None:
    """contexts, cuda_graphs and precision from [model] shape the engine create_engine opens."""
    from inspector.config import Settings

    path, card = demo
    _, cudart = fake_gpu()
    build_engine(path, card, max_batch=4, contexts=3)

    def opened(**options: Any) -> TensorRtEngine:
        settings = Settings(
            cameras=[{"id": "cam0", "source": "0"}],
            model={"path": path, "backend": "tensorrt", **options},
        )
        engine = create_engine(settings.model, max_batch=4)
        assert isinstance(engine, TensorRtEngine)
        return engine

    engine = opened(contexts=3, cuda_graphs=False)
    assert engine.metadata.contexts == 3 and engine.metadata.precision == "fp32"
    tickets = [engine.submit(batch(2, seed)) for seed in range(3)]
    assert engine.full  # three batches in flight, one per context
    for ticket in tickets:
        engine.collect(ticket)
    engine.warmup()
    assert cudart.launches == 0  # no graph is captured, so none is replayed
    engine.close()
    engine = opened(contexts=3)
    engine.warmup()
    engine.warmup()
    assert cudart.launches > 0
    engine.close()
    with pytest.raises(ModelError, match=r"no TensorRT plan .* --fp16 .* --contexts 3"):
        opened(contexts=3, precision="fp16")


def test_batches_in_flight_come_back_in_order(
    fake_gpu: Any, demo: tuple[Path, ModelCard], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, card = demo
    fake_gpu()
    build_engine(path, card, max_batch=4, contexts=2)
    engine = TensorRtEngine(path, card, max_batch=4, contexts=2)
    reference = OnnxRuntimeEngine(path, card, threads=1, max_batch=4)
    first, second = batch(4, 1), batch(2, 2)
    expected = reference.infer(first), reference.infer(second)
    tickets = engine.submit(first), engine.submit(second)
    first[:] = 0  # the caller reuses its buffer as soon as submit returns
    assert engine.full
    with pytest.raises(SchedulerFull):
        engine.submit(batch(1))
    with pytest.raises(ValueError, match="out of order"):
        engine.collect(tickets[1])
    with pytest.raises(RuntimeError, match="in flight"):
        engine.infer(batch(1))
    np.testing.assert_allclose(engine.collect(), expected[0], atol=1e-5)
    third = engine.submit(batch(3, 3))
    np.testing.assert_allclose(engine.collect(tickets[1]), expected[1], atol=1e-5)
    np.testing.assert_allclose(engine.collect(third), reference.infer(batch(3, 3)), atol=1e-5)
    with pytest.raises(ValueError, match=r"1\.\.4"):
        engine.infer(batch(5))
    with monkeypatch.context() as patch:
        patch.setattr(FakeContext, "execute_async_v3", lambda self, stream: False)
        with pytest.raises(CudaError, match="execute_async_v3 failed"):
            engine.submit(batch(1))  # a size without a graph yet: a plain enqueue
    assert engine.in_flight == 0  # the failed batch gave its context back
    np.testing.assert_allclose(engine.infer(batch(1)), reference.infer(batch(1)), atol=1e-5)
    engine.close()


def test_stale_plan_is_refused(fake_gpu: Any, demo: tuple[Path, ModelCard]) -> None:
    path, card = demo
    fake_gpu(version="10.13.0.35")
    build_engine(path, card, max_batch=4, contexts=1)
    fake_gpu(version="10.13.2.6")
    with pytest.raises(ModelError, match=r"TensorRT 10\.13\.0\.35, this is 10\.13\.2\.6") as error:
        TensorRtEngine(path, card, max_batch=8)
    assert str(error.value).endswith(f"build-engine {path} --max-batch 8 --contexts 2")


def test_build_routes_and_timing_cache(
    fake_gpu: Any, demo: tuple[Path, ModelCard], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, card = demo
    trt, _ = fake_gpu(version="10.13.2.6")
    plan = build_engine(path, card, fp16=True, max_batch=4, contexts=3)
    assert plan.name == "demo.fp16.sm90.trt10.13.plan"
    assert trt.builds[-1] == {"network": 0, "flags": ["fp16"]}  # weakly typed + FP16 flag
    build_engine(path, card, fp16=True, max_batch=4, contexts=3)
    cache = timing_cache_path(path, read_sidecar(plan))
    assert cache.read_bytes() == b"+timings+timings"  # the second build started from the first
    assert read_sidecar(plan).contexts == 3
    quantized = tmp_path / "quant.onnx"
    quantized_card = qdq_model(quantized)
    assert build_engine(quantized, quantized_card, max_batch=4).name.startswith("quant.int8.")
    assert trt.builds[-1] == {"network": 1, "flags": []}  # strongly typed, no flag
    with pytest.raises(ModelError, match="explicitly quantized"):
        build_engine(quantized, quantized_card, fp16=True, max_batch=4)
    trt, _ = fake_gpu(version="11.1.0.4")  # no BuilderFlag.FP16 any more
    if importlib.util.find_spec("onnxconverter_common") is None:
        with pytest.raises(ModelError, match="needs the package onnxconverter-common"):
            build_engine(path, card, fp16=True, max_batch=4)
    converted: list[bool] = []

    def convert(model: onnx.ModelProto, keep_io_types: bool) -> onnx.ModelProto:
        converted.append(keep_io_types)
        return model

    float16 = types.SimpleNamespace(convert_float_to_float16=convert)
    monkeypatch.setitem(sys.modules, "onnxconverter_common.float16", float16)
    plan = build_engine(path, card, fp16=True, max_batch=4)
    assert plan.name == "demo.fp16.sm90.trt11.1.plan" and converted == [True]
    assert trt.builds[-1] == {"network": 1, "flags": []}  # an FP16 graph, strongly typed


def test_cli(
    fake_gpu: Any, demo: tuple[Path, ModelCard], capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser(prog="inspector")
    build_engine_cli.register(parser.add_subparsers(dest="command"))
    with pytest.raises(SystemExit):
        parser.parse_args(["build-engine", "--help"])
    assert "exit codes" in capsys.readouterr().out
    path, _ = demo
    args = parser.parse_args(["build-engine", str(path), "--min-batch", "8", "--max-batch", "4"])
    assert args.func(args) == EX_USAGE
    fake_gpu()
    args = parser.parse_args(["build-engine", str(path), "--max-batch", "4", "--json"])
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert out["plan"].endswith(".fp32.sm90.trt10.13.plan") and out["max_batch"] == 4


# --- the real thing ------------------------------------------------------------------------------


def _gpu_visible() -> bool:
    try:
        from cuda.bindings import runtime

        err, count = runtime.cudaGetDeviceCount()
        return bool(err == runtime.cudaError_t.cudaSuccess and count > 0)
    except Exception:
        return False


_MISSING = [
    what
    for what, present in (
        ("TensorRT is not installed", HAVE_TENSORRT),
        ("no CUDA GPU", _gpu_visible()),
    )
    if not present
]


@pytest.mark.skipif(bool(_MISSING), reason="; ".join(_MISSING))
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_real_tensorrt_matches_onnxruntime(tmp_path: Path, precision: str) -> None:
    import tensorrt

    if (
        precision == "fp16"
        and fp16_route(int(tensorrt.__version__.split(".")[0])) != "builder_flag"
    ):
        pytest.importorskip("onnxconverter_common", reason="TensorRT 11 FP16 needs it")
    path = tmp_path / "demo.onnx"
    card = qdq_model(path) if precision == "int8" else build_color_model(path, size=SIZE)
    plan = build_engine(path, card, fp16=precision == "fp16", max_batch=8, workspace_gib=1)
    engine = TensorRtEngine(path, card, max_batch=8, contexts=2)
    assert engine.plan == plan and engine.metadata.precision == precision
    reference = OnnxRuntimeEngine(path, card, threads=1, max_batch=8)
    tolerance = {"fp32": 1e-4, "fp16": 2e-2, "int8": 5e-2}[precision]
    tiles = [batch(n, seed) for seed, n in enumerate((1, 5, 8, 5, 8))]  # 5 and 8 replay graphs
    for one in tiles:
        np.testing.assert_allclose(engine.infer(one), reference.infer(one), atol=tolerance)
    tickets = [engine.submit(one) for one in tiles[1:3]]  # two in flight, on two streams
    for ticket, one in zip(tickets, tiles[1:3], strict=True):
        np.testing.assert_allclose(engine.collect(ticket), reference.infer(one), atol=tolerance)
    engine.close()


class ListSink:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def frame_result(self, result: FrameResult) -> None:
        if result.event is not None:
            self.events.append(dict(result.event))

    def stats(self, stats: Any) -> None:
        pass

    def camera_status(self, camera: str, status: Any) -> None:
        pass


def test_the_pipeline_keeps_batches_in_flight_and_matches_onnxruntime(
    fake_gpu: Any, tmp_path: Path
) -> None:
    from inspector.capture.sources.registry import create_source
    from inspector.config import Settings
    from inspector.engines.base import AsyncEngine
    from inspector.pipeline.runner import Camera, Pipeline

    path = tmp_path / "demo.onnx"
    card = build_color_model(path, size=SIZE)
    video = tmp_path / "line.mp4"
    rng = np.random.default_rng(5)
    colours = np.array([[245, 245, 245], [30, 30, 235], [60, 60, 60]], np.uint8)

    def frame() -> np.ndarray:  # random bright, red and dark tiles: some carry defects
        picked = rng.choice(colours, size=4)
        return tiles(4, 1, SIZE, 0, [(i, 0, tuple(colour)) for i, colour in enumerate(picked)])

    write_video(video, (frame() for _ in range(24)), fps=30)
    fake_gpu()
    build_engine(path, card, max_batch=4, contexts=2)

    def events(backend: str) -> list[tuple[int, list[tuple[str, list[int]]]]]:
        settings = Settings(
            cameras=[{"id": "cam0", "source": str(video)}],
            model={
                "path": path,
                "backend": backend,
                **({"threads": 1} if backend == "onnxruntime" else {}),
            },
            tiling={"size": SIZE, "stride": SIZE},
            batching={"max_batch": 4, "max_wait_ms": 1},
        )
        engine = create_engine(settings.model, 4)
        assert isinstance(engine, AsyncEngine) == (backend == "tensorrt")
        source = create_source(settings.cameras[0])
        source.open()
        sink = ListSink()
        summary = Pipeline(settings, [Camera(settings.cameras[0], source)], engine, sink).run()
        engine.close()
        assert summary.frames_inferred == 24 and summary.tiles_inferred == 96
        return sorted(
            (e["frame_id"], [(d["class"], d["bbox_px"]) for d in e["defects"]]) for e in sink.events
        )

    on_gpu = events("tensorrt")
    assert on_gpu and on_gpu == events("onnxruntime")
