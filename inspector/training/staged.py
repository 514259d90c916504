"""A body as a chain of stages, so that its front can run once and be kept.

Fine-tuning with a frozen front runs the first stages (generic edge and texture
filters, and most of the compute at full resolution) once per image and view, keeps
their outputs in memory, and trains only the stages after them. ``run`` runs any
slice of the chain; the whole chain, pooled, is the body's forward pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from inspector.engines.normalize import TileNormalizer
from inspector.training import features as feats

BATCH = 64  # images per forward pass of the front or the rest
SHIFT = 0.05  # of the size: the image augmentation's shift (features.augment)
T = TypeVar("T")


class StagedBody(nn.Module):
    """Image -> pooled features, as ``stage_count`` stages run in order."""

    def stages(self) -> list[nn.Module]:
        """The modules of each stage, input to output (for layer-wise learning rates)."""
        raise NotImplementedError

    def stage(self, index: int, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def stage_count(self) -> int:
        return len(self.stages())

    def run(self, x: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Stages ``start`` to ``stop`` (exclusive); the last stage's output is pooled."""
        count = self.stage_count
        stop = count if stop is None else stop
        for index in range(start, stop):
            x = self.stage(index, x)
        return x.mean((2, 3)) if stop == count else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)


@torch.no_grad()
def front_stages(body: StagedBody, size: int, stride: int) -> tuple[int, tuple[int, ...]]:
    """How many leading stages keep the output stride at or below ``stride`` on a
    ``size`` px input, and the shape of one image's output there (C, H, W). Never the
    whole body: at least its last stage is left to train."""
    parameter = next(body.parameters())
    x = torch.zeros(1, 3, size, size, device=parameter.device, dtype=parameter.dtype)
    count, shape = 0, tuple(x.shape[1:])
    for index in range(body.stage_count - 1):
        x = body.stage(index, x)
        if size > stride * x.shape[-1]:  # downsampled past the stride
            break
        count, shape = index + 1, tuple(x.shape[1:])
    return count, shape


@contextmanager
def channels_last(body: nn.Module, keep: bool) -> Iterator[Any]:
    """The body in channels_last memory format for a forward pass: measured 1.3-1.4x
    faster than contiguous on this CPU (benchmarks/train_speed.py). Training steps showed
    no such gain, so the body goes back to contiguous afterwards unless ``keep``."""
    body.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    try:
        yield body
    finally:
        if not keep:
            body.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]


class FrozenFront:
    """The first ``count`` stages of a body, run once per image (outputs kept in float16),
    and the stages after them run on those outputs."""

    def __init__(
        self,
        body: StagedBody,
        count: int,
        normalizer: TileNormalizer,
        device: torch.device,
        keep_channels_last: bool,
        bf16: bool,
        progress: Callable[..., Any],
    ) -> None:
        self.body, self.count, self.normalizer, self.device = body, count, normalizer, device
        self.keep_channels_last, self.bf16, self.progress = keep_channels_last, bf16, progress

    @torch.no_grad()
    def _in_batches(self, count: int, desc: str, one: Callable[[int], T]) -> list[T]:
        """``one(start)`` for each batch of ``count`` images, the body in eval mode and
        channels_last (a forward pass, no gradients)."""
        with channels_last(self.body, self.keep_channels_last) as body:
            body.eval()
            starts = self.progress(range(0, count, BATCH), desc=desc, unit="batch", leave=False)
            return [one(start) for start in starts]

    def outputs(self, images: feats.Images, desc: str) -> torch.Tensor:
        """The front's outputs for these images, float16, on the device."""

        def one(start: int) -> torch.Tensor:
            batch = images[start : start + BATCH]
            inputs = feats.to_tensor(batch, self.normalizer, self.device, True)
            with feats.autocast(self.device, self.bf16):
                return self.body.run(inputs, 0, self.count).half()

        return torch.cat(self._in_batches(len(images), desc, one))

    def rest(self, fronts: torch.Tensor) -> torch.Tensor:
        """The stages after the front, pooled (gradients flow: this is what trains)."""
        with feats.autocast(self.device, self.bf16):
            return self.body.run(fronts.float(), self.count)

    def pooled(self, fronts: torch.Tensor, desc: str) -> feats.Features:
        """The rest on kept outputs, in eval mode: the probe's and validation's features."""

        def one(start: int) -> feats.Features:
            return self.rest(fronts[start : start + BATCH]).float().cpu().numpy()

        return np.concatenate(self._in_batches(len(fronts), desc, one))

    @staticmethod
    def batch(
        views: list[torch.Tensor], chosen: np.ndarray[Any, Any], rng: np.random.Generator
    ) -> torch.Tensor:
        """A training batch: each image's outputs from one of its kept views at random,
        shifted by up to SHIFT of its size. Convolutions commute with shifts, so shifting
        the front's output by a cell is shifting the image by the front's stride: the same
        augmentation as the image's, at no cost (reflected at the border, as there)."""
        picks = rng.integers(len(views), size=len(chosen))
        batch = torch.stack([views[v][i] for v, i in zip(picks, chosen, strict=True)])
        height, width = batch.shape[-2:]
        margin = min(max(1, round(SHIFT * height)), height - 1, width - 1)
        padded = torch.nn.functional.pad(batch.float(), (margin,) * 4, mode="reflect")
        offsets = rng.integers(0, 2 * margin + 1, size=(len(chosen), 2))
        return torch.stack([padded[k, :, dy : dy + height, dx : dx + width]
                            for k, (dy, dx) in enumerate(offsets)])  # fmt: skip
