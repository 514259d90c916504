"""LP-FT: a linear probe on cached features, then the whole network fine-tuned from it.

1. Every image is decoded once (:mod:`features`); the frozen body runs once per
   image plus a few augmented views, and the head is fitted to convergence on
   those features (:mod:`probe`), its weight decay chosen by validation.
2. The network after its frozen front (:mod:`staged`) is fine-tuned from that head,
   the rate decayed layer by layer towards the input, BatchNorm statistics kept as
   pretrained (the probe's features stay valid: the first epoch does not undo what the
   head learned).
3. The probe and every fine-tuning epoch are scored on validation; the best wins.

A wall-time budget stops fine-tuning (mid-epoch if need be) with the best model so far.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from inspector.engines.normalize import TileNormalizer
from inspector.training import features as feats
from inspector.training.backbones import Backbone
from inspector.training.checkpoint import Checkpoint
from inspector.training.optimizer import layerwise_optimizer, scale_rates
from inspector.training.parts import Labels, Parts, class_weights
from inspector.training.probe import ProbeResult, fit_probe, score
from inspector.training.schedule import WARMUP_EPOCHS, rate_factor, schedule_progress
from inspector.training.staged import FrozenFront, channels_last, front_stages
from inspector.training.state import (
    AFTER_FRONT_LR,
    WHOLE_NETWORK_LR,
    EpochRecord,
    TrainOptions,
    TrainState,
)
from inspector.types.card import InputSpec

FRONT_MEMORY = 4 << 30  # bytes of kept front outputs; more: the whole network is fine-tuned


class Trainer:
    def __init__(
        self,
        backbone: Backbone,
        parts: Parts,
        classes: int,
        options: TrainOptions,
        checkpoint: Path,
        progress: Callable[..., Any],
        deadline: float | None = None,  # time.monotonic() at which fine-tuning must stop
        cache_root: Path | None = None,  # feature cache folder (None: no cache)
    ) -> None:
        self.backbone, self.model, self.parts = backbone, backbone.model, parts
        self.options, self.checkpoint, self.progress = options, checkpoint, progress
        self.deadline = deadline
        if options.threads:
            torch.set_num_threads(options.threads)
        torch.manual_seed(options.seed)
        self.rng = np.random.default_rng(options.seed)
        wanted = options.device
        if wanted == "auto":
            wanted = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(wanted)
        self.model.to(self.device)
        if options.channels_last:
            self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.input_spec = InputSpec(
            name="input", height=options.image_size, width=options.image_size, color="rgb",
            scale=255.0, mean=backbone.mean, std=backbone.std,
        )  # fmt: skip
        self.normalizer = TileNormalizer(self.input_spec)
        weights = class_weights(parts.labels["train"], classes).to(self.device)
        self.loss = nn.CrossEntropyLoss(weight=weights)
        weights_file = options.weights or Path(backbone.name)
        stamp = weights_file.stat() if weights_file.is_file() else None
        self.cache = feats.FeatureCache(
            cache_root,
            [backbone.name, str(weights_file), str(stamp and (stamp.st_size, stamp.st_mtime)),
             str(options.image_size), f"bf16={options.bf16}", torch.__version__],
        )  # fmt: skip
        self.state = TrainState()
        self.probe_result: ProbeResult | None = None
        self._best_weights: dict[str, torch.Tensor] | None = None
        self._probe_head: dict[str, torch.Tensor] | None = None
        self._image_seconds = 0.0  # one forward pass per image, measured on the features
        self._optimizer_state: dict[str, Any] | None = None
        self.front, self.front_why = self._front_stages()
        if options.lr is not None:
            self.lr, self.lr_why = options.lr, "--lr"
        elif self.front:
            self.lr, self.lr_why = AFTER_FRONT_LR, "the default after a frozen front"
        else:
            self.lr, self.lr_why = WHOLE_NETWORK_LR, "the default for every stage fine-tuned"
        self.frozen = FrozenFront(backbone.body, self.front, self.normalizer, self.device,
                                  options.channels_last, options.bf16, progress)  # fmt: skip
        self._fronts: dict[tuple[str, int], torch.Tensor] = {}  # (part, view): its outputs

    # -- the probe ----------------------------------------------------------------------

    def _view(self, part: str, view: int) -> feats.Images:
        """View 0: the images as decoded; view k: augmented by the seed and k, so a view
        is the same whichever views came before it or were cached."""
        images = self.parts.images[part]
        if view:
            images = feats.augment(images, np.random.default_rng([self.options.seed, view]))
        return images

    def _features(self, part: str, view: int) -> feats.Features:
        """One part's pooled features for one view, from the cache if it has them."""
        paths = self.parts.paths[part]
        cached = self.cache.load(paths, view)
        if cached is not None:
            self._image_seconds = self._image_seconds or cached[1]
            return cached[0]
        started = time.perf_counter()
        name = f"features {part}" + (f" view {view}/{self.options.views}" if view else "")
        if self.front and paths:  # fine-tuning will need the front's outputs: keep them
            x = self.frozen.pooled(self._front(part, view), name)
        else:
            x = self._extract(self._view(part, view), name)
        count = len(paths)
        seconds = (time.perf_counter() - started) / max(count, 1)
        self._image_seconds = seconds if count >= 32 else self._image_seconds or seconds
        self.cache.save(paths, view, x, seconds)
        return x

    def _extract(self, images: feats.Images, desc: str) -> feats.Features:
        with channels_last(self.backbone.body, self.options.channels_last) as body:
            return feats.extract(
                body, images, self.normalizer, self.device, channels_last=True,
                bf16=self.options.bf16, progress=self.progress, desc=desc,
            )  # fmt: skip

    def _front_stages(self) -> tuple[int, str]:
        """How many of the body's first stages fine-tuning leaves frozen, and why: those
        up to ``frozen_stride``, unless fine-tuning will not run or their outputs for every
        image and view would not fit in FRONT_MEMORY."""
        options = self.options
        if options.epochs <= 0:
            return 0, "no fine-tuning (--epochs 0)"
        if options.frozen_stride <= 0:
            return 0, "--frozen-stride 0: every stage is fine-tuned"
        self.model.eval()
        count, shape = front_stages(self.backbone.body, options.image_size, options.frozen_stride)
        if count == 0:
            return 0, f"no stage keeps the output stride within {options.frozen_stride}"
        labels = self.parts.labels
        images = (
            len(labels["train"]) * (options.views + 1) + len(labels["val"]) + len(labels["test"])
        )
        needed = images * math.prod(shape) * 2  # float16
        if needed > FRONT_MEMORY:
            why = (f"every stage is fine-tuned: the frozen front's outputs would take "
                   f"{needed / 2**30:.1f} GiB (more than {FRONT_MEMORY / 2**30:.0f})")  # fmt: skip
            self._say(why)
            return 0, why
        why = (
            f"the first {count} of {self.backbone.body.stage_count} stages (output stride up "
            f"to {options.frozen_stride}; {'x'.join(map(str, shape))} per image, "
            f"{needed / 2**20:.0f} MiB in all) run once per image and view and stay as "
            "pretrained: generic filters, and most of the compute at full resolution; each "
            "epoch trains only the stages after them"
        )
        return count, why

    def _front(self, part: str, view: int) -> torch.Tensor:
        key = (part, view)
        if key not in self._fronts:
            desc = f"front {part}" + (f" view {view}" if view else "")
            self._fronts[key] = self.frozen.outputs(self._view(part, view), desc)
        return self._fronts[key]

    def probe(self) -> ProbeResult:
        started = time.perf_counter()
        train_images, train_labels = self.parts.images["train"], self.parts.labels["train"]
        # Augmented views may use at most half of the budget left: fine-tuning needs the rest.
        end = None if self.deadline is None else (time.monotonic() + self.deadline) / 2
        parts = [self._features("train", 0)]
        for view in range(1, self.options.views + 1):
            estimate = self._image_seconds * len(train_images)
            if end is not None and time.monotonic() + estimate > end:
                self._say(f"probe: {view - 1} of {self.options.views} augmented views fit "
                          "the budget")  # fmt: skip
                break
            parts.append(self._features("train", view))
        views = len(parts) - 1
        train_x = np.concatenate(parts)
        train_y = np.tile(train_labels, views + 1)
        val_x, test_x = self._features("val", 0), self._features("test", 0)
        loss = self.loss.cpu()
        result = fit_probe(
            lambda: _head_like(self.backbone.head), (train_x, train_y),
            (val_x, self.parts.labels["val"]), loss, seed=self.options.seed,
        )  # fmt: skip
        self.loss.to(self.device)
        self.backbone.head.load_state_dict(result.head.state_dict())
        self.probe_result = result
        head = self.backbone.head.cpu()
        train_accuracy, train_loss = score(head, *_tensors(train_x, train_y), loss)
        test_accuracy, test_loss = score(head, *_tensors(test_x, self.parts.labels["test"]), loss)
        self.backbone.head.to(self.device)
        self.state.probe = {
            "weight_decay": result.weight_decay, "grid": result.grid, "views": views,
            "features": self.backbone.features, "fit_seconds": round(result.seconds, 2),
            "seconds": round(time.perf_counter() - started, 1),
            "val_accuracy": round(result.val_accuracy, 4), "val_loss": round(result.val_loss, 4),
            "test_accuracy": round(test_accuracy, 4), "test_loss": round(test_loss, 4),
        }  # fmt: skip
        record = EpochRecord(
            0, "probe", 0.0, self.state.probe["seconds"], round(train_loss, 4),
            round(train_accuracy, 4), round(result.val_loss, 4), round(result.val_accuracy, 4),
        )  # fmt: skip
        self.state.history.append(record)
        self._say(
            f"probe: weight decay {result.weight_decay:g} | val acc {result.val_accuracy:.4f} "
            f"loss {result.val_loss:.4f} | {len(train_x)} train features ({views} augmented "
            f"views), {record.seconds:.0f} s"
        )
        self._probe_head = _copy(self.backbone.head.state_dict())
        self._consider(0, result.val_accuracy, result.val_loss)
        return result

    # -- fine-tuning --------------------------------------------------------------------

    def _out_of_time(self, reserve: float = 0.0) -> bool:
        return self.deadline is not None and time.monotonic() + reserve >= self.deadline

    def finetune(self) -> None:
        options = self.options
        if options.epochs <= 0 or self.state.next_epoch > options.epochs:
            return
        images, labels = self.parts.images["train"], self.parts.labels["train"]
        steps = math.ceil(len(labels) / options.batch_size)
        warmup = math.ceil(steps * WARMUP_EPOCHS)
        optimizer = layerwise_optimizer(
            self.backbone, self.front, self.lr, options.layer_decay, options.weight_decay
        )
        # With a frozen front, an epoch draws each image from one of its kept views.
        kept = self.state.probe.get("views", 0) + 1 if self.front else 0
        views = [self._front("train", view) for view in range(kept)]
        if self._optimizer_state is not None:
            optimizer.load_state_dict(self._optimizer_state)
        val_reserve = self._image_seconds * len(self.parts.labels["val"]) * 1.5
        started_at = time.monotonic()
        stop = None if self.deadline is None else self.deadline - val_reserve
        for epoch in range(self.state.next_epoch, options.epochs + 1):
            if self._out_of_time(val_reserve):
                self.state.stopped_by_budget = True
                break
            started = time.perf_counter()
            # Eval mode throughout: BatchNorm keeps its pretrained statistics, so the
            # features the probe was fitted on do not shift under the head.
            self.model.eval()
            order = self.rng.permutation(len(labels))
            total_loss, correct, seen, batches = 0.0, 0, 0, 0
            bar = self.progress(range(steps), desc=f"fine-tune {epoch}", unit="batch", leave=False)
            lr = 0.0
            for step in bar:
                if self._out_of_time(val_reserve):
                    self.state.stopped_by_budget = True
                    break
                done = (epoch - 1) * steps + step
                progress = schedule_progress(
                    done, options.epochs * steps, started_at, stop, time.monotonic()
                )
                lr = scale_rates(optimizer, rate_factor(progress, done, warmup))
                chosen = order[step * options.batch_size : (step + 1) * options.batch_size]
                targets = torch.from_numpy(labels[chosen]).to(self.device)
                if self.front:
                    inputs = self.frozen.batch(views, chosen, self.rng)
                    logits = self.model.head(self.frozen.rest(inputs))
                else:
                    inputs = feats.to_tensor(
                        feats.augment(images[chosen], self.rng), self.normalizer, self.device,
                        options.channels_last,
                    )  # fmt: skip
                    with feats.autocast(self.device, options.bf16):
                        logits = self.model(inputs)
                loss = self.loss(logits.float(), targets)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total_loss += loss.item() * len(chosen)
                correct += int((logits.argmax(1) == targets).sum())
                seen, batches = seen + len(chosen), batches + 1
            if not batches:
                break
            val_accuracy, val_loss = self.evaluate("val")
            record = EpochRecord(
                epoch, "finetune", lr, round(time.perf_counter() - started, 1),
                round(total_loss / seen, 4), round(correct / seen, 4), round(val_loss, 4),
                round(val_accuracy, 4), batches,
            )  # fmt: skip
            self.state.history.append(record)
            partial = f" ({batches}/{steps} batches: budget)" if batches < steps else ""
            self._say(
                f"fine-tune {epoch}: loss {record.train_loss:.4f} acc {record.train_accuracy:.4f}"
                f" | val acc {val_accuracy:.4f} loss {val_loss:.4f} | {record.seconds:.0f} s"
                f"{partial}"
            )
            self._consider(epoch, val_accuracy, val_loss)
            self.state.next_epoch = epoch + 1
            self._optimizer_state = optimizer.state_dict()
            self._save_checkpoint()
            if self.state.stopped_by_budget:
                break
        if self.state.stopped_by_budget:
            self._say("stopped at the --budget-min wall time with the best model so far")

    def _consider(self, epoch: int, accuracy: float, loss: float) -> None:
        # Accuracy first (what the line is judged on); the lower loss breaks a tie.
        if (accuracy, -loss) > (self.state.best_val[0], -self.state.best_val[1]):
            self.state.best_val = (accuracy, loss)
            self.state.best_epoch = epoch
            self._best_weights = _copy(self.model.state_dict())

    @torch.no_grad()
    def evaluate(self, part: str) -> tuple[float, float]:
        """(accuracy, loss) of the current model on a part, in PyTorch."""
        images, labels = self.parts.images[part], self.parts.labels[part]
        if len(labels) == 0:
            return math.nan, math.nan
        desc = f"evaluate {part}"
        if self.front:
            x = self.frozen.pooled(self._front(part, 0), desc)
        else:
            x = self._extract(images, desc)
        features, targets = (t.to(self.device) for t in _tensors(x, labels))
        return score(self.backbone.head, features, targets, self.loss)

    def fit(self, resume: bool = False) -> TrainState:
        """The probe (unless a checkpoint holds it), fine-tuning, then the best weights."""
        if resume and self.checkpoint.exists():
            self._load_checkpoint()
        if self._probe_head is None:
            self.probe()
            self._save_checkpoint()
        self.finetune()
        self.use_best()
        return self.state

    def use_best(self) -> None:
        if self._best_weights is not None:
            self.model.load_state_dict(self._best_weights)

    def _say(self, message: str) -> None:
        # tqdm's write keeps progress bars intact; stderr keeps stdout for results.
        self.progress.write(message, file=sys.stderr)  # type: ignore[attr-defined]

    # -- checkpoints --------------------------------------------------------------------

    def _save_checkpoint(self) -> None:
        Checkpoint(
            backbone=self.backbone.name, model=self.model.state_dict(),
            best=self._best_weights, probe_head=self._probe_head,
            optimizer=self._optimizer_state, image_seconds=self._image_seconds,
            state=self.state, rng=self.rng.bit_generator.state,
        ).save(self.checkpoint, self.options)  # fmt: skip

    def _load_checkpoint(self) -> None:
        saved = Checkpoint.load(self.checkpoint, self.device)
        if saved.backbone != self.backbone.name:
            self._say(f"{self.checkpoint}: another backbone's checkpoint; starting afresh")
            return
        self.model.load_state_dict(saved.model)
        self._best_weights, self._probe_head = saved.best, saved.probe_head
        self._optimizer_state, self._image_seconds = saved.optimizer, saved.image_seconds
        self.state = saved.state
        self.state.stopped_by_budget = False
        self.rng.bit_generator.state = saved.rng
        self._say(f"resumed from {self.checkpoint} at fine-tuning epoch {self.state.next_epoch}")


def _head_like(head: nn.Module) -> nn.Module:
    """A fresh, randomly initialised copy of the head's architecture, on the CPU."""
    import copy

    fresh = copy.deepcopy(head).cpu()
    for module in fresh.modules():
        if isinstance(module, nn.Linear):
            module.reset_parameters()
    return fresh


def _tensors(x: feats.Features, y: Labels) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(x), torch.from_numpy(np.asarray(y, np.intp))


def _copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in state.items()}
