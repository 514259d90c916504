"""``inspector calibrate int8 MODEL.onnx``: a Q/DQ INT8 model for ONNX Runtime and TensorRT."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from inspector.cli.output import print_summary
from inspector.errors import ConfigError

DESCRIPTION = """\
Quantise MODEL.onnx to INT8 by static calibration: ONNX Runtime's quantiser writes
a Q/DQ model (weights int8, symmetric, per channel; the Gemm/MatMul head and the
first and last --float-ends convolutions stay float) and its card. Activations:
--target cpu (default) quantises them unsigned and asymmetric, which ONNX Runtime
runs about twice as fast as FP32 on x86; --target portable quantises them signed
and symmetric, the form TensorRT builds (`inspector build-engine`) and ONNX Runtime
also runs, but slower than FP32 on x86. On --target cpu the weights use 7 of their
8 bits, so that CPUs without VNNI (AVX2) cannot overflow in the fast kernels.

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
        help="calibrate: int8 (a model), camera (lens and scale), flat-field (lighting)",
        description="Calibration commands: int8, camera, flat-field.",
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
    int8.add_argument(
        "--target", choices=("cpu", "portable"), default="cpu",
        help="cpu: unsigned activations, ONNX Runtime's fast x86 kernels (default); portable: "
        "symmetric signed activations, the form TensorRT builds (slower on ONNX Runtime)",
    )  # fmt: skip
    int8.add_argument("--count", type=int, default=256, help="calibration images to use")
    int8.add_argument(
        "--float-ends", type=int, metavar="N",
        help="keep the first and the last N convolutions float (default 6): they carry "
        "the full-resolution detail and the features the head reads",
    )  # fmt: skip
    int8.add_argument("--out", type=Path, help="output (default: MODEL-int8.onnx)")
    int8.add_argument("--seed", type=int, default=0, help="dataset split seed (as in training)")
    int8.add_argument("--ok-label", help="the defect-free class of a folder dataset")
    int8.add_argument("--json", action="store_true", help="print the result as JSON")
    int8.set_defaults(func=run)

    camera = kinds.add_parser(
        "camera",
        help="lens intrinsics, distortion and mm per pixel from checkerboard images",
        description=(
            "Find the checkerboard in every image of DIR, calibrate the camera (OpenCV), report "
            "the reprojection error, and write the camera model the daemon undistorts with "
            "(cameras[].calibration). The millimetre scale comes from the board as it lies in "
            "the images: photograph it flat on the conveyor."
        ),
        epilog=(
            "example: inspector calibrate camera --checkerboard calibration/cam0-board "
            "--pattern 9x6 --square-mm 25 --out calibration/cam0.toml\n"
            "exit status: 0 written; 65 too few boards found or unreadable images."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    camera.add_argument("--checkerboard", type=Path, required=True, metavar="DIR")
    camera.add_argument(
        "--pattern", type=_pattern, default=(9, 6), help="inner corners, COLSxROWS (9x6)"
    )
    camera.add_argument("--square-mm", type=float, required=True, help="square edge in mm")
    camera.add_argument(
        "--scale-image", type=Path, metavar="FILE",
        help="the image of the board lying flat on the conveyor (default: all images)",
    )  # fmt: skip
    camera.add_argument("--out", type=Path, required=True, help="e.g. calibration/cam0.toml")
    camera.add_argument("--json", action="store_true")
    camera.set_defaults(func=run_camera)

    flat = kinds.add_parser(
        "flat-field",
        help="per-pixel gain and offset from dark and white reference frames",
        description=(
            "Average the dark frames (lens capped) and the white frames (an even white target "
            "under the line's lighting) into a per-pixel correction applied before tiling "
            "(cameras[].flat_field). Saturated and dead pixels are reported and left as they are."
        ),
        epilog=(
            "example: inspector calibrate flat-field --dark calibration/cam0-dark "
            "--white calibration/cam0-white --out calibration/cam0-flat.npz"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    flat.add_argument("--dark", type=Path, required=True, metavar="DIR")
    flat.add_argument("--white", type=Path, required=True, metavar="DIR")
    flat.add_argument("--out", type=Path, required=True, help="e.g. calibration/cam0-flat.npz")
    flat.add_argument("--json", action="store_true")
    flat.set_defaults(func=run_flat_field)


def _pattern(text: str) -> tuple[int, int]:
    try:
        cols, rows = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected COLSxROWS such as 9x6, got {text}") from None
    if cols < 2 or rows < 2:
        raise argparse.ArgumentTypeError(f"a board needs at least 2x2 inner corners, got {text}")
    return cols, rows


def run_camera(args: argparse.Namespace) -> int:
    from inspector.calibration.int8 import images_in
    from inspector.calibration.lens import calibrate_lens
    from inspector.preprocess.calibration_files import save_camera_model

    if args.square_mm <= 0:
        raise ConfigError(f"calibrate camera: --square-mm must be > 0, got {args.square_mm}")
    images = images_in(args.checkerboard)
    scale_image = args.scale_image
    if scale_image is not None:
        known = {p.resolve(): p for p in images}
        scale_image = known.get(scale_image.resolve(), scale_image)
        if scale_image not in images:
            images.append(scale_image)  # it is a board image too
    result = calibrate_lens(images, args.pattern, args.square_mm, scale_image)
    model = result.model
    save_camera_model(
        model, args.out, comment=f"{len(result.used)} boards from {args.checkerboard}"
    )
    summary = {
        "out": str(args.out),
        "images_used": len(result.used),
        "images_skipped": [str(p) for p in result.skipped],
        "rms_px": round(model.rms_px, 4),
        "mm_per_px": round(model.mm_per_px or 0.0, 6),
        "fx": model.camera_matrix[0, 0],
        "fy": model.camera_matrix[1, 1],
        "distortion": [round(float(v), 6) for v in model.distortion],
    }
    print_summary(
        summary,
        f"{args.out}: {len(result.used)} boards ({len(result.skipped)} images without one), "
        f"reprojection error {model.rms_px:.3f} px, {summary['mm_per_px']} mm/px",
        args.json,
    )
    return 0


def run_flat_field(args: argparse.Namespace) -> int:
    from inspector.calibration.flat_field import build_flat_field
    from inspector.calibration.int8 import images_in
    from inspector.preprocess.calibration_files import save_flat_field

    report = build_flat_field(images_in(args.dark), images_in(args.white))
    save_flat_field(report.flat, args.out)
    summary = {
        "out": str(args.out),
        "dark_frames": report.dark_frames,
        "white_frames": report.white_frames,
        "saturated_pixels": report.saturated_pixels,
        "dead_pixels": report.dead_pixels,
    }
    print_summary(
        summary,
        f"{args.out}: from {report.dark_frames} dark and {report.white_frames} white frames; "
        f"{report.saturated_pixels} saturated and {report.dead_pixels} dead pixels left "
        "uncorrected",
        args.json,
    )
    return 0


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
        target=args.target,
        float_ends=args.float_ends,
    )
    summary: dict[str, Any] = {
        "model": str(args.model),
        "int8_model": str(result.path),
        "method": result.method,
        "target": args.target,
        # A histogram method may have read fewer (capped to fit in memory): the card says.
        "calibration_images": result.card.model_extra["quantization"]["calibration_images"]
        if result.card.model_extra
        else len(paths),
        "validation_accuracy_by_method": result.tried,
    }
    if result.fp32 is not None and result.int8 is not None:
        summary["fp32_test_accuracy"] = result.fp32["accuracy"]
        summary["int8_test_accuracy"] = result.int8["accuracy"]
        summary["accuracy_change"] = round(result.int8["accuracy"] - result.fp32["accuracy"], 4)
    line = f"{result.path}: INT8 ({result.method}) from {summary['calibration_images']} images"
    if "accuracy_change" in summary:
        line += (
            f"; test accuracy {summary['fp32_test_accuracy']:.4f} (FP32) -> "
            f"{summary['int8_test_accuracy']:.4f} (INT8), "
            f"{summary['accuracy_change'] * 100:+.2f} points"
        )
    print_summary(summary, line, args.json)
    return 0
