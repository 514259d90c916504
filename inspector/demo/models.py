"""A tiny, real ONNX classifier whose verdicts follow simple colour rules.

It lets the whole pipeline (card checks, ONNX Runtime, batching, events) run
before any network has been trained, and gives tests a model whose right
answers are known: dark tiles are ``ok``, bright/white tiles are ``crack``,
red tiles are ``stain``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from inspector.engines.card import ModelCard, write_card

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

_DESCRIPTION = (
    "Synthetic rule-based model for tests and the demo before a network is trained: "
    "global average of the RGB channels (normalised to [-1, 1]) -> one linear layer. "
    "Dark tiles score 'ok', bright/white tiles 'crack', red tiles 'stain'. "
    "It has learned nothing; do not use it on a real line."
)


def color_model_proto(size: int = 224) -> onnx.ModelProto:
    """The demo network: GlobalAveragePool -> Flatten -> Gemm, input [batch, 3, size, size]."""
    graph = helper.make_graph(
        nodes=[
            helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["means"], axis=1),
            helper.make_node("Gemm", ["means", "weights", "bias"], ["logits"]),
        ],
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
        ],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="inspector.demo",
        doc_string=_DESCRIPTION,
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def build_color_model(onnx_path: Path, size: int = 224, name: str = "demo-color") -> ModelCard:
    """Write the demo model to ``onnx_path`` and its card beside it; return the card."""
    onnx_path = Path(onnx_path)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(color_model_proto(size), str(onnx_path))
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
