"""Decode once, augment surfaces, and run a frozen body once per view.

Every image is decoded and resized exactly once into one uint8 array; the probe's
features come from that array (the original plus a few augmented views per
training image), and fine-tuning augments from it again per batch.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from inspector.engines.normalize import TileNormalizer
from inspector.training.datasets import Sample, read_image, resize_to

Images = npt.NDArray[np.uint8]
Features = npt.NDArray[np.float32]
SIZE_MIN, SIZE_MAX = 96, 320  # below: too little detail; above: too slow for 2 cores


def choose_image_size(samples: Sequence[Sample], native: int, probe: int = 64) -> tuple[int, str]:
    """The model input edge from the data: the median short side of a sample of images,
    kept whole up to SIZE_MAX (thin cracks and scratches need the pixels), never below
    SIZE_MIN, rounded to a multiple of 4. Returns the size and the reason, for the card."""
    step = max(1, len(samples) // probe)
    sides = []
    for sample in list(samples)[::step][:probe]:
        image = cv2.imread(str(sample.path), cv2.IMREAD_UNCHANGED)
        if image is not None:
            sides.append(min(image.shape[:2]))
    if not sides:
        return native, f"the backbone's native {native} px (no image could be read)"
    median = int(np.median(sides))
    size = int(np.clip(round(median / 4) * 4, SIZE_MIN, SIZE_MAX))
    why = f"median short side of {len(sides)} training images is {median} px"
    if size < median:
        why += f"; capped at {SIZE_MAX} px for CPU time"
    elif size > median:
        why += f"; raised to {SIZE_MIN} px, the least the backbone pools well"
    else:
        why += "; used as is (no detail lost to resizing)"
    return size, why


def decode_all(
    samples: Sequence[Sample], size: int, progress: Callable[..., Any], desc: str = "decode"
) -> Images:
    """All images at ``size`` x ``size`` RGB, decoded in threads (OpenCV drops the GIL)."""
    images = np.empty((len(samples), size, size, 3), np.uint8)

    def one(index: int) -> None:
        images[index] = resize_to(read_image(samples[index].path, "rgb"), size, size)

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(progress(pool.map(one, range(len(samples))), total=len(samples), desc=desc,
                      unit="img", leave=False))  # fmt: skip
    return images


def augment(images: Images, rng: np.random.Generator) -> Images:
    """What a surface tolerates: 90-degree turns, flips, a small shift, and small
    brightness/contrast changes. No colour or shape warps: a defect's look is its class."""
    out = np.empty_like(images)
    size = images.shape[1]
    for index, image in enumerate(images):
        image = np.rot90(image, int(rng.integers(4)))
        if rng.random() < 0.5:
            image = image[:, ::-1]
        shift = rng.uniform(-0.05, 0.05, 2) * size
        matrix = np.array([[1, 0, shift[0]], [0, 1, shift[1]]], np.float32)
        image = cv2.warpAffine(
            np.ascontiguousarray(image), matrix, (size, size), borderMode=cv2.BORDER_REFLECT
        )
        contrast, brightness = rng.uniform(0.85, 1.15), rng.uniform(-15, 15)
        out[index] = np.clip(image.astype(np.float32) * contrast + brightness, 0, 255)
    return out


def to_tensor(
    images: Images, normalizer: TileNormalizer, device: torch.device, channels_last: bool
) -> torch.Tensor:
    buffer = np.empty((len(images), *normalizer.shape), np.float32)
    tensor = torch.from_numpy(normalizer.normalize(images, out=buffer)).to(device)
    return tensor.contiguous(memory_format=torch.channels_last) if channels_last else tensor


def autocast(device: torch.device, bf16: bool) -> AbstractContextManager[Any]:
    if not bf16:
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


@torch.no_grad()
def extract(
    body: nn.Module,
    images: Images,
    normalizer: TileNormalizer,
    device: torch.device,
    *,
    batch: int = 64,
    channels_last: bool = False,
    bf16: bool = False,
    progress: Callable[..., Any] | None = None,
    desc: str = "features",
) -> Features:
    """Pooled features of every image, the body in eval mode (pretrained BatchNorm)."""
    body.eval()
    out: list[Features] = []
    starts: Any = range(0, len(images), batch)
    if progress is not None:
        starts = progress(starts, desc=desc, unit="batch", leave=False)
    for start in starts:
        inputs = to_tensor(images[start : start + batch], normalizer, device, channels_last)
        with autocast(device, bf16):
            features = body(inputs)
        out.append(features.float().cpu().numpy())
    width = out[0].shape[1] if out else 0
    return np.concatenate(out) if out else np.empty((0, width), np.float32)


class FeatureCache:
    """Features on disk, one file per (body, input, images, view): a second run on the same
    images (another label set such as elpv4, other probe or fine-tuning options, a resume)
    runs no forward pass for them. ``root`` None disables it."""

    def __init__(self, root: Path | None, identity: Sequence[str]) -> None:
        self.root = root
        self.identity = list(identity)

    def _path(self, paths: Sequence[str], view: int) -> Path | None:
        if self.root is None:
            return None
        digest = hashlib.sha256("\n".join([*self.identity, f"view={view}", *paths]).encode())
        return self.root / f"{digest.hexdigest()[:32]}.npz"

    def load(self, paths: Sequence[str], view: int) -> tuple[Features, float] | None:
        """The features and the seconds per image they took to make, or None."""
        path = self._path(paths, view)
        if path is None or not path.is_file():
            return None
        try:
            with np.load(path) as data:
                return data["features"].astype(np.float32), float(data["seconds_per_image"])
        except (OSError, ValueError, KeyError):  # torn or foreign file: make it again
            return None

    def save(self, paths: Sequence[str], view: int, features: Features, seconds: float) -> None:
        path = self._path(paths, view)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp.npz")
        np.savez(temporary, features=features, seconds_per_image=seconds)
        temporary.replace(path)


def default_cache_root() -> Path:
    """``$INSPECTOR_FEATURE_CACHE``, else ``$XDG_CACHE_HOME/inspector/features``."""
    if os.environ.get("INSPECTOR_FEATURE_CACHE"):
        return Path(os.environ["INSPECTOR_FEATURE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "inspector" / "features"
