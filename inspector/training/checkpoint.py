"""A training run's checkpoint: everything ``--resume`` needs to go on where it stopped."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from inspector.training.state import EpochRecord, TrainOptions, TrainState

Weights = dict[str, torch.Tensor]


@dataclass
class Checkpoint:
    backbone: str
    model: Weights
    best: Weights | None  # the best weights so far on validation
    probe_head: Weights | None  # None: the probe has not run yet
    optimizer: dict[str, Any] | None
    image_seconds: float  # one forward pass per image, measured on the features
    state: TrainState
    rng: Mapping[str, Any]  # the numpy bit generator's state

    def save(self, path: Path, options: TrainOptions) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        state = {**asdict(self.state), "history": [asdict(r) for r in self.state.history]}
        torch.save(
            {
                "options": {k: str(v) for k, v in asdict(options).items()},
                "backbone": self.backbone, "model": self.model, "best": self.best,
                "probe_head": self.probe_head, "optimizer": self.optimizer,
                "image_seconds": self.image_seconds, "state": state, "rng": self.rng,
            },
            temporary,
        )  # fmt: skip
        temporary.replace(path)  # a kill mid-write never leaves a torn checkpoint

    @classmethod
    def load(cls, path: Path, device: torch.device) -> Checkpoint:
        data = torch.load(path, map_location=device, weights_only=False)
        state = data["state"]
        state["history"] = [EpochRecord(**r) for r in state["history"]]
        state["best_val"] = tuple(state["best_val"])
        return cls(
            backbone=data.get("backbone", ""), model=data["model"], best=data["best"],
            probe_head=data["probe_head"], optimizer=data["optimizer"],
            image_seconds=data["image_seconds"], state=TrainState(**state), rng=data["rng"],
        )  # fmt: skip
