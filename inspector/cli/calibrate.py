"""``inspector calibrate int8 MODEL.onnx``: a Q/DQ INT8 model for ONNX Runtime and TensorRT."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from inspector.errors import ConfigError

DESCRIPTION = """\
Quantise MODEL.onnx to INT8 by static calibration: ONNX Runtime's quantiser writes
a Q/DQ model (weights int8 per channel, activations int8 per tensor, both
symmetric) and its card. The same file runs on the CPU with ONNX Runtime and
builds into a TensorRT INT8 engine (`inspector build-engine`).

Calibration images: --images DIR (e.g. calibration/<line>/: tiles as the camera sees
them), or the train part of --dataset. With --dataset the calibration method is
chosen by measuring each on its validation part (--method auto), and the accuracy
of the FP32 and INT8 models on its test part is reported.
"""

EPILOG = """\
examples:
  inspector calibrate int8 engines/elpv-lite0.onnx --dataset elpv
  inspector calibrate int8 engines/leather.onnx --images calibration/leather --method entropy

exit status: 0 written; 65 bad image folder or dataset; 78 bad model or arguments.
"""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "calibrate",
        help="calibrate a model: int8 (static quantisation)",
        description="Calibration commands.",
    )
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    int8 = kinds.add_parser(
        "int8",
        help="quantise an ONNX model to INT8 (Q/DQ) from calibration images",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    int8.add_argument("model", type=Path, metavar="MODEL.onnx")
    int8.add_argument("--images", type=Path, metavar="DIR", help="calibration images")
    int8.add_argument("--dataset", metavar="DATA", help="elpv, elpv4 or a folder per class")
    int8.add_argument(
        "--method", choices=("auto", "minmax", "percentile", "entropy"), default="auto"
    )
    int8.add_argument("--count", type=int, default=256, help="calibration images to use")
    int8.add_argument("--out", type=Path, help="output (default: MODEL-int8.onnx)")
    int8.add_argument("--seed", type=int, default=0, help="dataset split seed (as in training)")
    int8.add_argument("--ok-label", help="the defect-free class of a folder dataset")
    int8.add_argument("--json", action="store_true", help="print the result as JSON")
    int8.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from inspector.calibration.int8 import calibrate_int8, default_output, images_in, pick
    from inspector.training.datasets import load_dataset
    from inspector.training.evaluate import evaluate_model

    if args.images is None and args.dataset is None:
        raise ConfigError("calibrate int8: give --images DIR or --dataset DATA (or both)")
    if args.count < 1:
        raise ConfigError(f"calibrate int8: --count must be >= 1, got {args.count}")
    dataset = load_dataset(args.dataset, args.seed, args.ok_label) if args.dataset else None
    if args.images is not None:
        pool = images_in(args.images)
    else:
        assert dataset is not None
        pool = [sample.path for sample in dataset.train]
    paths = pick(pool, args.count, args.seed)
    out = args.out or default_output(args.model)

    def evaluate(model: Path, part: str) -> dict[str, Any]:
        assert dataset is not None
        return evaluate_model(model, dataset, part=part)

    def tried(method: str, accuracy: float) -> None:
        print(f"calibrate int8: {method:<10} validation accuracy {accuracy:.4f}", file=sys.stderr)

    print(f"calibrate int8: {len(paths)} calibration images", file=sys.stderr)
    result = calibrate_int8(
        args.model,
        out,
        paths,
        args.method,
        evaluate if dataset is not None else None,
        on_method=tried,
    )
    summary: dict[str, Any] = {
        "model": str(args.model),
        "int8_model": str(result.path),
        "method": result.method,
        "calibration_images": len(paths),
        "validation_accuracy_by_method": result.tried,
    }
    if result.fp32 is not None and result.int8 is not None:
        summary["fp32_test_accuracy"] = result.fp32["accuracy"]
        summary["int8_test_accuracy"] = result.int8["accuracy"]
        summary["accuracy_change"] = round(result.int8["accuracy"] - result.fp32["accuracy"], 4)
    if args.json:
        print(json.dumps(summary))
    else:
        line = f"{result.path}: INT8 ({result.method}) from {len(paths)} images"
        if "accuracy_change" in summary:
            line += (
                f"; test accuracy {summary['fp32_test_accuracy']:.4f} (FP32) -> "
                f"{summary['int8_test_accuracy']:.4f} (INT8), "
                f"{summary['accuracy_change'] * 100:+.2f} points"
            )
        print(line, file=sys.stderr)
    return 0
