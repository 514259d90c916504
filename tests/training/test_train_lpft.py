"""LP-FT on real ELPV cells: probe, fine-tuning from the probe, budget stop, resume, Lite1,
and the ResNet50 state_dict round trip and export. Short runs at 64 px on small subsets."""

from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from inspector.engines.card import load_model
from tests.fixtures import processes

torch = pytest.importorskip("torch", reason="training needs the [train] extra (PyTorch)")

QUICK = ("--image-size", "64", "--threads", "2", "--batch", "16", "--views", "1",
         "--feature-cache", "none")  # fmt: skip


inspector = partial(processes.inspector, timeout=600)  # a training run takes minutes


def metrics_of(out: Path) -> dict:  # type: ignore[type-arg]
    return json.loads(out.with_name(out.name + "-report").joinpath("metrics.json").read_text())


@pytest.fixture(scope="module")
def elpv_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("lpft") / "elpv"
    result = inspector("train", "elpv", "--out", str(out), "--limit", "40", "--epochs", "2",
                       "--lr", "1e-4", *QUICK)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result.stderr


def test_probe_then_finetune_reports_both_and_exports_the_better(
    elpv_run: tuple[Path, str],
) -> None:
    out, stderr = elpv_run
    metrics = metrics_of(out)
    assert [r["phase"] for r in metrics["history"]] == ["probe", "finetune", "finetune"]
    probe, finetune = metrics["probe"], metrics["finetune"]
    assert probe["weight_decay"] in [g["weight_decay"] for g in probe["grid"]]
    assert len(probe["grid"]) >= 3  # the weight decay was chosen among several
    assert 0.0 <= probe["test_accuracy"] <= 1.0 and finetune["epochs"] == 2
    # The kept model is the better of the two on validation.
    best_val = max(r["val_accuracy"] for r in metrics["history"])
    kept = metrics["history"][metrics["best_epoch"]]
    assert kept["val_accuracy"] == best_val
    assert metrics["chosen"] == ("probe" if metrics["best_epoch"] == 0 else "finetune")
    card = load_model(out.with_name("elpv.onnx")).model_dump()
    assert card["training"]["probe"]["val_accuracy"] == probe["val_accuracy"]
    assert card["metrics"]["test"]["probe_accuracy"] == probe["test_accuracy"]
    assert card["training"]["choices"]["image_size"]["why"] == "--image-size"
    front = metrics["choices"]["frozen_front"]
    assert front["value"] > 0 and "stride up to 8" in front["why"], front
    assert metrics["export_max_difference"] <= 1e-3
    # A successful run prints no warning (issue 18: nothing red on success).
    assert "Warning" not in stderr and "warn(" not in stderr, stderr[-2000:]


def test_first_finetune_epoch_keeps_the_probes_validation_accuracy(
    elpv_run: tuple[Path, str],
) -> None:
    history = metrics_of(elpv_run[0])["history"]
    probe, first = history[0], history[1]
    assert first["phase"] == "finetune"
    assert first["val_accuracy"] >= probe["val_accuracy"], history


def test_resume_continues_after_the_last_finetuning_epoch(elpv_run: tuple[Path, str]) -> None:
    out, _ = elpv_run
    result = inspector("train", "elpv", "--out", str(out), "--limit", "40", "--epochs", "3",
                       "--resume", *QUICK)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resumed from" in result.stderr and "at fine-tuning epoch 3" in result.stderr
    assert "probe:" not in result.stderr  # the probe came from the checkpoint
    history = metrics_of(out)["history"]
    assert [(r["phase"], r["epoch"]) for r in history] == [
        ("probe", 0), ("finetune", 1), ("finetune", 2), ("finetune", 3),
    ]  # fmt: skip


def test_budget_stops_finetuning_with_the_best_model_so_far(tmp_path: Path) -> None:
    out = tmp_path / "budget"
    started = time.monotonic()
    result = inspector("train", "elpv", "--out", str(out), "--limit", "16", "--epochs", "500",
                       "--budget-min", "0.5", *QUICK)  # fmt: skip
    wall = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = metrics_of(out)
    assert metrics["stopped_by_budget"] is True
    assert "stopped at the --budget-min wall time" in result.stderr
    finetuned = [r for r in metrics["history"] if r["phase"] == "finetune"]
    assert len(finetuned) < 500
    # The budget, plus what may overrun it: the probe (it always completes) and the
    # validation pass of the epoch the budget cut short.
    assert metrics["train_seconds"] < 30 + metrics["probe"]["seconds"] + 20
    assert wall < 300, wall  # process start, export and evaluation included
    load_model(out.with_name("budget.onnx"))


def test_lite1_probe_only(tmp_path: Path) -> None:
    out = tmp_path / "lite1"
    result = inspector("train", "elpv", "--out", str(out), "--limit", "4", "--epochs", "0",
                       "--backbone", "efficientnet_lite1", *QUICK)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    card = load_model(out.with_name("lite1.onnx")).model_dump()
    assert card["backbone"] == "efficientnet_lite1"
    assert card["training"]["chosen"] == "probe"
    assert [r["phase"] for r in metrics_of(out)["history"]] == ["probe"]


def test_resnet50_loads_torchvision_weights_and_exports(tmp_path: Path) -> None:
    from inspector.training import export
    from inspector.training.backbones import build_backbone
    from inspector.training.resnet import ResNet50Body
    from inspector.types.card import InputSpec

    torch.manual_seed(0)
    source = ResNet50Body()  # random weights: the round trip, not ImageNet, is under test
    state = dict(source.state_dict())
    state["fc.weight"], state["fc.bias"] = torch.zeros(1000, 2048), torch.zeros(1000)
    weights = tmp_path / "resnet50.pth"
    torch.save(state, weights)  # what torchvision's resnet50().state_dict() holds

    backbone = build_backbone("resnet50", 3, weights)
    loaded = backbone.body.state_dict()
    assert set(loaded) == set(source.state_dict())
    assert all(torch.equal(loaded[k], v) for k, v in source.state_dict().items())
    # The metal-strip paper's head: Dense(128) then the classes.
    linears = [m for m in backbone.head.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(2048, 128), (128, 3)]

    spec = InputSpec(name="input", height=64, width=64, color="rgb", scale=255.0,
                     mean=backbone.mean, std=backbone.std)  # fmt: skip
    inputs = np.random.default_rng(0).normal(size=(3, 3, 64, 64)).astype(np.float32)
    expected = export.reference_logits(backbone.model, inputs)
    export.export_onnx(backbone.model, tmp_path / "r50.onnx", spec)
    assert export.check_export(tmp_path / "r50.onnx", inputs, expected) <= 1e-3

    del state["layer4.2.conv3.weight"]
    torch.save(state, weights)
    from inspector.errors import ModelError

    with pytest.raises(ModelError, match="not torchvision ResNet50 weights"):
        build_backbone("resnet50", 3, weights)


def test_feature_cache_keys_on_images_view_and_body(tmp_path: Path) -> None:
    from inspector.training.features import FeatureCache

    cache = FeatureCache(tmp_path, ["efficientnet_lite0", "64"])
    features = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert cache.load(["a.png", "b.png"], 0) is None
    cache.save(["a.png", "b.png"], 0, features, 0.25)
    hit = cache.load(["a.png", "b.png"], 0)
    assert hit is not None and np.array_equal(hit[0], features) and hit[1] == 0.25
    assert cache.load(["a.png", "b.png"], 1) is None  # another augmented view
    assert cache.load(["a.png", "c.png"], 0) is None  # other images
    assert FeatureCache(tmp_path, ["efficientnet_lite1", "64"]).load(["a.png", "b.png"], 0) is None
    assert FeatureCache(None, []).load(["a.png"], 0) is None  # off
