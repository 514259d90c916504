"""One training run end to end: choices from the data, LP-FT (one backbone, or ``auto``),
export, the exported model's evaluation, the card and the report folder."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from inspector.training import export, plots
from inspector.training.backbones import LITE, build_backbone
from inspector.training.datasets import Dataset
from inspector.training.evaluate import evaluate_model, tune_threshold
from inspector.training.features import choose_image_size, to_tensor
from inspector.training.parts import Parts, class_weights, decode_parts
from inspector.training.state import TrainOptions
from inspector.training.trainer import Trainer

AUTO_SHARE = 0.4  # of the budget that auto may spend on probing backbones
AUGMENTATION = ("90-degree turns, horizontal flips (with the turns: all 8 symmetries), "
                "shifts up to 5%, contrast x0.85-1.15, brightness +-15: a surface has no "
                "up or left, and a defect's look is its class")  # fmt: skip
TYPES_ONLY_NOTE = (
    "defect types only: no defect-free class was learned (ok_label null). The daemon "
    "reports a tile as a defect where its best class reaches that class's threshold; it "
    "cannot tell a good tile from a defect. Use it on tiles known to hold a defect, or "
    "retrain with --ok-dir (defect-free images, e.g. from `inspector dataset`)."
)


def say(message: str) -> None:
    print(message, file=sys.stderr)


def train(
    dataset: Dataset,
    options: TrainOptions,
    out: Path,
    progress: Callable[..., Any],
    resume: bool = False,
    size_given: bool = False,
    cache_root: Path | None = None,
) -> dict[str, Any]:
    started = time.monotonic()
    deadline = started + options.budget_min * 60 if options.budget_min else None
    onnx_path = out.with_name(out.name + ".onnx")
    report_dir = out.with_name(out.name + "-report")
    report_dir.mkdir(parents=True, exist_ok=True)
    choices: dict[str, Any] = {}
    if not size_given:
        first = "efficientnet_lite0" if options.backbone == "auto" else options.backbone
        native = LITE[first][2] if first in LITE else 224
        size, why = choose_image_size(dataset.train, native)
        options = replace(options, image_size=size)
        choices["image_size"] = {"value": size, "why": why}
    else:
        choices["image_size"] = {"value": options.image_size, "why": "--image-size"}
    say(f"image size {options.image_size} px: {choices['image_size']['why']}")
    if dataset.ok_label is None:
        say(f"note: {dataset.name}: {TYPES_ONLY_NOTE}")
    parts = decode_parts(dataset, options.image_size, options.limit, progress)
    weights = class_weights(parts.labels["train"], len(dataset.labels))
    choices["class_weights"] = {
        "value": dict(zip(dataset.labels, [round(float(w), 3) for w in weights], strict=True)),
        "why": "inverse class frequency in the training part (mean 1): a rare defect counts "
        "as much as the common class",
    }
    choices["augmentation"] = AUGMENTATION
    choices["lp_ft"] = (
        "a probe (the head fitted on cached features, weight decay by validation), then the "
        "network after its frozen front fine-tuned from it with layer-wise learning-rate "
        "decay and BatchNorm statistics kept; the better of the two on validation is exported"
    )
    checkpoint = report_dir / "checkpoint.pt"
    if options.backbone == "auto":
        trainer, tried = _auto(
            dataset, parts, options, checkpoint, progress, started, deadline, cache_root
        )
        choices["backbone"] = {"value": trainer.backbone.name, "tried": tried,
                               "why": "best validation accuracy of the probes"}  # fmt: skip
        trainer.finetune()
        trainer.use_best()
    else:
        backbone = build_backbone(
            options.backbone, len(dataset.labels), options.weights, options.image_size
        )
        trainer = Trainer(
            backbone,
            parts,
            len(dataset.labels),
            options,
            checkpoint,
            progress,
            deadline,
            cache_root,
        )
        trainer.fit(resume=resume)
        choices["backbone"] = {"value": backbone.name, "why": "--backbone"}
    choices["frozen_front"] = {"value": trainer.front, "why": trainer.front_why}
    choices["lr"] = {"value": trainer.lr, "why": trainer.lr_why}
    state = trainer.state
    finetuned = _finetuned_figures(trainer)
    train_seconds = time.monotonic() - started
    chosen = "probe" if state.best_epoch == 0 else "finetune"
    model = trainer.model.cpu()
    spec = trainer.input_spec
    check = trainer.parts.images["test"][:8]
    check_inputs = to_tensor(check, trainer.normalizer, torch.device("cpu"),
                             False).numpy()  # fmt: skip
    expected = export.reference_logits(model, check_inputs)
    export.export_onnx(model, onnx_path, spec)
    difference = export.check_export(onnx_path, check_inputs, expected)
    say(f"export check: max |ONNX Runtime - PyTorch| = {difference:.2e}")

    training = {
        **{k: str(v) for k, v in asdict(options).items()},
        "backbone": trainer.backbone.name, "chosen": chosen, "best_epoch": state.best_epoch,
        "seconds": round(train_seconds, 1), "stopped_by_budget": state.stopped_by_budget,
        "choices": choices, "probe": state.probe, "finetune": finetuned,
    }  # fmt: skip
    card_extra: dict[str, Any] = {
        "backbone": trainer.backbone.name,
        "dataset": {"name": dataset.name, "split": dataset.split, "counts": dataset.counts()},
        "training": training,
    }
    if dataset.ok_label is None:
        card_extra["classifier"] = TYPES_ONLY_NOTE
        card_extra["thresholds"] = {label: 0.5 for label in dataset.labels}

    def write_card() -> Any:
        return export.write_model_card(
            onnx_path, out.name, dataset.labels, dataset.ok_label, spec, card_extra
        )

    write_card()
    limited = options.limit is not None
    threshold = tune_threshold(onnx_path, dataset) if not limited else None
    if threshold is not None:
        defect = next(label for label in dataset.labels if label != dataset.ok_label)
        card_extra["thresholds"] = {defect: threshold}
        say(f"defect threshold tuned on the validation part: {threshold:g}")
        write_card()
    # The figures that count are the exported model's, run as the daemon runs it.
    test_report = evaluate_model(onnx_path, dataset) if not limited else None
    if test_report is None:  # a --limit run evaluates the same subset it trained on
        test_accuracy, test_loss = trainer.evaluate("test")
        test_report = {"accuracy": test_accuracy, "loss": test_loss, "subset": True}
    accuracy = round(float(test_report["accuracy"]), 4)
    card_extra["metrics"] = {"test": {
        "accuracy": accuracy, "probe_accuracy": state.probe.get("test_accuracy"),
        "finetuned_accuracy": finetuned.get("test_accuracy") if finetuned else None,
    }}  # fmt: skip
    card = write_card()
    metrics = {
        "model": card.name, "sha256": card.sha256, "dataset": dataset.name,
        "device": str(trainer.device), "backbone": trainer.backbone.name,
        "image_size": options.image_size, "chosen": chosen, "best_epoch": state.best_epoch,
        "train_seconds": round(train_seconds, 1),
        "wall_seconds": round(time.monotonic() - started, 1),
        "stopped_by_budget": state.stopped_by_budget, "export_max_difference": difference,
        "probe": state.probe, "finetune": finetuned, "choices": choices,
        "test": test_report, "history": [asdict(r) for r in state.history],
    }  # fmt: skip
    (report_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    plots.plot_curves(state.history, report_dir / "curves.png", state.best_epoch)
    if "confusion_matrix" in test_report:
        plots.plot_confusion(
            test_report["confusion_matrix"], card.labels, report_dir / "confusion.png"
        )
    probe_test = state.probe.get("test_accuracy")
    ft_test = finetuned.get("test_accuracy") if finetuned else None
    say(
        f"{onnx_path}: test accuracy {accuracy:.4f} ({chosen} chosen on validation; probe "
        f"{probe_test}, fine-tuned {ft_test}; {metrics['wall_seconds'] / 60:.1f} min on "
        f"{trainer.device}); report in {report_dir}/"
    )
    return metrics


def _finetuned_figures(trainer: Trainer) -> dict[str, Any]:
    """The best fine-tuning epoch's validation and test figures (for the side-by-side
    report); empty when fine-tuning did not run."""
    epochs = [r for r in trainer.state.history if r.phase == "finetune"]
    if not epochs:
        return {}
    best = max(epochs, key=lambda r: (r.val_accuracy, -r.val_loss))
    figures: dict[str, Any] = {"epochs": len(epochs), "best_epoch": best.epoch,
                               "val_accuracy": best.val_accuracy, "val_loss": best.val_loss,
                               "seconds": round(sum(r.seconds for r in epochs), 1)}  # fmt: skip
    if trainer.state.best_epoch == best.epoch:  # the model in hand is that epoch's
        accuracy, loss = trainer.evaluate("test")
        figures.update(test_accuracy=round(accuracy, 4), test_loss=round(loss, 4))
    else:
        figures["test_accuracy"] = None  # the probe won; its weights are the ones kept
    return figures


def _auto(
    dataset: Dataset,
    parts: Parts,
    options: TrainOptions,
    checkpoint: Path,
    progress: Callable[..., Any],
    started: float,
    deadline: float | None,
    cache_root: Path | None,
) -> tuple[Trainer, list[dict[str, Any]]]:
    """Probe each Lite backbone, smallest first, while the probes stay within AUTO_SHARE
    of the budget; the best on validation goes on to fine-tuning."""
    best: Trainer | None = None
    tried: list[dict[str, Any]] = []
    for name in LITE:
        if best is not None and deadline is not None:
            spent = time.monotonic() - started
            if spent * (1 + 1 / len(tried)) > AUTO_SHARE * (deadline - started):
                break  # the next probe (about as long as the last) would not fit
        backbone = build_backbone(name, len(dataset.labels), None, options.image_size)
        named = replace(options, backbone=name)
        trainer = Trainer(
            backbone,
            parts,
            len(dataset.labels),
            named,
            checkpoint,
            progress,
            deadline,
            cache_root,
        )
        result = trainer.probe()
        tried.append({"backbone": name, "val_accuracy": round(result.val_accuracy, 4),
                      "val_loss": round(result.val_loss, 4)})  # fmt: skip
        if best is None or (result.val_accuracy, -result.val_loss) > (
            best.state.best_val[0],
            -best.state.best_val[1],
        ):
            best = trainer
    assert best is not None
    say(f"backbone auto: {best.backbone.name} (probes: {tried})")
    return best, tried
