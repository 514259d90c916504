"""Camera intrinsics, lens distortion and the millimetre scale from checkerboard images."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from inspector.errors import DatasetError
from inspector.preprocess.calibration_files import CameraModel

_SUBPIX = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 40, 1e-4)


@dataclass(frozen=True)
class LensCalibration:
    model: CameraModel
    used: list[Path]  # images where the whole board was found
    skipped: list[Path]  # images without a complete board


def find_corners(gray: np.ndarray, pattern: tuple[int, int]) -> np.ndarray | None:
    found, corners = cv2.findChessboardCorners(
        gray, pattern, flags=cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
    )
    if not found:
        return None
    refined = cv2.cornerSubPix(gray, corners, (5, 5), (-1, -1), _SUBPIX)
    return np.asarray(refined, np.float32).reshape(-1, 1, 2)


def calibrate_lens(
    images: Sequence[Path],
    pattern: tuple[int, int],
    square_mm: float,
    scale_image: Path | None = None,
) -> LensCalibration:
    """``pattern`` counts inner corners (columns, rows), as OpenCV does: 9x6 for a 10x7 board.

    The scale is the board's in ``scale_image`` (the board lying flat on the conveyor;
    default: all images): the median distance between neighbouring corners after
    undistortion, in mm per pixel.
    """
    cols, rows = pattern
    board = np.zeros((rows * cols, 3), np.float32)
    board[:, :2] = np.mgrid[0:cols, 0:rows].T.reshape(-1, 2) * square_mm
    object_points, image_points, used, skipped = [], [], [], []
    size: tuple[int, int] | None = None
    for path in images:
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if gray is None:
            raise DatasetError(f"{path}: not an image OpenCV can read")
        if size is None:
            size = (gray.shape[1], gray.shape[0])
        elif size != (gray.shape[1], gray.shape[0]):
            raise DatasetError(f"{path}: {gray.shape[1]}x{gray.shape[0]}, the others are {size}")
        corners = find_corners(gray, pattern)
        if corners is None:
            skipped.append(path)
            continue
        object_points.append(board)
        image_points.append(corners)
        used.append(path)
    if len(used) < 3 or size is None:
        raise DatasetError(
            f"a {cols}x{rows} board was found in {len(used)} of {len(images)} images; "
            "at least 3 are needed (check --pattern: inner corners, columns x rows)"
        )
    rms, matrix, distortion, _, _ = cv2.calibrateCamera(
        object_points, image_points, size, None, None
    )
    on_belt = image_points
    if scale_image is not None:
        if scale_image not in used:
            raise DatasetError(f"{scale_image}: no complete {cols}x{rows} board found in it")
        on_belt = [image_points[used.index(scale_image)]]
    mm_per_px = _scale(on_belt, matrix, distortion, pattern, square_mm)
    model = CameraModel(
        np.asarray(matrix, np.float64),
        np.asarray(distortion, np.float64).ravel(),
        size[0],
        size[1],
        float(rms),
        mm_per_px,
    )
    return LensCalibration(model, used, skipped)


def _scale(
    image_points: list[np.ndarray],
    matrix: np.ndarray,
    distortion: np.ndarray,
    pattern: tuple[int, int],
    square_mm: float,
) -> float:
    cols, rows = pattern
    steps = []
    for corners in image_points:
        flat = cv2.undistortPoints(corners, matrix, distortion, P=matrix).reshape(rows, cols, 2)
        steps.append(np.linalg.norm(np.diff(flat, axis=1), axis=2).ravel())
        steps.append(np.linalg.norm(np.diff(flat, axis=0), axis=2).ravel())
    return float(square_mm / np.median(np.concatenate(steps)))
