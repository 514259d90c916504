"""Flat-field correction from dark and white reference frames.

``corrected = (raw - dark) * gain`` with ``gain = mean(white - dark) / (white - dark)``
per pixel and channel: vignetting and uneven lighting come out flat at the white
frame's mean level. Pixels that cannot be corrected are reported and left as they are
(gain 1): saturated in the white frames (the correction would be a guess) or dead
(no response between dark and white).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from inspector.errors import DatasetError
from inspector.preprocess.calibration_files import FlatField

SATURATED = 250  # white frames at or above this are clipped: no gain can be derived
DEAD_RESPONSE = 4.0  # white - dark below this: the pixel does not see light


@dataclass(frozen=True)
class FlatFieldReport:
    flat: FlatField
    saturated_pixels: int
    dead_pixels: int
    dark_frames: int
    white_frames: int


def mean_frame(paths: Sequence[Path]) -> np.ndarray:
    total: np.ndarray | None = None
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise DatasetError(f"{path}: not an image OpenCV can read")
        image = image[..., None] if image.ndim == 2 else image[..., :3]
        if total is None:
            total = np.zeros(image.shape, np.float64)
        elif image.shape != total.shape:
            raise DatasetError(f"{path}: shape {image.shape}, the others are {total.shape}")
        total += image
    if total is None:
        raise DatasetError("no reference frames given")
    return (total / len(paths)).astype(np.float32)


def build_flat_field(dark: Sequence[Path], white: Sequence[Path]) -> FlatFieldReport:
    dark_mean, white_mean = mean_frame(dark), mean_frame(white)
    if dark_mean.shape != white_mean.shape:
        raise DatasetError(f"dark frames are {dark_mean.shape}, white frames {white_mean.shape}")
    response = white_mean - dark_mean
    saturated = white_mean >= SATURATED
    dead = response < DEAD_RESPONSE
    usable = ~(saturated | dead)
    if not usable.any():
        raise DatasetError("no pixel responds between the dark and white frames")
    target = float(response[usable].mean())
    gain = np.ones_like(response)
    gain[usable] = target / response[usable]
    dark_map = np.where(usable, dark_mean, 0).astype(np.float32)
    return FlatFieldReport(
        FlatField(dark_map, gain.astype(np.float32)),
        saturated_pixels=int(saturated.any(axis=2).sum()),
        dead_pixels=int((dead & ~saturated).any(axis=2).sum()),
        dark_frames=len(dark),
        white_frames=len(white),
    )
