"""ONNX export with a dynamic batch, checked against PyTorch with ONNX Runtime, plus the card."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from inspector.engines.card import write_card
from inspector.errors import ModelError
from inspector.types.card import InputSpec, ModelCard, OutputSpec

MAX_EXPORT_DIFFERENCE = 1e-3  # on logits; float32 kernels differ, a wrong graph differs by far more


def export_onnx(model: nn.Module, path: Path, spec: InputSpec) -> None:
    # Export the model exactly as trained: no module swaps. (EfficientNet-Lite's
    # ``set_swish`` would put Swish where Lite uses ReLU6 and silently change the model.)
    model.eval()
    dummy = torch.zeros(1, spec.channels, spec.height, spec.width)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # Notes from the exporter about optimisations it skipped (EfficientNet's static
        # "same" padding slices; traced shape arithmetic), printed in red on a good run.
        # What matters is checked: check_export compares ONNX Runtime with PyTorch.
        warnings.filterwarnings("ignore", message="Constant folding", category=UserWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # type: ignore[attr-defined]
        # dynamo=False is deliberate (the TorchScript exporter handles these models); its
        # deprecation notice is for us, not for the user of `inspector train`.
        warnings.filterwarnings(
            "ignore", message=".*legacy TorchScript", category=DeprecationWarning
        )
        warnings.filterwarnings(
            "ignore", message="The feature will be removed", category=DeprecationWarning
        )
        torch.onnx.export(
            model.cpu(),
            (dummy,),
            str(path),
            input_names=[spec.name],
            output_names=["logits"],
            dynamic_axes={spec.name: {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )


def reference_logits(model: nn.Module, inputs: np.ndarray) -> np.ndarray:
    """The trained model's own outputs, taken BEFORE export, so any change the export
    makes to the model shows up as a difference."""
    model.eval()
    with torch.no_grad():
        logits: np.ndarray = model.cpu()(torch.from_numpy(inputs)).numpy()
    return logits


def check_export(path: Path, inputs: np.ndarray, expected: np.ndarray) -> float:
    """Largest |logit difference| between PyTorch and ONNX Runtime on the same inputs."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    actual = session.run(None, {name: inputs})[0]
    difference = float(np.abs(actual - expected).max())
    if not difference <= MAX_EXPORT_DIFFERENCE:
        raise ModelError(
            f"{path}: ONNX Runtime differs from PyTorch by {difference:.2e} "
            f"(> {MAX_EXPORT_DIFFERENCE:.0e}); the export is wrong"
        )
    return difference


def write_model_card(
    path: Path,
    name: str,
    labels: tuple[str, ...],
    ok_label: str | None,
    spec: InputSpec,
    extra: dict[str, Any],
) -> ModelCard:
    card = ModelCard.model_validate(
        {
            "schema": "inspector.model/1",
            "name": name,
            "sha256": "0" * 64,  # replaced by write_card with the file's digest
            "labels": list(labels),
            "ok_label": ok_label,
            "input": spec.model_dump(),
            "output": OutputSpec(name="logits", kind="logits").model_dump(),
            "thresholds": {},
            **extra,
        }
    )
    return write_card(card, path)
