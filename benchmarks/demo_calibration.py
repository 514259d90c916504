"""Calibration files for the demo line (``recordings/elpv-line.mp4``), to measure what the
corrections cost in ``inspector bench``: a lens with mild barrel distortion and a flat-field
from rendered dark and white frames with vignetting. Synthetic: the demo has no real camera.

    .venv/bin/python benchmarks/demo_calibration.py recordings/elpv-line.mp4 calibration/demo
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from inspector.calibration.flat_field import build_flat_field
from inspector.preprocess.calibration_files import CameraModel, save_camera_model, save_flat_field


def main(video: Path, stem: Path) -> None:
    capture = cv2.VideoCapture(str(video))
    width, height = (
        int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
        int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
    )
    capture.release()
    focal = 1.2 * width
    lens = CameraModel(
        np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]]),
        np.array([-0.05, 0.01, 0, 0, 0]), width, height, 0.0, 0.2,
    )  # fmt: skip
    save_camera_model(lens, stem.with_suffix(".toml"), comment="synthetic, for the benchmark")
    ys, xs = np.mgrid[0:height, 0:width]
    vignette = 1 - 0.3 * (((xs - width / 2) / width) ** 2 + ((ys - height / 2) / height) ** 2)
    frames = stem.parent / "frames"
    for kind, level in (("dark", 0.0), ("white", 200.0)):
        (frames / kind).mkdir(parents=True, exist_ok=True)
        image = (8 + level * vignette)[..., None].repeat(3, axis=2).astype(np.uint8)
        cv2.imwrite(str(frames / kind / "0.png"), image)
    report = build_flat_field([frames / "dark" / "0.png"], [frames / "white" / "0.png"])
    flat = save_flat_field(report.flat, stem.parent / f"{stem.name}-flat.npz")
    print(f"{stem.with_suffix('.toml')} and {flat} ({width}x{height})")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
