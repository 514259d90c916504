"""A short real LP-FT run (EfficientNet-Lite0, pretrained weights), export check, card, report."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.engines.card import load_model
from inspector.errors import EX_CONFIG
from tests.fixtures import processes

pytest.importorskip("torch", reason="training needs the [train] extra (PyTorch)")


inspector = partial(processes.inspector, timeout=600)  # a training run takes minutes


def make_dataset(root: Path, per_class: int = 30) -> Path:
    rng = np.random.default_rng(0)
    for label, colour in {"ok": 70, "scratch": 200}.items():
        (root / label).mkdir(parents=True)
        for index in range(per_class):
            image = np.clip(colour + rng.normal(0, 12, (80, 80)), 0, 255).astype(np.uint8)
            cv2.imwrite(str(root / label / f"{index}.png"), image)  # gray, as EL images are
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("train")
    data = make_dataset(root / "parts")
    out = root / "engines" / "tiny"
    result = inspector(
        "train", str(data), "--out", str(out), "--epochs", "2", "--image-size", "64",
        "--batch", "8", "--threads", "2", "--views", "1", "--feature-cache", "none",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "export check: max |ONNX Runtime - PyTorch|" in result.stderr
    return out


def test_training_exports_a_model_the_daemon_accepts(trained: Path) -> None:
    onnx_path = trained.with_name("tiny.onnx")
    card = load_model(onnx_path)  # sha256 and graph checked against the card
    assert card.labels == ("ok", "scratch")
    assert card.ok_label == "ok"
    assert (card.input.height, card.input.width, card.input.color) == (64, 64, "rgb")
    assert card.output.kind == "logits"
    extra = card.model_dump()
    assert extra["backbone"] == "efficientnet_lite0"
    assert extra["dataset"]["split"]["seed"] == 0


def test_training_report_has_metrics_history_and_plots(trained: Path) -> None:
    report = trained.with_name("tiny-report")
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["export_max_difference"] <= 1e-3
    assert [r["phase"] for r in metrics["history"]] == ["probe", "finetune", "finetune"]
    for key in ("train_loss", "val_accuracy", "val_loss"):
        assert key in metrics["history"][1]
    test = metrics["test"]
    assert set(test["per_class"]) == {"ok", "scratch"}
    assert sum(map(sum, test["confusion_matrix"])) == 6  # 10% of 2 x 30 images
    # Two grey levels: the probe alone separates them.
    assert metrics["probe"]["val_accuracy"] == 1.0
    for plot in ("curves.png", "confusion.png"):
        assert (report / plot).stat().st_size > 5000
    evaluated = inspector(
        "evaluate",
        str(trained.with_name("tiny.onnx")),
        str(report.parent.parent / "parts"),
        "--json",
    )
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["accuracy"] == test["accuracy"]


def test_backbone_without_weights_is_refused_clearly(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "parts", per_class=10)
    result = inspector("train", str(data), "--out", str(tmp_path / "r"), "--backbone", "resnet50")
    assert result.returncode == EX_CONFIG
    assert "--backbone resnet50: give its ImageNet weights with --weights FILE" in result.stderr


def test_export_check_catches_a_model_changed_after_training(tmp_path: Path) -> None:
    import torch

    from inspector.errors import ModelError
    from inspector.training import export
    from inspector.types.card import InputSpec

    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        torch.nn.Linear(4, 2),
    )  # fmt: skip
    spec = InputSpec(name="input", height=16, width=16, color="rgb", scale=255.0,
                     mean=(0.5,) * 3, std=(0.5,) * 3)  # fmt: skip
    inputs = np.random.default_rng(0).normal(size=(5, 3, 16, 16)).astype(np.float32)
    expected = export.reference_logits(model, inputs)
    export.export_onnx(model, tmp_path / "same.onnx", spec)
    assert export.check_export(tmp_path / "same.onnx", inputs, expected) < 1e-4  # dynamic batch
    with torch.no_grad():
        model[3].bias += 1.0  # what a module swap during export would do to the outputs
    export.export_onnx(model, tmp_path / "changed.onnx", spec)
    with pytest.raises(ModelError, match="differs from PyTorch"):
        export.check_export(tmp_path / "changed.onnx", inputs, expected)


def test_the_tuned_threshold_is_the_best_on_validation(trained: Path) -> None:
    from inspector.training.datasets import load_dataset
    from inspector.training.evaluate import predict, tune_threshold

    dataset = load_dataset(str(trained.parent.parent / "parts"))
    model = trained.with_suffix(".onnx")
    threshold = tune_threshold(model, dataset)
    assert threshold is not None and 0.2 <= threshold <= 0.8
    card, probabilities, truth = predict(model, dataset, "val")
    defect = card.labels.index("scratch")
    is_defect = np.asarray(truth) == defect

    def accuracy(t: float) -> float:
        return float(((probabilities[:, defect] >= t) == is_defect).mean())

    assert accuracy(threshold) == max(accuracy(t) for t in np.linspace(0.2, 0.8, 61))


def test_the_rate_warms_up_then_decays_to_zero_when_the_budget_ends() -> None:
    from inspector.training.schedule import rate_factor, schedule_progress

    assert rate_factor(0.0, 0, 10) == pytest.approx(0.1)  # warm-up: 1/10 at the first step
    assert rate_factor(0.0, 9, 10) == pytest.approx(1.0)
    assert rate_factor(0.5, 50, 10) == pytest.approx(0.5)
    assert rate_factor(1.0, 99, 10) == pytest.approx(0.0)
    # No budget: by steps of all epochs.
    assert schedule_progress(30, 60, 0.0, None, now=1e6) == pytest.approx(0.5)
    # A budget: by wall time when that is further along, so the schedule ends with it...
    assert schedule_progress(5, 600, 100.0, 200.0, now=150.0) == pytest.approx(0.5)
    assert schedule_progress(5, 600, 100.0, 200.0, now=300.0) == 1.0
    # ...and by steps when the epochs run out first: never at rate 0 with epochs to go.
    assert schedule_progress(300, 600, 100.0, 10_000.0, now=101.0) == pytest.approx(0.5)
