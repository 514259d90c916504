"""``inspector build-engine``: build the TensorRT plan of a model for the GPU of this machine."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from inspector.cli.arguments import positive_float, positive_int
from inspector.errors import EX_USAGE

DESCRIPTION = """\
Build the TensorRT plan the daemon runs with model.backend = 'tensorrt'.

A plan only works on the GPU model, compute capability and TensorRT version it
was built with: build it on the line PC itself, and again after a TensorRT or
model update (the daemon refuses a stale plan and prints the command to run).
It is written beside the model as NAME.PRECISION.smCC.trtX.Y.plan, with its
metadata in NAME.PRECISION.smCC.trtX.Y.plan.json; kernel timings are kept in
NAME.smCC.trtX.Y.timing.cache, so later builds are quicker.

Precision: a model with QuantizeLinear/DequantizeLinear nodes (from
'inspector calibrate int8') builds as INT8, as it is; --fp16 builds a float model
in FP16 (on TensorRT 11, which has no FP16 flag, the model is converted first
and that needs the package onnxconverter-common); otherwise FP32.
"""

EPILOG = """\
examples:
  inspector build-engine engines/elpv-lite0.onnx --fp16
  inspector build-engine engines/leather.int8.onnx --max-batch 64 --contexts 3
  inspector build-engine engines/demo-color.onnx --max-batch 8 --json

--max-batch must be at least the daemon's batching.max_batch, and --contexts at
least the batches it keeps in flight; the daemon's error message gives both.

exit codes:
  0   the plan was built
  2   bad arguments
  64  batch sizes out of order (1 <= min <= opt <= max)
  69  a CUDA call failed (out of memory, device lost)
  78  TensorRT or cuda-python is not installed, no GPU is visible, or the model
      is bad (card mismatch, TensorRT cannot parse or build it)
"""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "build-engine",
        help="build a TensorRT plan of an ONNX model for this GPU",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", type=Path, metavar="MODEL.onnx", help="model, card beside it")
    parser.add_argument(
        "--fp16", action="store_true", help="build a float model in FP16 (default: FP32)"
    )
    parser.add_argument(
        "--min-batch", type=positive_int, default=1, metavar="N", help="smallest batch (1)"
    )
    parser.add_argument(
        "--opt-batch",
        type=positive_int,
        metavar="N",
        help="the batch size TensorRT tunes its kernels for (default: --max-batch)",
    )
    parser.add_argument(
        "--max-batch", type=positive_int, default=32, metavar="N", help="largest batch (32)"
    )
    parser.add_argument(
        "--contexts",
        type=positive_int,
        default=2,
        metavar="N",
        help="execution contexts, i.e. batches in flight; one optimisation profile each (2)",
    )
    parser.add_argument(
        "--workspace-gib",
        type=positive_float,
        default=4.0,
        metavar="G",
        help="GPU scratch memory TensorRT may use while choosing kernels (4)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the plan's path and metadata as one JSON object"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from inspector.engines.card import load_model
    from inspector.engines.plan import read_sidecar, validate_batch_range
    from inspector.engines.trt_build import build_engine

    opt_batch = args.max_batch if args.opt_batch is None else args.opt_batch
    try:
        validate_batch_range(args.min_batch, opt_batch, args.max_batch)
    except ValueError as exc:
        print(f"inspector build-engine: error: {exc}", file=sys.stderr)
        return EX_USAGE
    card = load_model(args.model)  # the card must match the file before anything is built
    plan = build_engine(
        args.model,
        card,
        fp16=args.fp16,
        min_batch=args.min_batch,
        opt_batch=opt_batch,
        max_batch=args.max_batch,
        contexts=args.contexts,
        workspace_gib=args.workspace_gib,
    )
    meta = read_sidecar(plan)
    if args.json:
        print(json.dumps({"plan": str(plan), **meta.model_dump(mode="json", by_alias=True)}))
    else:
        print(
            f"{plan}: {meta.precision}, batches {meta.min_batch}..{meta.max_batch} "
            f"(tuned for {meta.opt_batch}), {meta.contexts} context(s), for {meta.gpu} "
            f"(sm{meta.sm}) with TensorRT {meta.tensorrt_version}"
        )
    return 0
