"""What a training run is asked to do, and what it has done (saved in its checkpoint)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The fine-tuning rate that keeps the probe, measured on ELPV (README "Training"). Every
# stage on freshly augmented images: from the probe (300 px, 64 training cells, loss
# 0.33), one AdamW step at 1e-4 raised that loss to 0.76 and the third to 1.69; at 3e-5
# it drifted to 0.59 in four steps; at 1e-5 it stayed between 0.29 and 0.33. After a
# frozen front, with shifted kept views, 10 epochs: 1e-4 reached validation accuracy
# 0.888 (probe 0.847); 3e-5 overfitted sooner (training accuracy 0.96) and peaked at 0.857.
WHOLE_NETWORK_LR = 1e-5
AFTER_FRONT_LR = 1e-4


@dataclass
class TrainOptions:
    backbone: str = "efficientnet_lite0"
    weights: Path | None = None
    epochs: int = 10  # fine-tuning epochs after the probe; 0 = the probe only
    batch_size: int = 32
    # Head and last stage; each earlier stage gets layer_decay times less. None: the
    # default for how the network is fine-tuned (after a frozen front or whole).
    lr: float | None = None
    layer_decay: float = 0.85
    weight_decay: float = 1e-4
    image_size: int = 224
    views: int = 1  # augmented views per training image for the probe's features
    budget_min: float | None = None  # wall time from the start; fine-tuning stops there
    seed: int = 0
    limit: int | None = None  # at most this many images per class and part (quick runs)
    device: str = "auto"
    threads: int = 0
    bf16: bool = False  # autocast; measured slower on a CPU without bf16 units
    channels_last: bool = False
    # The body's stages up to this output stride stay as pretrained in fine-tuning: they
    # run once per image and view, their outputs are kept, and each epoch runs only the
    # stages after them (0: the whole network is fine-tuned, every epoch runs it all).
    frozen_stride: int = 8


@dataclass
class EpochRecord:
    epoch: int  # 0 is the probe
    phase: str  # "probe" or "finetune"
    lr: float
    seconds: float
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    batches: int = 0  # fine-tuning batches run (fewer than an epoch's when the budget ran out)


@dataclass
class TrainState:
    next_epoch: int = 1
    best_epoch: int = -1  # 0: the probe
    best_val: tuple[float, float] = (-1.0, math.inf)  # (accuracy, loss)
    history: list[EpochRecord] = field(default_factory=list)
    probe: dict[str, Any] = field(default_factory=dict)  # weight decay, grid, test figures
    stopped_by_budget: bool = False
