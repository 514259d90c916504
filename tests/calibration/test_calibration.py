"""INT8 calibration: a real Q/DQ model from ONNX Runtime's quantiser, run by ONNX Runtime."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnx.numpy_helper
import pytest

from inspector.engines.card import load_model
from inspector.engines.onnxruntime_engine import OnnxRuntimeEngine
from inspector.engines.plan import has_qdq
from tests.fixtures import processes
from tests.fixtures.models import build_color_model

COLOURS = {"ok": (95, 95, 95), "crack": (245, 245, 245), "stain": (30, 30, 235)}


def write_dataset(root: Path, per_class: int = 6) -> Path:
    rng = np.random.default_rng(1)
    for part in ("train", "val", "test"):
        for label, colour in COLOURS.items():
            folder = root / part / label
            folder.mkdir(parents=True)
            for i in range(per_class):
                image = np.full((40, 40, 3), colour, np.int16) + rng.integers(-20, 21, (40, 40, 3))
                cv2.imwrite(str(folder / f"{i}.png"), image.clip(0, 255).astype(np.uint8))
    return root


inspector = partial(processes.inspector, timeout=300)  # calibration takes minutes


@pytest.fixture(scope="module")
def model_and_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("int8")
    model = root / "m.onnx"
    build_color_model(model, size=32, busy_layers=2)  # real convolutions to quantise
    return model, write_dataset(root / "data")


def test_calibrate_picks_a_method_on_validation_and_keeps_the_accuracy(
    model_and_data: tuple[Path, Path],
) -> None:
    model, data = model_and_data
    result = inspector("calibrate", "int8", str(model), "--dataset", str(data), "--json")

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    int8 = Path(summary["int8_model"])
    assert int8 == model.with_name("m-int8.onnx")
    assert set(summary["validation_accuracy_by_method"]) == {"minmax", "percentile", "entropy"}
    assert summary["method"] in summary["validation_accuracy_by_method"]
    assert summary["fp32_test_accuracy"] == 1.0
    assert summary["accuracy_change"] == 0.0
    # A real Q/DQ graph with int8 weights, and a card the daemon accepts.
    assert has_qdq(int8) and not has_qdq(model)
    graph = onnx.load(str(int8)).graph
    zero_points = {t.name: t for t in graph.initializer if t.name.endswith("zero_point")}
    weight_names = {f"{w}_zero_point" for w in ("busy_w0", "busy_w1", "weights", "busy_zero")}
    weights = [t for name, t in zero_points.items() if name in weight_names]
    activations = [
        t for name, t in zero_points.items() if name not in weight_names and "bias" not in name
    ]
    # The default target: signed symmetric weights, unsigned activations (ONNX Runtime's x86).
    assert weights and {t.data_type for t in weights} == {onnx.TensorProto.INT8}
    assert all(not onnx.numpy_helper.to_array(t).any() for t in weights)
    assert activations and {t.data_type for t in activations} == {onnx.TensorProto.UINT8}
    card = load_model(int8)
    assert card.name == "demo-color-int8"
    assert card.model_extra is not None
    assert card.model_extra["quantization"]["method"] == summary["method"]


def test_int8_logits_stay_close_to_fp32(model_and_data: tuple[Path, Path]) -> None:
    model, data = model_and_data
    int8 = model.with_name("m-int8.onnx")
    if not int8.exists():
        assert inspector("calibrate", "int8", str(model), "--dataset", str(data)).returncode == 0
    batch = np.random.default_rng(2).uniform(-1, 1, (8, 3, 32, 32)).astype(np.float32)
    outputs = []
    for path in (model, int8):
        engine = OnnxRuntimeEngine(path, load_model(path), threads=1, max_batch=8)
        outputs.append(engine.infer(batch))
        engine.close()
    assert np.abs(outputs[0] - outputs[1]).max() < 0.25


def test_calibrating_an_int8_model_again_is_refused(model_and_data: tuple[Path, Path]) -> None:
    model, data = model_and_data
    int8 = model.with_name("m-int8.onnx")
    if not int8.exists():
        assert inspector("calibrate", "int8", str(model), "--dataset", str(data)).returncode == 0
    result = inspector("calibrate", "int8", str(int8), "--images", str(data / "train"))
    assert result.returncode == 78
    assert "already quantised" in result.stderr


def test_an_empty_image_folder_is_a_clear_error(
    tmp_path: Path, model_and_data: tuple[Path, Path]
) -> None:
    model, _ = model_and_data
    (tmp_path / "empty").mkdir()
    result = inspector("calibrate", "int8", str(model), "--images", str(tmp_path / "empty"))
    assert result.returncode == 65
    assert f"{tmp_path / 'empty'}: no images" in result.stderr


def test_the_portable_target_is_symmetric_int8_as_tensorrt_requires(
    model_and_data: tuple[Path, Path], tmp_path: Path
) -> None:
    model, data = model_and_data
    out = tmp_path / "portable.onnx"
    result = inspector(
        "calibrate", "int8", str(model), "--images", str(data / "train"), "--target", "portable",
        "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    graph = onnx.load(str(out)).graph
    zero_points = [t for t in graph.initializer if t.name.endswith("zero_point")]
    signed = [t for t in zero_points if "bias" not in t.name]
    assert {t.data_type for t in signed} == {onnx.TensorProto.INT8}
    assert all(not onnx.numpy_helper.to_array(t).any() for t in signed)  # zero point 0
    assert load_model(out).model_extra["quantization"]["target"] == "portable"


def _quantised_weights(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Conv node name -> its int8 weight values, for every Conv that reads Q/DQ weights."""
    initializers = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    dequantized = {
        node.output[0]: initializers[node.input[0]]
        for node in graph.node
        if node.op_type == "DequantizeLinear" and node.input[0] in initializers
    }
    return {
        node.name: dequantized[node.input[1]]
        for node in graph.node
        if node.op_type == "Conv" and node.input[1] in dequantized
    }


def test_cpu_int8_uses_7_bit_weights_and_keeps_the_end_convolutions_float(
    model_and_data: tuple[Path, Path], tmp_path: Path
) -> None:
    # Without VNNI (AVX2), x86 kernels sum pairs of u8 x s8 products in 16 bits, which
    # overflow at full-range weights: 7-bit weights cannot.
    _, data = model_and_data
    model = tmp_path / "deep.onnx"
    build_color_model(model, size=32, busy_layers=13)
    convolutions = [n.name for n in onnx.load(str(model)).graph.node if n.op_type == "Conv"]
    assert len(convolutions) >= 12
    out = tmp_path / "deep-int8.onnx"
    result = inspector(
        "calibrate", "int8", str(model), "--images", str(data / "train"), "--out", str(out),
        "--float-ends", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr

    weights = _quantised_weights(onnx.load(str(out)).graph)
    assert weights, "no convolution was quantised"
    # 255 * 64 * 2 = 32640: a pair of products still fits in 16 bits
    assert all(np.abs(w.astype(int)).max() <= 64 for w in weights.values())
    assert any(w.min() <= -60 or w.max() >= 60 for w in weights.values())  # the 7 bits used
    quantization = load_model(out).model_extra["quantization"]  # type: ignore[index]
    kept = quantization["float_convolutions"]
    assert len(kept) == 4 and not set(kept) & set(weights)
    assert len(weights) == len(convolutions) - 4
    assert "7-bit" in quantization["weights"]


def test_a_negative_float_ends_is_a_one_line_error(model_and_data: tuple[Path, Path]) -> None:
    model, data = model_and_data
    result = inspector(
        "calibrate", "int8", str(model), "--images", str(data / "train"), "--float-ends", "-1"
    )
    assert result.returncode == 78
    assert result.stderr.strip().splitlines()[-1].endswith("--float-ends must be >= 0, got -1")
