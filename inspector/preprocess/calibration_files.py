"""The files in ``calibration/``: a camera model (TOML, readable and diffable) and a
flat-field correction (NumPy ``.npz``: two per-pixel maps)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from inspector.errors import ConfigError

Floats = npt.NDArray[np.float32]


@dataclass(frozen=True)
class CameraModel:
    """Pinhole intrinsics and OpenCV distortion coefficients, for one image size."""

    camera_matrix: npt.NDArray[np.float64]  # 3x3
    distortion: npt.NDArray[np.float64]  # k1 k2 p1 p2 [k3 ...]
    width: int
    height: int
    rms_px: float = 0.0  # reprojection error of the calibration
    mm_per_px: float | None = None  # on the conveyor plane, after undistortion


@dataclass(frozen=True)
class FlatField:
    """``corrected = (raw - dark) * gain``, per pixel and channel."""

    dark: Floats  # H x W x C
    gain: Floats  # H x W x C


def _numbers(values: npt.ArrayLike) -> str:
    return "[" + ", ".join(f"{float(v):.10g}" for v in np.asarray(values).ravel()) + "]"


def save_camera_model(model: CameraModel, path: Path, comment: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = ",\n    ".join(_numbers(row) for row in model.camera_matrix)
    scale = f"mm_per_px = {model.mm_per_px:.10g}\n" if model.mm_per_px is not None else ""
    path.write_text(
        (f"# {comment}\n" if comment else "")
        + "# Written by `inspector calibrate camera`; read by the daemon (cameras[].calibration)\n"
        f"width = {model.width}\nheight = {model.height}\n"
        f"rms_px = {model.rms_px:.6g}\n{scale}"
        f"camera_matrix = [\n    {rows},\n]\n"
        f"distortion = {_numbers(model.distortion)}\n",
        encoding="utf-8",
    )
    return path


def load_camera_model(path: Path) -> CameraModel:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        matrix = np.asarray(data["camera_matrix"], np.float64)
        distortion = np.asarray(data["distortion"], np.float64)
        if matrix.shape != (3, 3) or distortion.ndim != 1 or distortion.size < 4:
            raise ValueError("camera_matrix must be 3x3 and distortion hold at least 4 numbers")
        return CameraModel(
            matrix,
            distortion,
            int(data["width"]),
            int(data["height"]),
            float(data.get("rms_px", 0.0)),
            float(data["mm_per_px"]) if "mm_per_px" in data else None,
        )
    except FileNotFoundError:
        raise ConfigError(f"{path}: camera calibration file not found") from None
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        reason = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ConfigError(f"{path}: not a camera calibration: {reason}") from None


def save_flat_field(flat: FlatField, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:  # np.savez would append .npz to a name without it
        np.savez_compressed(file, dark=flat.dark, gain=flat.gain)
    return path


def load_flat_field(path: Path) -> FlatField:
    try:
        with np.load(path) as data:
            dark, gain = data["dark"].astype(np.float32), data["gain"].astype(np.float32)
    except FileNotFoundError:
        raise ConfigError(f"{path}: flat-field file not found") from None
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(f"{path}: not a flat-field correction: {exc}") from None
    if dark.shape != gain.shape or dark.ndim != 3:
        raise ConfigError(f"{path}: dark and gain maps must both be H x W x C")
    return FlatField(dark, gain)
