"""AdamW with layer-wise learning rates, for fine-tuning after a frozen front."""

from __future__ import annotations

from typing import Any

import torch

from inspector.training.backbones import Backbone

# The head starts converged (the probe): a tenth of the rate keeps Adam's normalised
# steps from jolting it while the body adapts beneath it.
HEAD_LR = 0.1


def layerwise_optimizer(
    backbone: Backbone, front: int, lr: float, layer_decay: float, weight_decay: float
) -> torch.optim.Optimizer:
    """The head at ``HEAD_LR * lr``, the last stage at ``lr`` and each stage before it
    ``layer_decay`` times less (early filters are generic; they need little change). The
    first ``front`` stages are frozen: no gradients, not in the optimizer."""
    groups: list[dict[str, Any]] = [{"params": list(backbone.head.parameters()),
                                     "lr": lr * HEAD_LR}]  # fmt: skip
    frozen = [p for stage in backbone.stages[:front] for p in stage.parameters()]
    for parameter in frozen:
        parameter.requires_grad_(False)
    seen = {id(p) for p in [*groups[0]["params"], *frozen]}
    for depth, stage in enumerate(reversed(backbone.stages[front:])):
        params = [p for p in stage.parameters() if id(p) not in seen]
        seen.update(id(p) for p in params)
        if params:
            groups.append({"params": params, "lr": lr * layer_decay**depth})
    rest = [p for p in backbone.model.parameters() if id(p) not in seen]
    if rest:
        groups.append({"params": rest, "lr": lr})
    for group in groups:
        group["initial_lr"] = group["lr"]
    return torch.optim.AdamW(groups, weight_decay=weight_decay)


def scale_rates(optimizer: torch.optim.Optimizer, factor: float) -> float:
    """Every group's rate at ``factor`` times its initial one; the head's rate after."""
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * factor
    return float(optimizer.param_groups[0]["lr"])
