"""Model cards, the ONNX Runtime engine and tile normalisation, on real ONNX files."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from inspector.engines.card import card_path, file_sha256, load_model, write_card
from inspector.engines.normalize import TileNormalizer
from inspector.engines.onnxruntime_engine import OnnxRuntimeSettings
from inspector.engines.registry import create_engine
from inspector.engines.tensorrt_engine import TensorRtSettings
from inspector.errors import EX_CONFIG, ModelError
from inspector.types.card import ModelCard
from tests.fixtures.models import build_color_model, normalize_reference

SIZE = 32


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs: np.ndarray = shifted / shifted.sum(axis=1, keepdims=True)
    return probs


@pytest.fixture
def demo(tmp_path: Path) -> tuple[Path, ModelCard]:
    path = tmp_path / "demo.onnx"
    return path, build_color_model(path, size=SIZE)


def color_tiles() -> np.ndarray:
    tiles = np.empty((3, SIZE, SIZE, 3), dtype=np.uint8)
    tiles[0] = 40  # dark gray
    tiles[1] = 250  # white
    tiles[2] = (30, 30, 230)  # red, in BGR order
    return tiles


def test_demo_model_loads_and_card_round_trips(demo: tuple[Path, ModelCard]) -> None:
    path, card = demo
    assert load_model(path) == card
    data = json.loads(card_path(path).read_text())
    assert data["schema"] == "inspector.model/1"
    assert data["sha256"] == file_sha256(path)
    assert data["backbone"] == "synthetic" and "description" in data
    assert card.channels == 3 and card.defect_labels == ("crack", "stain")
    assert card.threshold_for("crack") == 0.5 and card.ok_index == 0
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


def test_engine_classifies_dark_white_red(demo: tuple[Path, ModelCard]) -> None:
    path, card = demo
    engine = create_engine(OnnxRuntimeSettings(path=path, threads=1), max_batch=8)
    try:
        assert engine.card == card and engine.max_batch == 8
        buffer = np.zeros((8, 3, SIZE, SIZE), dtype=np.float32)
        inputs = TileNormalizer(card).normalize(color_tiles(), out=buffer[:3])
        scores = engine.infer(inputs)
        assert scores.dtype == np.float32 and scores.shape == (3, 3)
        probs = softmax(scores)
        assert [card.labels[i] for i in probs.argmax(axis=1)] == ["ok", "crack", "stain"]
        assert probs[1, 1] > 0.9 and probs[2, 2] > 0.9 and probs[0, 0] > 0.9
    finally:
        engine.close()


@pytest.mark.parametrize("n", [1, 7, 32])
def test_dynamic_batch_sizes(demo: tuple[Path, ModelCard], n: int) -> None:
    path, card = demo
    engine = create_engine(OnnxRuntimeSettings(path=path), max_batch=32)
    rng = np.random.default_rng(n)
    tiles = rng.integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)
    buffer = np.empty((32, 3, SIZE, SIZE), dtype=np.float32)
    scores = engine.infer(TileNormalizer(card).normalize(tiles, buffer[:n]))
    assert scores.shape == (n, 3)
    # The demo network is channel means -> linear layer: check it against numpy.
    means = normalize_reference(tiles, card).mean(axis=(2, 3))
    crack = 4 * means.sum(axis=1) - 6
    np.testing.assert_allclose(scores[:, 1], crack, atol=1e-3)
    engine.close()


def test_engine_rejects_batch_above_max(demo: tuple[Path, ModelCard]) -> None:
    path, _ = demo
    engine = create_engine(OnnxRuntimeSettings(path=path), max_batch=2)
    with pytest.raises(ValueError, match=r"1\.\.2"):
        engine.infer(np.zeros((3, 3, SIZE, SIZE), dtype=np.float32))


# --- TileNormalizer ---------------------------------------------------------


def card_with(card: ModelCard, **input_changes: Any) -> ModelCard:
    return card.model_copy(update={"input": card.input.model_copy(update=input_changes)})


def test_normalize_matches_reference_rgb(demo: tuple[Path, ModelCard]) -> None:
    _, card = demo
    card = card_with(card, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    tiles = np.random.default_rng(1).integers(0, 256, (5, SIZE, SIZE, 3), dtype=np.uint8)
    batch = np.full((8, 3, SIZE, SIZE), np.nan, dtype=np.float32)
    TileNormalizer(card).normalize(tiles, batch[2:7])
    np.testing.assert_allclose(batch[2:7], normalize_reference(tiles, card), atol=1e-5)
    assert np.isnan(batch[:2]).all() and np.isnan(batch[7:]).all()  # only its slice


@pytest.mark.parametrize("layout", ["gray", "gray1", "bgr"])
def test_normalize_matches_reference_gray_model(demo: tuple[Path, ModelCard], layout: str) -> None:
    _, card = demo
    card = card_with(card, color="gray", mean=(0.45,), std=(0.25,))
    rng = np.random.default_rng(2)
    shape = {"gray": (4, SIZE, SIZE), "gray1": (4, SIZE, SIZE, 1), "bgr": (4, SIZE, SIZE, 3)}
    tiles = rng.integers(0, 256, shape[layout], dtype=np.uint8)
    out = np.empty((4, 1, SIZE, SIZE), dtype=np.float32)
    TileNormalizer(card).normalize(tiles, out)
    np.testing.assert_allclose(out, normalize_reference(tiles, card), atol=1e-5)
    if layout == "bgr":  # OpenCV's luma too, within its fixed-point rounding (1 level)
        gray = cv2.cvtColor(tiles[0], cv2.COLOR_BGR2GRAY).astype(np.float64)
        np.testing.assert_allclose(out[0, 0], (gray / 255 - 0.45) / 0.25, atol=1 / 255 / 0.25)


def test_gray_tiles_feed_rgb_model(demo: tuple[Path, ModelCard]) -> None:
    _, card = demo
    tiles = np.random.default_rng(3).integers(0, 256, (2, SIZE, SIZE), dtype=np.uint8)
    out = np.empty((2, 3, SIZE, SIZE), dtype=np.float32)
    TileNormalizer(card).normalize(tiles, out)
    np.testing.assert_allclose(out, normalize_reference(tiles, card), atol=1e-5)


@pytest.mark.parametrize("edge", [48, 20])  # shrinking (INTER_AREA) and growing (INTER_LINEAR)
@pytest.mark.parametrize("color", ["rgb", "gray"])
def test_normalize_resize_path(demo: tuple[Path, ModelCard], edge: int, color: str) -> None:
    _, card = demo
    if color == "gray":
        card = card_with(card, color="gray", mean=(0.5,), std=(0.5,))
    tiles = np.random.default_rng(edge).integers(0, 256, (3, edge, edge, 3), dtype=np.uint8)
    method = cv2.INTER_AREA if edge > SIZE else cv2.INTER_LINEAR
    resized = np.stack([cv2.resize(t, (SIZE, SIZE), interpolation=method) for t in tiles])
    out = np.empty((3, card.channels, SIZE, SIZE), dtype=np.float32)
    normalizer = TileNormalizer(card)
    for _ in range(2):  # the second call reuses the scratch buffer
        normalizer.normalize(tiles, out)
        np.testing.assert_allclose(out, normalize_reference(resized, card), atol=1e-5)


def test_normalize_rejects_wrong_out(demo: tuple[Path, ModelCard]) -> None:
    _, card = demo
    tiles = np.zeros((2, SIZE, SIZE, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="out must be float32"):
        TileNormalizer(card).normalize(tiles, np.empty((3, 3, SIZE, SIZE), dtype=np.float32))


@pytest.mark.parametrize(
    ("frame_layout", "color"), [("bgr", "rgb"), ("gray", "rgb"), ("gray1", "rgb"), ("gray", "gray")]
)
def test_frame_planes_match_reference(
    demo: tuple[Path, ModelCard], frame_layout: str, color: str
) -> None:
    """The daemon's route (frame -> planes -> batch slots) gives the reference's numbers."""
    _, card = demo
    mean, std = (
        ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)) if color == "rgb" else ((0.4,), (0.3,))
    )
    card = card_with(card, color=color, mean=mean, std=std)
    shape = {
        "bgr": (3 * SIZE, 4 * SIZE, 3),
        "gray": (3 * SIZE, 4 * SIZE),
        "gray1": (3 * SIZE, 4 * SIZE, 1),
    }
    frame = np.random.default_rng(4).integers(0, 256, shape[frame_layout], dtype=np.uint8)
    origins = np.array([[0, 0], [3 * SIZE, 2 * SIZE], [SIZE + 5, SIZE - 3]], dtype=np.int64)
    tiles = np.stack([frame[y : y + SIZE, x : x + SIZE] for x, y in origins])
    normalizer = TileNormalizer(card)
    planes = normalizer.planes(frame, SIZE)
    assert planes is not None
    batch = np.full((5, card.channels, SIZE, SIZE), np.nan, dtype=np.float32)
    normalizer.normalize_planes(planes, origins, batch[1:4])  # written in place, nowhere else
    np.testing.assert_allclose(batch[1:4], normalize_reference(tiles, card), atol=1e-5)
    assert np.isnan(batch[0]).all() and np.isnan(batch[4]).all()


def test_frame_planes_decline_what_needs_the_general_route(demo: tuple[Path, ModelCard]) -> None:
    _, card = demo
    frame = np.zeros((2 * SIZE, 2 * SIZE, 3), dtype=np.uint8)
    assert TileNormalizer(card).planes(frame, SIZE + 8) is None  # tiles must be resized
    gray_model = card_with(card, color="gray", mean=(0.5,), std=(0.5,))
    assert TileNormalizer(gray_model).planes(frame, SIZE) is None  # luma is done in float
    planes = TileNormalizer(card).planes(frame, SIZE)
    assert planes is not None
    with pytest.raises(ValueError, match="leaves the"):
        out = np.empty((1, 3, SIZE, SIZE), dtype=np.float32)
        TileNormalizer(card).normalize_planes(planes, np.array([[SIZE + 1, 0]]), out)


# --- card and graph validation ----------------------------------------------


def write_graph(
    path: Path,
    *,
    input_name: str = "input",
    input_shape: list[int | str] | None = None,
    output_name: str = "logits",
    outputs: int = 3,
    extra_input: bool = False,
) -> None:
    """A small valid graph (pool -> flatten -> gemm) with the given names and shapes."""
    shape = input_shape or ["batch", 3, SIZE, SIZE]
    channels = int(shape[1])
    weights = np.ones((channels, outputs), dtype=np.float32)
    inputs = [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, shape)]
    nodes = [
        helper.make_node("GlobalAveragePool", [input_name], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["means"], axis=1),
        helper.make_node("Gemm", ["means", "weights"], [output_name]),
    ]
    if extra_input:
        inputs.append(helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["batch", 1]))
    graph = helper.make_graph(
        nodes,
        "test",
        inputs,
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [shape[0], outputs])],
        [numpy_helper.from_array(weights, "weights")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, str(path))


def replace_graph(path: Path, card: ModelCard, **graph: Any) -> None:
    write_graph(path, **graph)
    write_card(card, path)  # the card stays, with the new file's sha256


def edit_card(path: Path, change: dict[str, Any]) -> None:
    data = json.loads(card_path(path).read_text())
    data.update(change)
    card_path(path).write_text(json.dumps(data))


def assert_model_error(path: Path, *fragments: str) -> None:
    with pytest.raises(ModelError) as caught:
        load_model(path)
    message = str(caught.value)
    assert "\n" not in message
    assert caught.value.exit_code == EX_CONFIG
    for fragment in fragments:
        assert fragment in message, message


def test_missing_model_file(tmp_path: Path) -> None:
    assert_model_error(tmp_path / "absent.onnx", "absent.onnx: model file not found")


def test_wrong_sha256(demo: tuple[Path, ModelCard]) -> None:
    path, _ = demo
    edit_card(path, {"sha256": "ab" * 32})
    assert_model_error(
        path, "sha256 " + file_sha256(path)[:12], "card's abababababab", "re-export or fix"
    )


def test_missing_card(demo: tuple[Path, ModelCard]) -> None:
    path, _ = demo
    card_path(path).unlink()
    assert_model_error(path, "demo.json: model card not found")


def test_bad_json(demo: tuple[Path, ModelCard]) -> None:
    path, _ = demo
    card_path(path).write_text('{"schema": "inspector.model/1",')
    assert_model_error(path, "demo.json: invalid JSON")


def test_input_name_mismatch(demo: tuple[Path, ModelCard]) -> None:
    path, card = demo
    replace_graph(path, card, input_name="images")
    assert_model_error(path, "card input.name is 'input'", "inputs are ['images']")


def test_more_than_one_input(demo: tuple[Path, ModelCard]) -> None:
    path, card = demo
    replace_graph(path, card, extra_input=True)
    assert_model_error(path, "inputs are ['input', 'mask']")


def test_wrong_height_and_width(demo: tuple[Path, ModelCard]) -> None:
    path, card = demo
    replace_graph(path, card, input_shape=["batch", 3, 64, 48])
    assert_model_error(
        path, f"card input height is {SIZE} but graph input has 64", "width is 32 but graph"
    )


def test_wrong_channel_count(demo: tuple[Path, ModelCard]) -> None:
    path, card = demo
    replace_graph(path, card, input_shape=["batch", 1, SIZE, SIZE])
    assert_model_error(path, "card input channels is 3 but graph input has 1")


def test_fixed_batch_dimension(demo: tuple[Path, ModelCard]) -> None:
    path, card = demo
    replace_graph(path, card, input_shape=[1, 3, SIZE, SIZE])
    assert_model_error(path, "fixed batch dimension N = 1", "must be dynamic")


def test_label_count_vs_output_dim(demo: tuple[Path, ModelCard]) -> None:
    path, card = demo
    replace_graph(path, card, outputs=2)
    assert_model_error(path, "card has 3 labels but output 'logits' has 2 scores")


def test_output_name_mismatch(demo: tuple[Path, ModelCard]) -> None:
    path, card = demo
    replace_graph(path, card, output_name="probs")
    assert_model_error(path, "card output.name is 'logits'", "outputs are ['probs']")


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        ({"ok_label": "good"}, ("ok_label: 'good' is not one of the labels",)),
        ({"thresholds": {"scratch": 0.4}}, ("thresholds: ['scratch'] not among the labels",)),
        ({"thresholds": {"crack": 1.5}}, ("thresholds.crack:", "less than or equal to 1")),
        ({"labels": ["ok", "ok", "crack"]}, ("labels: labels must be unique, repeated: ok",)),
        ({"labels": ["ok"]}, ("labels:", "at least 2")),
        ({"schema": "inspector.model/2"}, ("schema:", "inspector.model/1")),
        ({"input": {"name": "input", "height": SIZE, "width": SIZE, "color": "rgb",
                    "scale": 255, "mean": [0.5], "std": [0.5, 0.5, 0.5]}},
         ("input.mean: rgb needs 3 value(s), got 1",)),
        ({"input": {"name": "input", "height": SIZE, "width": SIZE, "color": "gray",
                    "scale": 255, "mean": [0.5], "std": [0.0]}},
         ("input.std: every std must be > 0",)),
        ({"output": {"name": "logits", "kind": "scores"}}, ("output.kind:", "'logits'")),
    ],
)  # fmt: skip
def test_card_field_errors(
    demo: tuple[Path, ModelCard], change: dict[str, Any], fragments: tuple[str, ...]
) -> None:
    path, _ = demo
    edit_card(path, change)
    assert_model_error(path, "demo.json: ", *fragments)


def test_extra_card_fields_are_kept(demo: tuple[Path, ModelCard]) -> None:
    path, _ = demo
    edit_card(path, {"metrics": {"test": {"accuracy": 0.9}}})
    assert load_model(path).model_extra == {
        "backbone": "synthetic",
        "dataset": {"name": "synthetic"},
        "description": load_model(path).model_extra["description"],  # type: ignore[index]
        "metrics": {"test": {"accuracy": 0.9}},
    }


def test_corrupt_onnx_with_matching_sha(demo: tuple[Path, ModelCard]) -> None:
    path, card = demo
    path.write_bytes(np.random.default_rng(7).bytes(4096))
    write_card(card, path)
    assert_model_error(path, "demo.onnx: ")


@pytest.mark.parametrize("content", [b"", b"\x08\x07" * 64])
def test_empty_onnx_with_matching_sha(demo: tuple[Path, ModelCard], content: bytes) -> None:
    path, card = demo
    path.write_bytes(content)
    write_card(card, path)
    assert_model_error(path, "not a readable ONNX model: it holds no graph")


def test_runtime_load_failure_is_a_model_error(demo: tuple[Path, ModelCard]) -> None:
    path, card = demo
    model = onnx.load(str(path))
    model.graph.node[0].op_type = "NoSuchOp"  # names and shapes still match the card
    onnx.save(model, str(path))
    write_card(card, path)
    load_model(path)
    with pytest.raises(ModelError, match=r"demo\.onnx: ONNX Runtime cannot load the model: "):
        create_engine(OnnxRuntimeSettings(path=path), max_batch=4)


@pytest.mark.skipif(
    importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here"
)
def test_tensorrt_backend_unavailable(demo: tuple[Path, ModelCard]) -> None:
    path, _ = demo
    with pytest.raises(ModelError) as caught:
        create_engine(TensorRtSettings(path=path), max_batch=4)
    assert str(caught.value) == (
        f"{path}: model.backend = 'tensorrt': TensorRT (pip package tensorrt) is not installed"
    )
    assert caught.value.exit_code == EX_CONFIG
