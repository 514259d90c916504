"""INT8 by static quantisation: one Q/DQ ONNX model that ONNX Runtime runs on the CPU and
TensorRT builds from (explicit quantisation, the only INT8 route TensorRT 11 keeps).

Choices, and why:
- QDQ format, weights signed INT8, symmetric, per output channel, for both targets.
- Activations depend on where the model runs, because the two runtimes disagree:
  ``portable`` (symmetric signed INT8, zero point 0) is the only form TensorRT's
  explicit quantisation accepts, and ONNX Runtime runs it too, but slowly on x86
  (0.44x FP32 measured here: the ReLU6 clips cannot fold into the quantised convolutions);
  ``cpu`` (asymmetric unsigned INT8) lets ONNX Runtime fuse whole blocks into U8S8
  kernels (2.1x FP32 here) and TensorRT cannot build it.
- Calibration inputs go through the daemon's own :class:`TileNormalizer`, so the
  ranges are those of what the line will feed the model.
- Weights use 7 of their 8 bits on the ``cpu`` target (ONNX Runtime's ``reduce_range``).
  x86 CPUs without VNNI (AVX2, AVX-512 before VNNI: this AMD EPYC) multiply unsigned
  activations by signed weights with ``vpmaddubsw``, whose 16-bit pair sums saturate at
  full-range weights. That silently wrecked accuracy here: EfficientNet-Lite0 on ELPV
  fell from 0.8425 to 0.465 on ONNX Runtime and 0.410 on OpenVINO. With 7-bit weights
  the fast kernels cannot overflow; CPUs with VNNI lose nothing measurable in speed.
- The first and last ``FLOAT_ENDS`` convolutions stay float. The first ones see the image
  at full resolution, where a per-tensor activation scale loses the faint detail a defect
  is made of; the last ones make the pooled features a linear head reads directly (a
  probe head, fitted on standardised features, amplifies their error). Measured on that
  model: 7-bit weights alone 0.734, with float ends 0.844 against FP32's 0.8425, at
  1.81x FP32 speed on ONNX Runtime instead of 1.96x with none kept float.
- The calibration method (min-max, percentile, entropy) is chosen by measuring each
  on the dataset's validation part, never its test part, which only reports the result.
"""

from __future__ import annotations

import contextlib
import logging
import random
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inspector.engines.card import load_model, write_card
from inspector.engines.normalize import TileNormalizer
from inspector.engines.plan import has_qdq
from inspector.errors import DatasetError, ModelError
from inspector.training.datasets import IMAGE_SUFFIXES, read_image, resize_to
from inspector.types.card import ModelCard

METHODS = ("minmax", "percentile", "entropy")
_BATCH = 16
_PERCENTILE = 99.999
FLOAT_ENDS = 6
# ONNX Runtime's histogram calibrators (percentile, entropy) keep every activation of
# every calibration image in memory until the end: 64 images of 300x300 took 7.9 GB
# here, 256 ran out of 24 GB. Their image count is capped at this many pixels.
_HISTOGRAM_PIXELS = 64 * 300 * 300


def images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DatasetError(f"{folder}: calibration image folder not found")
    found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise DatasetError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return found


def pick(paths: Sequence[Path], count: int, seed: int) -> list[Path]:
    chosen = list(paths)
    random.Random(seed).shuffle(chosen)
    return chosen[:count]


class TileReader:
    """ONNX Runtime's ``CalibrationDataReader``: batches of normalised tiles, read again from
    the start by each quantisation (:meth:`limited`)."""

    def __init__(self, paths: Sequence[Path], card: ModelCard) -> None:
        self._card = card
        self._normalizer = TileNormalizer(card.input)
        # Whole batches only: ONNX Runtime's histogram calibrators (percentile, entropy)
        # cannot merge a short last batch with the others.
        whole = len(paths) - len(paths) % _BATCH if len(paths) >= _BATCH else len(paths)
        self._paths = list(paths)[:whole]
        self._batches = self._load()
        self._next = 0
        self._limit = len(self._batches)

    def limited(self, method: str) -> TileReader:
        """Rewound, and for a histogram method capped to what fits in memory."""
        self._next = 0
        self._limit = len(self._batches)
        if method in ("percentile", "entropy"):
            pixels = _BATCH * self._card.input.width * self._card.input.height
            self._limit = max(1, min(self._limit, _HISTOGRAM_PIXELS // pixels))
        return self

    def _load(self) -> list[np.ndarray]:
        spec = self._card.input
        tiles = [resize_to(read_image(p, spec.color), spec.width, spec.height) for p in self._paths]
        result = []
        for start in range(0, len(tiles), _BATCH):
            chunk = np.stack(tiles[start : start + _BATCH])
            out = np.empty((len(chunk), *self._normalizer.shape), np.float32)
            result.append(self._normalizer.normalize(chunk, out=out))
        return result

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= self._limit:
            return None
        self._next += 1
        return {self._card.input.name: self._batches[self._next - 1]}

    def __len__(self) -> int:
        """Images the current calibration reads."""
        return min(len(self._paths), self._limit * _BATCH)


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


TARGETS = ("cpu", "portable")
_FLOAT_OPS = ("Gemm", "MatMul")


def quantize(
    onnx_path: Path,
    out_path: Path,
    reader: TileReader,
    method: str,
    card: ModelCard,
    target: str = "cpu",
    float_ends: int | None = None,
) -> ModelCard:
    """Write ``out_path`` (Q/DQ INT8) and its card; return the card."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.registry import QDQRegistry
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }
    if method not in methods:
        raise ModelError(f"calibration method {method!r}: choose one of {', '.join(METHODS)}")
    if target not in TARGETS:
        raise ModelError(f"calibration target {target!r}: choose one of {', '.join(TARGETS)}")
    float_ends = FLOAT_ENDS if float_ends is None else float_ends
    if float_ends < 0:
        raise ModelError(f"--float-ends must be >= 0, got {float_ends}")
    portable = target == "portable"
    reader.limited(method)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # The quantiser prints progress to stdout and warns through the root logger; keep
    # stdout for --json and the terminal for our own lines.
    with (
        tempfile.TemporaryDirectory() as scratch,
        contextlib.redirect_stdout(sys.stderr),
        _quiet_root_logger(),
    ):
        prepared = Path(scratch) / "prepared.onnx"
        # Shape inference and graph fusions first (BatchNorm into Conv and the like), so
        # scales are computed for the ops that will actually run.
        quant_pre_process(str(onnx_path), str(prepared), skip_symbolic_shape=False)
        kept_float = end_convolutions(prepared, float_ends)
        quantize_static(
            str(prepared),
            str(out_path),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8 if portable else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=methods[method],
            reduce_range=not portable,  # see the module's docstring: no VNNI, no overflow
            nodes_to_exclude=kept_float,
            # The classifier head stays float: ONNX Runtime (1.31 and 1.32, measured on this
            # AMX Xeon) fuses a Q/DQ Gemm into a QGemm whose outputs are off by up to 1.4
            # logits, which flipped a third of a test set; the head is a sliver of the compute.
            op_types_to_quantize=[op for op in QDQRegistry if op not in _FLOAT_OPS],
            extra_options={
                "ActivationSymmetric": portable,
                "WeightSymmetric": True,
                "CalibMovingAverage": method == "minmax",
                "CalibPercentile": _PERCENTILE,
                "CalibTensorRangeSymmetric": portable,
            },
        )
    quantized = card.model_copy(
        update={
            "name": f"{card.name}-int8",
            "quantization": {
                "format": "QDQ",
                "weights": (
                    ("int8" if portable else "int8 holding 7-bit values (reduce_range)")
                    + ", symmetric, per channel; Gemm and MatMul kept float"
                ),
                "float_convolutions": kept_float,
                "activations": (
                    "int8, symmetric, per tensor" if portable else "uint8, asymmetric, per tensor"
                ),
                "target": target,
                "method": method,
                "calibration_images": len(reader),
                "from": {"name": card.name, "sha256": card.sha256},
            },
        }
    )
    return write_card(quantized, out_path)


def end_convolutions(model: Path, count: int) -> list[str]:
    """The names of the first and last ``count`` Conv nodes (ONNX lists nodes in
    topological order), named first where the graph has none. At most a quarter of the
    convolutions at each end, so that at least half of a small model is quantised."""
    import onnx

    graph = onnx.load(str(model), load_external_data=False)
    convolutions = [node for node in graph.graph.node if node.op_type == "Conv"]
    unnamed = [node for node in convolutions if not node.name]
    for index, node in enumerate(unnamed):
        node.name = f"inspector_conv_{index}"
    if unnamed:
        onnx.save(graph, str(model))
    count = min(count, len(convolutions) // 4)
    if count == 0:
        return []
    ends = convolutions[:count] + convolutions[-count:]
    return list(dict.fromkeys(node.name for node in ends))


@dataclass
class CalibrationResult:
    path: Path
    card: ModelCard
    method: str
    tried: dict[str, float] = field(default_factory=dict)  # method -> validation accuracy
    fp32: dict[str, Any] | None = None  # test-part report of the original model
    int8: dict[str, Any] | None = None  # test-part report of the quantised model


def calibrate_int8(
    onnx_path: Path,
    out_path: Path,
    paths: Sequence[Path],
    method: str = "auto",
    evaluate: Callable[[Path, str], dict[str, Any]] | None = None,
    on_method: Callable[[str, float], None] | None = None,
    target: str = "cpu",
    float_ends: int | None = None,
) -> CalibrationResult:
    """Quantise with ``method``, or with each method and keep the best on validation.

    ``evaluate(model_path, part)`` returns a classification report of a model on a
    dataset part; without it, "auto" cannot measure and falls back to percentile.
    """
    card = load_model(onnx_path)
    if has_qdq(onnx_path):
        raise ModelError(f"{onnx_path}: already quantised (it has Q/DQ nodes)")
    reader = TileReader(paths, card)
    if method != "auto":
        quantized = quantize(onnx_path, out_path, reader, method, card, target, float_ends)
        result = CalibrationResult(out_path, quantized, method)
    elif evaluate is None:
        result = CalibrationResult(
            out_path,
            quantize(onnx_path, out_path, reader, "percentile", card, target, float_ends),
            "percentile",
        )
    else:
        tried: dict[str, float] = {}
        with tempfile.TemporaryDirectory() as scratch:
            for candidate in METHODS:
                trial = Path(scratch) / f"{candidate}.onnx"
                quantize(onnx_path, trial, reader, candidate, card, target, float_ends)
                tried[candidate] = float(evaluate(trial, "val")["accuracy"])
                if on_method is not None:
                    on_method(candidate, tried[candidate])
        # Best validation accuracy; ties go to the simpler, cheaper method (METHODS order).
        best = max(METHODS, key=lambda m: (tried[m], -METHODS.index(m)))
        chosen = quantize(onnx_path, out_path, reader, best, card, target, float_ends)
        result = CalibrationResult(out_path, chosen, best, tried)
    if evaluate is not None:
        result.fp32 = evaluate(onnx_path, "test")
        result.int8 = evaluate(out_path, "test")
    return result


def default_output(onnx_path: Path) -> Path:
    return onnx_path.with_name(f"{onnx_path.stem}-int8.onnx")
