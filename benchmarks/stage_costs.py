"""What each stage of the pipeline costs per frame, alone on one core: the work that has to
hide behind inference. Uses the daemon's own objects on the demo line's recording.

    .venv/bin/python benchmarks/stage_costs.py recordings/elpv-line.mp4 engines/elpv-lite0.onnx \
        calibration/demo/cam0

Prints one line per stage (median of repeated runs, milliseconds per frame) and the
inference time of the same frame's tiles, for scale. Run it on a quiet machine.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from inspector.engines.card import load_model
from inspector.engines.normalize import TileNormalizer
from inspector.engines.onnxruntime_engine import OnnxRuntimeEngine
from inspector.preprocess.calibration_files import load_camera_model, load_flat_field
from inspector.preprocess.corrector import FrameCorrector
from inspector.tiling import Tiler

_REPEATS = 7


def per_call_ms(step: Callable[[], object], calls: int = 20) -> float:
    step()
    samples = []
    for _ in range(_REPEATS):
        started = time.perf_counter()
        for _ in range(calls):
            step()
        samples.append((time.perf_counter() - started) / calls * 1e3)
    return statistics.median(samples)


def main(video: Path, model: Path, calibration_stem: Path) -> None:
    cv2.setNumThreads(1)  # as the daemon runs (cpu.opencv_threads = 1)
    card = load_model(model)
    capture = cv2.VideoCapture(str(video))
    ok, first = capture.read()
    if not ok:
        raise SystemExit(f"{video}: no frame to measure")
    frame = np.asarray(first, np.uint8)
    tiler = Tiler(card.input.height, card.input.height)
    grid = tiler.grid(*frame.shape[:2])
    normalizer = TileNormalizer(card.input)
    batch = np.empty((grid.count, *normalizer.shape), np.float32)
    lens = load_camera_model(calibration_stem.with_suffix(".toml"))
    flat = load_flat_field(calibration_stem.parent / f"{calibration_stem.name}-flat.npz")

    def cut_and_normalize() -> None:
        planes = normalizer.planes(frame, grid.size)
        assert planes is not None
        normalizer.normalize_planes(planes, grid.origins, batch)

    def cut_then_normalize() -> None:
        normalizer.normalize(tiler.extract(frame, grid), batch)

    def decode() -> None:
        if not capture.read()[0]:
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)  # the recording ended: from the top

    flat_only, lens_only = FrameCorrector(flat, None), FrameCorrector(None, lens)
    engine = OnnxRuntimeEngine(model, card, threads=1, max_batch=grid.count)
    stages: dict[str, Callable[[], object]] = {
        "decode (OpenCV/FFmpeg)": decode,
        "flat-field": lambda: flat_only(frame),
        "undistortion (one remap)": lambda: lens_only(frame),
        "cut + normalise (frame planes, the daemon's path)": cut_and_normalize,
        "cut + normalise (tile copies + ufuncs, the general path)": cut_then_normalize,
        f"inference of the frame's {grid.count} tiles, 1 thread": lambda: engine.infer(batch),
    }
    print(f"{video.name}: {frame.shape[1]}x{frame.shape[0]}, {grid.count} tiles per frame")
    for name, step in stages.items():
        calls = 3 if name.startswith("inference") else 20
        print(f"  {name:58} {per_call_ms(step, calls):7.2f} ms/frame")
    engine.close()
    capture.release()


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
