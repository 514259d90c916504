"""The dataset decoded once: images, labels and paths of each part, and class weights."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from inspector.training import features as feats
from inspector.training.datasets import Dataset, Sample

Labels = npt.NDArray[np.intp]


@dataclass
class Parts:
    """Decoded images and labels per split, shared by every backbone tried."""

    images: dict[str, feats.Images]
    labels: dict[str, Labels]
    paths: dict[str, list[str]]
    seconds: float


def limit_samples(samples: Sequence[Sample], limit: int | None) -> list[Sample]:
    if limit is None:
        return list(samples)
    kept: dict[int, int] = {}
    chosen = []
    for sample in samples:
        if kept.get(sample.label, 0) < limit:
            kept[sample.label] = kept.get(sample.label, 0) + 1
            chosen.append(sample)
    return chosen


def decode_parts(
    dataset: Dataset, size: int, limit: int | None, progress: Callable[..., Any]
) -> Parts:
    started = time.perf_counter()
    images, labels, paths = {}, {}, {}
    for part in ("train", "val", "test"):
        samples = limit_samples(dataset.part(part), limit)
        images[part] = feats.decode_all(samples, size, progress, f"decode {part}")
        labels[part] = np.array([s.label for s in samples], np.intp)
        paths[part] = [str(s.path.resolve()) for s in samples]
    return Parts(images, labels, paths, time.perf_counter() - started)


def class_weights(labels: Labels, classes: int) -> torch.Tensor:
    """Inverse frequency, mean 1: a rare defect class counts as much as the common ok class."""
    counts = np.bincount(labels, minlength=classes).astype(np.float64)
    weights = counts.sum() / (classes * np.maximum(counts, 1))
    return torch.tensor(weights, dtype=torch.float32)
