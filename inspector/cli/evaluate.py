"""``inspector evaluate``: a model's accuracy on a dataset's test part, through ONNX Runtime."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "evaluate",
        help="evaluate an ONNX model on a dataset",
        description=(
            "Run MODEL.onnx on the engine the line uses (--backend, --precision), exactly as "
            "the daemon does (same preprocessing, same thresholds from the card), over a "
            "dataset's test part, and report accuracy, "
            "per-class precision/recall/F1 and the confusion matrix."
        ),
        epilog=(
            "DATA is 'elpv' (binary functional/defective), 'elpv4' (four defect-probability "
            "classes), or a folder with one sub-folder per class (optionally inside "
            "train/ val/ test/).\n"
            "examples:\n"
            "  inspector evaluate engines/elpv-lite0.onnx elpv\n"
            "  inspector evaluate engines/leather.onnx /data/leather --json > metrics.json"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", type=Path, metavar="MODEL.onnx")
    parser.add_argument("data", metavar="DATA")
    parser.add_argument("--part", choices=("train", "val", "test"), default="test")
    parser.add_argument("--seed", type=int, default=0, help="split seed (must match training's)")
    parser.add_argument("--ok-label", help="the defect-free class of a folder dataset")
    parser.add_argument("--batch", type=int, default=32, help="images per engine call")
    parser.add_argument("--threads", type=int, default=0, help="engine threads (0 = all cores)")
    parser.add_argument(
        "--backend",
        default="onnxruntime",
        help="the engine the line uses: onnxruntime (default), openvino, tensorrt",
    )
    parser.add_argument(
        "--precision", help="openvino: f32, bf16 or int8; tensorrt: fp32, fp16 or int8"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from inspector.engines.card import card_path, read_card
    from inspector.training.datasets import load_dataset
    from inspector.training.evaluate import evaluate_model

    # A type classifier (card without an ok class) is scored on defect types only.
    types_only = not read_card(card_path(args.model)).has_ok
    dataset = load_dataset(args.data, seed=args.seed, ok_label=args.ok_label, types_only=types_only)
    report = evaluate_model(
        args.model,
        dataset,
        part=args.part,
        batch_size=args.batch,
        threads=args.threads,
        progress=not args.json and sys.stderr.isatty(),
        backend=args.backend,
        precision=args.precision,
    )
    if args.json:
        print(json.dumps(report))
    else:
        print(format_report(report))
    return 0


def format_report(report: dict[str, Any]) -> str:
    labels = report["labels"]
    width = max(len(label) for label in labels) + 2
    lines = [
        f"{report['model']} on {report['dataset']} ({report['part']}, {report['samples']} images): "
        f"accuracy {report['accuracy']:.4f}, macro F1 {report['macro_f1']:.4f}",
        "",
        f"{'class':<{width}}precision  recall     f1  support",
    ]
    for label, row in report["per_class"].items():
        lines.append(
            f"{label:<{width}}{row['precision']:>9.4f} {row['recall']:>7.4f} {row['f1']:>6.4f} "
            f"{row['support']:>8d}"
        )
    lines += ["", "confusion matrix (rows: true, columns: predicted)"]
    lines.append(" " * width + "".join(f"{label[:8]:>9}" for label in labels))
    for label, row in zip(labels, report["confusion_matrix"], strict=True):
        lines.append(f"{label:<{width}}" + "".join(f"{count:>9d}" for count in row))
    return "\n".join(lines)
