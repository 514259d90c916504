"""The OpenVINO engine, for real, against ONNX Runtime on the same model and inputs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.calibration.int8 import calibrate_int8
from inspector.engines.registry import create_engine, parse_model_settings
from inspector.errors import ConfigError
from tests.fixtures.models import build_color_model
from tests.fixtures.processes import inspector
from tests.fixtures.videos import write_video

ov = pytest.importorskip("openvino", reason="OpenVINO is not installed (extra [openvino])")

TILE = 32
MAX_BATCH = 20  # not a power of two: the largest padded shape is the batch limit itself
# Per precision, the largest logit difference from ONNX Runtime on the same model:
# f32 is the same arithmetic in another order; int8 runs the same Q/DQ model, where one
# rounding step of a quantised activation may land on the other side.
TOLERANCE = {"f32": 1e-3, "int8": 0.25}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("openvino")
    fp32 = root / "m.onnx"
    build_color_model(fp32, size=TILE, busy_layers=2)
    rng = np.random.default_rng(3)
    images = []
    for i in range(16):
        path = root / f"cal{i}.png"
        cv2.imwrite(str(path), rng.integers(0, 256, (TILE, TILE, 3), np.uint8))
        images.append(path)
    return {"f32": fp32, "int8": calibrate_int8(fp32, root / "m-int8.onnx", images).path}


def tiles(n: int) -> np.ndarray:
    rng = np.random.default_rng(n)
    return rng.uniform(-1, 1, (n, 3, TILE, TILE)).astype(np.float32)


@pytest.mark.parametrize("precision", ["f32", "int8"])
def test_logits_agree_with_onnx_runtime_at_odd_and_dynamic_batch_sizes(
    models: dict[str, Path], precision: str
) -> None:
    model = models[precision]
    reference = create_engine(parse_model_settings(path=model, threads=1), MAX_BATCH)
    engine = create_engine(
        parse_model_settings(backend="openvino", path=model, precision=precision), MAX_BATCH
    )
    try:
        engine.warmup()
        for n in (1, 3, 7, 16, 17, MAX_BATCH):
            batch = tiles(n)
            expected, got = reference.infer(batch), engine.infer(batch)
            assert got.shape == expected.shape == (n, 3)
            assert np.abs(got - expected).max() <= TOLERANCE[precision], n
    finally:
        engine.close()
        reference.close()


def test_batches_in_flight_come_back_in_order(models: dict[str, Path]) -> None:
    settings = parse_model_settings(backend="openvino", path=models["f32"], requests=3)
    engine = create_engine(settings, MAX_BATCH)
    reference = create_engine(parse_model_settings(path=models["f32"]), MAX_BATCH)
    try:
        batches = [tiles(n) for n in (5, 20, 2)]
        buffer = np.empty((MAX_BATCH, 3, TILE, TILE), np.float32)
        for batch in batches:  # one reused input buffer, as the pipeline's pool does
            buffer[: len(batch)] = batch
            engine.submit(buffer[: len(batch)])  # type: ignore[attr-defined]
            buffer[:] = 99.0  # the engine must have taken its own copy
        assert engine.full  # type: ignore[attr-defined]
        for batch in batches:
            got = engine.collect()  # type: ignore[attr-defined]
            assert np.abs(got - reference.infer(batch)).max() <= TOLERANCE["f32"]
    finally:
        engine.close()
        reference.close()


def test_bf16_where_the_cpu_has_it_else_refused_in_one_line(models: dict[str, Path]) -> None:
    settings = parse_model_settings(backend="openvino", path=models["f32"], precision="bf16")
    if "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        engine = create_engine(settings, MAX_BATCH)
        reference = create_engine(parse_model_settings(path=models["f32"]), MAX_BATCH)
        batch = tiles(9)
        # bf16 keeps 8 bits of mantissa: about 2 decimal digits of each activation.
        assert np.abs(engine.infer(batch) - reference.infer(batch)).max() <= 0.1
        engine.close()
        reference.close()
    else:
        with pytest.raises(ConfigError, match=r"^model\.precision = 'bf16': this CPU has no bf16"):
            create_engine(settings, MAX_BATCH)


def test_int8_needs_a_quantised_model(models: dict[str, Path]) -> None:
    settings = parse_model_settings(backend="openvino", path=models["f32"], precision="int8")
    with pytest.raises(ConfigError, match="has no Q/DQ nodes"):
        create_engine(settings, MAX_BATCH)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('device = "TPU"', "model.device: unknown device 'TPU'"),
        ('device = "NPU"', "model.device = 'NPU': no such OpenVINO device here; available: "),
        ('precision = "fp8"', "model.precision: Input should be 'f32', 'bf16' or 'int8'"),
    ],
)
def test_a_bad_device_or_precision_is_one_line_and_exit_78(
    tmp_path: Path, models: dict[str, Path], line: str, message: str
) -> None:
    video = tmp_path / "v.mp4"
    write_video(video, [np.zeros((TILE, TILE, 3), np.uint8)], fps=5)
    config = tmp_path / "c.toml"
    config.write_text(
        f'[[cameras]]\nid = "cam0"\nsource = "{video}"\n'
        f'[model]\nbackend = "openvino"\npath = "{models["f32"]}"\n{line}\n'
        f"[tiling]\nsize = {TILE}\nstride = {TILE}\n[mqtt]\nenabled = false\n"
    )
    result = inspector("run", "--config", str(config))
    assert result.returncode == 78, result.stderr
    (error,) = result.stderr.strip().splitlines()
    assert error.startswith("inspector run: error: ") and message in error, error


def test_auto_picks_an_installed_runtime_and_runs_the_model(models: dict[str, Path]) -> None:
    from inspector.engines.onnxruntime_engine import OnnxRuntimeEngine
    from inspector.engines.openvino_engine import OpenVinoEngine

    engine = create_engine(parse_model_settings(backend="auto", path=models["f32"]), MAX_BATCH)
    reference = create_engine(parse_model_settings(path=models["f32"]), MAX_BATCH)
    try:
        assert isinstance(engine, OnnxRuntimeEngine | OpenVinoEngine)
        batch = tiles(6)
        assert np.abs(engine.infer(batch) - reference.infer(batch)).max() <= TOLERANCE["f32"]
    finally:
        engine.close()
        reference.close()


def test_steady_timing_keeps_every_request_busy(
    models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from inspector.engines.auto import steady_batch_ms

    settings = parse_model_settings(backend="openvino", path=models["f32"], requests=3)
    engine = create_engine(settings, MAX_BATCH)
    in_flight, most = 0, 0
    submit, collect = engine.submit, engine.collect  # type: ignore[attr-defined]

    def counted_submit(batch: np.ndarray) -> object:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        return submit(batch)

    def counted_collect(ticket: object = None) -> np.ndarray:
        nonlocal in_flight
        in_flight -= 1
        return collect(ticket)  # type: ignore[no-any-return]

    monkeypatch.setattr(engine, "submit", counted_submit)
    monkeypatch.setattr(engine, "collect", counted_collect)
    try:
        assert steady_batch_ms(engine, tiles(MAX_BATCH), repeats=7) > 0
    finally:
        engine.close()
    assert (most, in_flight) == (3, 0)  # three requests busy at once, every one collected
