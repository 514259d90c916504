"""Test-only models and references.

A tiny, real ONNX classifier whose verdicts follow simple colour rules lets the
whole pipeline (card checks, ONNX Runtime, batching, events) run before any
network has been trained, and gives tests a model whose right answers are known:
dark tiles are ``ok``, bright/white tiles are ``crack``, red tiles are ``stain``.

:func:`normalize_reference` is the model card's input formula done the obvious,
slow way, to check :class:`~inspector.engines.normalize.TileNormalizer` against.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from inspector.engines.card import write_card
from inspector.engines.normalize import BT601_RGB, Tiles, _as_batch
from inspector.types.card import InputSpec, ModelCard

OPSET = 17
# IR 8 is the oldest that carries opset 17; keeping it low lets older
# onnxruntime builds (e.g. on the GPU machine) open the file.
IR_VERSION = 8
LABELS = ("ok", "crack", "stain")

# Gemm weights, rows = input channel means (r, g, b) in [-1, 1], columns = labels:
#   ok    = 0
#   crack = 4 * (r + g + b) - 6   bright tiles (all channels high)
#   stain = 4 * (r - g - b) - 6   red tiles (red high, green and blue low)
_WEIGHTS = np.array([[0.0, 4.0, 4.0], [0.0, 4.0, -4.0], [0.0, 4.0, -4.0]], dtype=np.float32)
_BIAS = np.array([0.0, -6.0, -6.0], dtype=np.float32)
_BUSY_CHANNELS = 64

_DESCRIPTION = (
    "Synthetic rule-based model for tests and the demo before a network is trained: "
    "global average of the RGB channels (normalised to [-1, 1]) -> one linear layer. "
    "Dark tiles score 'ok', bright/white tiles 'crack', red tiles 'stain'. "
    "It has learned nothing; do not use it on a real line."
)


def _busy_branch(layers: int) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """``layers`` 3x3 convolutions whose pooled result is multiplied by zero and added to the
    logits: the same verdicts at a known extra cost (tests of back-pressure and drops)."""
    rng = np.random.default_rng(0)
    nodes, weights, current, channels = [], [], "input", 3
    for i in range(layers):
        # Variance-preserving weights and a tanh: activations stay near 1 however deep the
        # stack, so no overflow to inf/NaN and no slow denormals make the cost erratic.
        scale = 1 / np.sqrt(channels * 9)
        kernel = rng.normal(0, scale, (_BUSY_CHANNELS, channels, 3, 3)).astype(np.float32)
        weights.append(numpy_helper.from_array(kernel, f"busy_w{i}"))
        nodes.append(
            helper.make_node("Conv", [current, f"busy_w{i}"], [f"busy_c{i}"], pads=[1] * 4)
        )
        nodes.append(helper.make_node("Tanh", [f"busy_c{i}"], [f"busy{i}"]))
        current, channels = f"busy{i}", _BUSY_CHANNELS
    zeros = np.zeros((_BUSY_CHANNELS, len(LABELS)), np.float32)
    weights.append(numpy_helper.from_array(zeros, "busy_zero"))
    nodes += [
        helper.make_node("GlobalAveragePool", [current], ["busy_pooled"]),
        helper.make_node("Flatten", ["busy_pooled"], ["busy_flat"], axis=1),
        helper.make_node("MatMul", ["busy_flat", "busy_zero"], ["busy_nothing"]),
        helper.make_node("Add", ["color_logits", "busy_nothing"], ["logits"]),
    ]
    return nodes, weights


def color_model_proto(size: int = 224, busy_layers: int = 0) -> onnx.ModelProto:
    """The demo network: GlobalAveragePool -> Flatten -> Gemm, input [batch, 3, size, size]."""
    nodes = [
        helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["means"], axis=1),
        helper.make_node(
            "Gemm", ["means", "weights", "bias"], ["color_logits" if busy_layers else "logits"]
        ),
    ]
    busy_nodes, busy_weights = _busy_branch(busy_layers) if busy_layers else ([], [])
    graph = helper.make_graph(
        nodes=nodes + busy_nodes,
        name="demo_color",
        inputs=[
            helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, size, size])
        ],
        outputs=[
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", len(LABELS)])
        ],
        initializer=[
            numpy_helper.from_array(_WEIGHTS, "weights"),
            numpy_helper.from_array(_BIAS, "bias"),
            *busy_weights,
        ],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="tests.models",
        doc_string=_DESCRIPTION,
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def build_color_model(
    onnx_path: Path, size: int = 224, name: str = "demo-color", busy_layers: int = 0
) -> ModelCard:
    """Write the demo model to ``onnx_path`` and its card beside it; return the card."""
    onnx_path = Path(onnx_path)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(color_model_proto(size, busy_layers), str(onnx_path))
    card = ModelCard.model_validate(
        {
            "schema": "inspector.model/1",
            "name": name,
            "sha256": "0" * 64,  # write_card puts the file's real hash here
            "labels": list(LABELS),
            "ok_label": "ok",
            "input": {
                "name": "input",
                "height": size,
                "width": size,
                "color": "rgb",
                "scale": 255.0,
                "mean": [0.5, 0.5, 0.5],
                "std": [0.5, 0.5, 0.5],
            },
            "output": {"name": "logits", "kind": "logits"},
            "thresholds": {"crack": 0.5, "stain": 0.5},
            "backbone": "synthetic",
            "dataset": {"name": "synthetic"},
            "description": _DESCRIPTION,
        }
    )
    return write_card(card, onnx_path)


def normalize_reference(tiles: Tiles, card: ModelCard | InputSpec) -> npt.NDArray[np.float64]:
    """The card's formula done the obvious, slow way (float64), for tests.

    Tiles must already be at the model's input size; channel handling is as
    :class:`TileNormalizer` documents.
    """
    spec = card.input if isinstance(card, ModelCard) else card
    pixels = _as_batch(tiles).astype(np.float64)
    if pixels.shape[1:3] != (spec.height, spec.width):
        raise ValueError(
            f"tiles are {pixels.shape[1:3]}, the model takes {spec.height, spec.width}"
        )
    if pixels.ndim == 4:
        rgb = pixels[..., ::-1]
        if spec.color == "gray":
            weights = np.asarray(BT601_RGB)
            pixels = (rgb * weights).sum(axis=-1)[..., None]
        else:
            pixels = rgb
    else:
        pixels = np.repeat(pixels[..., None], spec.channels, axis=-1)
    mean = np.asarray(spec.mean)
    std = np.asarray(spec.std)
    result: npt.NDArray[np.float64] = ((pixels / spec.scale - mean) / std).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(result)
