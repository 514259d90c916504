"""Fine-tuning: a head-only warm-up, then the whole network at a lower learning rate.

Images are decoded and resized once into memory; augmentation (flips, 90-degree
turns, brightness/contrast, small shifts: what a surface texture tolerates)
runs per batch in NumPy/OpenCV; tensors are made by the daemon's own
TileNormalizer, so training sees exactly the preprocessing the line will apply.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from inspector.engines.card import InputSpec
from inspector.engines.normalize import TileNormalizer
from inspector.training.backbones import Backbone
from inspector.training.datasets import Dataset, Sample, read_image, resize_to

Images = npt.NDArray[np.uint8]


@dataclass
class TrainOptions:
    backbone: str = "efficientnet_lite0"
    weights: Path | None = None
    epochs: int = 24
    warmup_epochs: int = 1
    batch_size: int = 32
    head_lr: float = 1e-3
    lr: float = 5e-4  # the whole network, after the warm-up
    weight_decay: float = 1e-2
    image_size: int = 300  # ELPV cells are 300 px: cracks are thin, keep every pixel
    patience: int = 6
    seed: int = 0
    limit: int | None = None  # at most this many images per class and part (quick runs)
    device: str = "auto"
    threads: int = 0


@dataclass
class EpochRecord:
    epoch: int
    phase: str
    lr: float
    seconds: float
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    test_loss: float
    test_accuracy: float


@dataclass
class TrainState:
    next_epoch: int = 0
    best_epoch: int = -1
    best_val: tuple[float, float] = (-1.0, math.inf)  # (accuracy, loss)
    history: list[EpochRecord] = field(default_factory=list)


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


def load_images(samples: Sequence[Sample], size: int, progress: Callable[..., Any]) -> Images:
    images = np.empty((len(samples), size, size, 3), np.uint8)
    for index, sample in enumerate(progress(samples, desc="decode", unit="img", leave=False)):
        image = read_image(sample.path, "rgb")
        images[index] = resize_to(image, size, size)
    return images


def augment(images: Images, rng: np.random.Generator) -> Images:
    out = np.empty_like(images)
    size = images.shape[1]
    for index, image in enumerate(images):
        image = np.rot90(image, int(rng.integers(4)))
        if rng.random() < 0.5:
            image = image[:, ::-1]
        if rng.random() < 0.5:
            image = image[::-1]
        shift = rng.uniform(-0.06, 0.06, 2) * size
        matrix = np.array([[1, 0, shift[0]], [0, 1, shift[1]]], np.float32)
        image = cv2.warpAffine(
            np.ascontiguousarray(image), matrix, (size, size), borderMode=cv2.BORDER_REFLECT
        )
        contrast, brightness = rng.uniform(0.8, 1.2), rng.uniform(-20, 20)
        out[index] = np.clip(image.astype(np.float32) * contrast + brightness, 0, 255)
    return out


def class_weights(labels: npt.NDArray[np.intp], classes: int) -> torch.Tensor:
    """Inverse frequency, mean 1: a rare defect class counts as much as the common ok class."""
    counts = np.bincount(labels, minlength=classes).astype(np.float64)
    weights = counts.sum() / (classes * np.maximum(counts, 1))
    return torch.tensor(weights, dtype=torch.float32)


class Trainer:
    def __init__(
        self,
        backbone: Backbone,
        dataset: Dataset,
        options: TrainOptions,
        checkpoint: Path,
        progress: Callable[..., Any],
    ) -> None:
        self.backbone = backbone
        self.model = backbone.model
        self.dataset = dataset
        self.options = options
        self.checkpoint = checkpoint
        self.progress = progress
        if options.threads:
            torch.set_num_threads(options.threads)
        torch.manual_seed(options.seed)
        self.rng = np.random.default_rng(options.seed)
        wanted = options.device
        if wanted == "auto":
            wanted = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(wanted)
        self.model.to(self.device)
        spec = InputSpec(
            name="input",
            height=options.image_size,
            width=options.image_size,
            color="rgb",
            scale=255.0,
            mean=backbone.mean,
            std=backbone.std,
        )
        self.input_spec = spec
        self.normalizer = TileNormalizer(spec)
        self.parts: dict[str, tuple[Images, npt.NDArray[np.intp]]] = {}
        for part in ("train", "val", "test"):
            samples = limit_samples(dataset.part(part), options.limit)
            images = load_images(samples, options.image_size, progress)
            self.parts[part] = (images, np.array([s.label for s in samples], np.intp))
        train_labels = self.parts["train"][1]
        self.loss = nn.CrossEntropyLoss(
            weight=class_weights(train_labels, len(dataset.labels)).to(self.device)
        )
        self.state = TrainState()
        self._optimizer: torch.optim.Optimizer | None = None
        self._scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
        self._best_weights: dict[str, torch.Tensor] | None = None

    # -- phases -------------------------------------------------------------------------

    def _steps_per_epoch(self) -> int:
        return max(1, math.ceil(len(self.parts["train"][1]) / self.options.batch_size))

    def _configure(self, phase: str) -> None:
        head_only = phase == "head"
        for parameter in self.model.parameters():
            parameter.requires_grad = not head_only
        for parameter in self.backbone.head.parameters():
            parameter.requires_grad = True
        params = [p for p in self.model.parameters() if p.requires_grad]
        lr = self.options.head_lr if head_only else self.options.lr
        self._optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=self.options.weight_decay)
        epochs = (
            self.options.warmup_epochs
            if head_only
            else max(1, self.options.epochs - self.options.warmup_epochs)
        )
        self._scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self._optimizer, T_max=epochs * self._steps_per_epoch()
        )

    def _phase(self, epoch: int) -> str:
        return "head" if epoch < self.options.warmup_epochs else "full"

    # -- loops --------------------------------------------------------------------------

    def _tensor(self, images: Images) -> torch.Tensor:
        buffer = np.empty((len(images), *self.normalizer.shape), np.float32)
        return torch.from_numpy(self.normalizer.normalize(images, out=buffer)).to(self.device)

    def _train_epoch(self, epoch: int, phase: str) -> tuple[float, float]:
        assert self._optimizer is not None and self._scheduler is not None
        images, labels = self.parts["train"]
        self.model.train()
        if phase == "head":
            self.model.eval()  # keep the pretrained BatchNorm statistics while they are frozen
            self.backbone.head.train()
        order = self.rng.permutation(len(labels))
        total_loss, correct = 0.0, 0
        batches = range(0, len(order), self.options.batch_size)
        bar = self.progress(batches, desc=f"epoch {epoch + 1} {phase}", unit="batch", leave=False)
        for start in bar:
            chosen = order[start : start + self.options.batch_size]
            inputs = self._tensor(augment(images[chosen], self.rng))
            targets = torch.from_numpy(labels[chosen]).to(self.device)
            logits = self.model(inputs)
            loss = self.loss(logits, targets)
            self._optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self._optimizer.step()
            self._scheduler.step()
            total_loss += float(loss) * len(chosen)
            correct += int((logits.argmax(1) == targets).sum())
        return total_loss / len(labels), correct / len(labels)

    @torch.no_grad()
    def evaluate(self, part: str) -> tuple[float, float]:
        images, labels = self.parts[part]
        if len(labels) == 0:
            return math.nan, math.nan
        self.model.eval()
        total_loss, correct = 0.0, 0
        for start in range(0, len(labels), 64):
            inputs = self._tensor(images[start : start + 64])
            targets = torch.from_numpy(labels[start : start + 64]).to(self.device)
            logits = self.model(inputs)
            total_loss += float(self.loss(logits, targets)) * len(targets)
            correct += int((logits.argmax(1) == targets).sum())
        return total_loss / len(labels), correct / len(labels)

    def fit(self, resume: bool = False) -> TrainState:
        if resume and self.checkpoint.exists():
            self._load_checkpoint()
        stale = 0
        for epoch in range(self.state.next_epoch, self.options.epochs):
            phase = self._phase(epoch)
            if self._optimizer is None or epoch == self.options.warmup_epochs:
                self._configure(phase)
            started = time.perf_counter()
            train_loss, train_accuracy = self._train_epoch(epoch, phase)
            val_loss, val_accuracy = self.evaluate("val")
            test_loss, test_accuracy = self.evaluate("test")
            assert self._optimizer is not None
            record = EpochRecord(
                epoch + 1, phase, float(self._optimizer.param_groups[0]["lr"]),
                round(time.perf_counter() - started, 1), round(train_loss, 4),
                round(train_accuracy, 4), round(val_loss, 4), round(val_accuracy, 4),
                round(test_loss, 4), round(test_accuracy, 4),
            )  # fmt: skip
            self.state.history.append(record)
            self._say(
                f"epoch {record.epoch:>2} {phase:<4} loss {train_loss:.4f} acc {train_accuracy:.4f}"
                f" | val loss {val_loss:.4f} acc {val_accuracy:.4f} | {record.seconds:.0f} s"
            )
            # Selected on validation LOSS: with a few hundred validation images, accuracy moves
            # in steps of half a point and a lucky early epoch would stop training too soon.
            if (-val_loss, val_accuracy) > (-self.state.best_val[1], self.state.best_val[0]):
                self.state.best_val = (val_accuracy, val_loss)
                self.state.best_epoch = epoch + 1
                self._best_weights = {
                    k: v.detach().clone() for k, v in self.model.state_dict().items()
                }
                stale = 0
            else:
                stale += 1
            self.state.next_epoch = epoch + 1
            self._save_checkpoint()
            if stale >= self.options.patience and phase == "full":
                self._say(f"early stop: no lower validation loss for {stale} epochs")
                break
        if self._best_weights is not None:
            self.model.load_state_dict(self._best_weights)
        return self.state

    def _say(self, message: str) -> None:
        # tqdm's write keeps progress bars intact; stderr keeps stdout for results.
        self.progress.write(message, file=sys.stderr)  # type: ignore[attr-defined]

    # -- checkpoints --------------------------------------------------------------------

    def _save_checkpoint(self) -> None:
        assert self._optimizer is not None and self._scheduler is not None
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.checkpoint.with_suffix(".tmp")
        torch.save(
            {
                "options": {k: str(v) for k, v in asdict(self.options).items()},
                "model": self.model.state_dict(),
                "best": self._best_weights,
                "optimizer": self._optimizer.state_dict(),
                "scheduler": self._scheduler.state_dict(),
                "state": {
                    "next_epoch": self.state.next_epoch,
                    "best_epoch": self.state.best_epoch,
                    "best_val": list(self.state.best_val),
                    "history": [asdict(r) for r in self.state.history],
                },
                "rng": self.rng.bit_generator.state,
            },
            temporary,
        )
        temporary.replace(self.checkpoint)  # a kill mid-write never leaves a torn checkpoint

    def _load_checkpoint(self) -> None:
        data = torch.load(self.checkpoint, map_location=self.device, weights_only=False)
        self.model.load_state_dict(data["model"])
        self._best_weights = data["best"]
        state = data["state"]
        self.state = TrainState(
            next_epoch=state["next_epoch"],
            best_epoch=state["best_epoch"],
            best_val=(state["best_val"][0], state["best_val"][1]),
            history=[EpochRecord(**r) for r in state["history"]],
        )
        self._configure(self._phase(self.state.next_epoch))
        assert self._optimizer is not None and self._scheduler is not None
        if self._phase(self.state.next_epoch) == self._phase(max(self.state.next_epoch - 1, 0)):
            self._optimizer.load_state_dict(data["optimizer"])
            self._scheduler.load_state_dict(data["scheduler"])
        self.rng.bit_generator.state = data["rng"]
        self._say(f"resumed from {self.checkpoint} at epoch {self.state.next_epoch + 1}")
