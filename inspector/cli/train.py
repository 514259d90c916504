"""``inspector train``: fine-tune a pretrained CNN on defect images, export ONNX + card."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

DESCRIPTION = """\
Transfer learning as in the seed papers, done as a practitioner would: a head-only warm-up,
then the whole network at a lower learning rate (AdamW, cosine schedule), online
augmentation, class weights, early stopping on the validation part, best checkpoint,
fixed seed, resumable. Writes OUT.onnx (dynamic batch, checked against ONNX Runtime),
OUT.json (the model card the daemon reads) and a report folder OUT-report/ with
metrics.json, curves.png and confusion.png. Needs the [train] extra (PyTorch)."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "train",
        help="fine-tune a pretrained CNN and export the model the daemon runs",
        description=DESCRIPTION,
        epilog=(
            "DATA: 'elpv', 'elpv4', or a folder with one sub-folder per class.\n"
            "examples:\n"
            "  inspector train elpv --out engines/elpv-lite0\n"
            "  inspector train /data/leather --out engines/leather --epochs 20\n"
            "  inspector train elpv --out engines/quick --epochs 2 --limit 40 --image-size 96"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("data", metavar="DATA")
    parser.add_argument("--out", type=Path, required=True, help="output stem, e.g. engines/NAME")
    parser.add_argument("--backbone", default="efficientnet_lite0",
                        choices=("efficientnet_lite0", "resnet50", "nasnet"))  # fmt: skip
    parser.add_argument("--weights", type=Path, help="ImageNet weights file (resnet50, nasnet)")
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--warmup-epochs", type=int, default=1, help="head-only epochs first")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-4, help="learning rate after warm-up")
    parser.add_argument("--head-lr", type=float, default=1e-3, help="warm-up learning rate")
    parser.add_argument("--image-size", type=int, default=300)
    parser.add_argument(
        "--patience", type=int, default=6, help="epochs without a lower validation loss"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, help="at most N images per class and part")
    parser.add_argument("--ok-label", help="the defect-free class of a folder dataset")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 …")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = PyTorch's)")
    parser.add_argument(
        "--resume", action="store_true", help="continue from OUT-report/checkpoint.pt"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from inspector.errors import ModelError
    from inspector.training.datasets import load_dataset

    try:
        from inspector.training import export, plots
        from inspector.training.backbones import build_backbone
        from inspector.training.evaluate import evaluate_model, tune_threshold
        from inspector.training.trainer import Trainer, TrainOptions
    except ImportError as exc:
        raise ModelError(
            f"training needs the [train] extra ({exc.name} is missing): "
            "pip install 'line-inspector[train]'"
        ) from None

    dataset = load_dataset(args.data, seed=args.seed, ok_label=args.ok_label)
    options = TrainOptions(
        backbone=args.backbone, weights=args.weights, epochs=args.epochs,
        warmup_epochs=args.warmup_epochs, batch_size=args.batch, head_lr=args.head_lr,
        lr=args.lr, image_size=args.image_size, patience=args.patience, seed=args.seed,
        limit=args.limit, device=args.device, threads=args.threads,
    )  # fmt: skip
    out: Path = args.out
    onnx_path = out.with_name(out.name + ".onnx")
    report_dir = out.with_name(out.name + "-report")
    report_dir.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    backbone = build_backbone(args.backbone, len(dataset.labels), args.weights, args.image_size)
    trainer = Trainer(backbone, dataset, options, report_dir / "checkpoint.pt", tqdm)
    state = trainer.fit(resume=args.resume)
    # Summed per epoch, so a resumed run reports the whole training, not its last leg.
    train_seconds = sum(r.seconds for r in state.history) or time.perf_counter() - started

    spec = trainer.input_spec
    check_inputs = trainer._tensor(trainer.parts["test"][0][:8]).cpu().numpy()
    expected = export.reference_logits(backbone.model, check_inputs)
    export.export_onnx(backbone.model, onnx_path, spec)
    difference = export.check_export(onnx_path, check_inputs, expected)
    print(f"export check: max |ONNX Runtime - PyTorch| = {difference:.2e}", file=sys.stderr)

    card_extra = {
        "backbone": args.backbone,
        "dataset": {"name": dataset.name, "split": dataset.split, "counts": dataset.counts()},
        "training": {**{k: str(v) for k, v in asdict(options).items()},
                     "best_epoch": state.best_epoch, "seconds": round(train_seconds, 1)},
    }  # fmt: skip
    export.write_model_card(onnx_path, out.name, dataset.labels, dataset.ok_label, spec, card_extra)
    limited = args.limit is not None
    threshold = tune_threshold(onnx_path, dataset) if not limited else None
    if threshold is not None:
        defect = next(label for label in dataset.labels if label != dataset.ok_label)
        card_extra["thresholds"] = {defect: threshold}
        print(f"defect threshold tuned on the validation part: {threshold:g}", file=sys.stderr)
        export.write_model_card(
            onnx_path, out.name, dataset.labels, dataset.ok_label, spec, card_extra
        )
    # The figures that count are the exported model's, run as the daemon runs it.
    test_report = evaluate_model(onnx_path, dataset) if not limited else None
    if test_report is None:  # a --limit run evaluates the same subset it trained on
        test_loss, test_accuracy = trainer.evaluate("test")
        test_report = {"accuracy": test_accuracy, "loss": test_loss, "subset": True}
    card_extra["metrics"] = {"test": {"accuracy": round(float(test_report["accuracy"]), 4)}}
    card = export.write_model_card(
        onnx_path, out.name, dataset.labels, dataset.ok_label, spec, card_extra
    )

    metrics = {
        "model": card.name, "sha256": card.sha256, "dataset": dataset.name,
        "device": str(trainer.device), "train_seconds": round(train_seconds, 1),
        "best_epoch": state.best_epoch, "export_max_difference": difference,
        "test": test_report, "history": [asdict(r) for r in state.history],
    }  # fmt: skip
    (report_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    plots.plot_curves(state.history, report_dir / "curves.png", state.best_epoch)
    if "confusion_matrix" in test_report:
        plots.plot_confusion(
            test_report["confusion_matrix"], card.labels, report_dir / "confusion.png"
        )
    print(
        f"{onnx_path}: test accuracy {float(test_report['accuracy']):.4f} "
        f"(best epoch {state.best_epoch}, {train_seconds / 60:.1f} min on {trainer.device}); "
        f"report in {report_dir}/",
        file=sys.stderr,
    )
    return 0
