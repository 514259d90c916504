"""One correction per frame, before tiling: flat-field, then lens undistortion.

Both are precomputed at start (a float map pair for the flat-field, fixed-point remap
tables for the lens) so a frame costs two vectorised OpenCV passes and one remap, not
per-tile work.
"""

from __future__ import annotations

import cv2
import numpy as np

from inspector.capture.sources.registry import CameraSettings
from inspector.errors import SourceError
from inspector.preprocess.calibration_files import (
    CameraModel,
    FlatField,
    load_camera_model,
    load_flat_field,
)
from inspector.types.frames import Image


class FrameCorrector:
    def __init__(self, flat: FlatField | None = None, lens: CameraModel | None = None) -> None:
        self.flat = flat
        self.lens = lens
        self._maps: tuple[np.ndarray, np.ndarray] | None = None
        # The dark offset rounded to whole grey levels: a saturating uint8 subtract is one
        # fast pass with no float temporary, and half a grey level is below sensor noise.
        self._dark_u8 = (
            np.clip(np.rint(flat.dark), 0, 255).astype(np.uint8) if flat is not None else None
        )
        if lens is not None:
            # Same camera matrix out as in: pixels keep their scale, so mm_per_px holds.
            self._maps = cv2.initUndistortRectifyMap(
                lens.camera_matrix, lens.distortion, None, lens.camera_matrix,
                (lens.width, lens.height), cv2.CV_16SC2,
            )  # fmt: skip

    def __call__(self, frame: Image) -> Image:
        if self.flat is not None:
            frame = self._flatten(frame)
        if self._maps is not None:
            assert self.lens is not None
            if frame.shape[1] != self.lens.width or frame.shape[0] != self.lens.height:
                raise SourceError(
                    f"frame is {frame.shape[1]}x{frame.shape[0]}, the camera calibration is for "
                    f"{self.lens.width}x{self.lens.height}"
                )
            frame = np.asarray(
                cv2.remap(frame, self._maps[0], self._maps[1], cv2.INTER_LINEAR), np.uint8
            )
        return frame

    def _flatten(self, frame: Image) -> Image:
        assert self.flat is not None and self._dark_u8 is not None
        dark, gain = self._dark_u8, self.flat.gain
        image = frame if frame.ndim == 3 else frame[..., None]
        if image.shape != dark.shape:
            raise SourceError(
                f"frame is {image.shape[1]}x{image.shape[0]}x{image.shape[2]}, the flat-field "
                f"is for {dark.shape[1]}x{dark.shape[0]}x{dark.shape[2]}"
            )
        above_dark = cv2.subtract(image, dark)  # uint8, saturating at 0
        out = cv2.multiply(above_dark, gain, dtype=cv2.CV_8U)  # saturating, rounded
        return np.asarray(out.reshape(frame.shape), np.uint8)


def camera_corrections(settings: CameraSettings) -> tuple[FrameCorrector | None, float | None]:
    """The camera's corrector (None when it has no calibration files) and its mm per pixel."""
    lens = load_camera_model(settings.calibration) if settings.calibration else None
    flat = load_flat_field(settings.flat_field) if settings.flat_field else None
    corrector = FrameCorrector(flat, lens) if (lens or flat) else None
    mm_per_px = settings.mm_per_px or (lens.mm_per_px if lens else None)
    return corrector, mm_per_px
