"""ResNet50 in plain PyTorch (no torchvision, which does not import with the CPU torch build
here), with torchvision's parameter names so its ImageNet ``state_dict`` files load as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from inspector.errors import ModelError
from inspector.training.staged import StagedBody

STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))  # width, blocks, stride
FEATURES = 2048


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int) -> None:
        super().__init__()
        width = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        # torchvision's v1.5: the stride sits on the 3x3 convolution
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, width, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != width:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, width, 1, stride, bias=False), nn.BatchNorm2d(width)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return torch.relu(out + identity)


class ResNet50Body(StagedBody):
    """Image -> pooled 2048 features. Names match torchvision's ``resnet50`` minus ``fc``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = 64
        for index, (planes, blocks, stride) in enumerate(STAGES, start=1):
            layers = []
            for block in range(blocks):
                layers.append(Bottleneck(inplanes, planes, stride if block == 0 else 1))
                inplanes = planes * Bottleneck.expansion
            setattr(self, f"layer{index}", nn.Sequential(*layers))

    def stages(self) -> list[nn.Module]:
        stem = nn.ModuleList([self.conv1, self.bn1])
        return [stem, *(getattr(self, f"layer{i}") for i in range(1, 5))]

    def stage(self, index: int, x: torch.Tensor) -> torch.Tensor:
        if index == 0:
            return self.maxpool(self.relu(self.bn1(self.conv1(x))))  # type: ignore[no-any-return]
        return getattr(self, f"layer{index}")(x)  # type: ignore[no-any-return]


def load_torchvision_weights(body: ResNet50Body, path: Path) -> None:
    """A torchvision ``resnet50`` state_dict (``fc.*`` is ImageNet's head and is dropped)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors alike
        raise ModelError(f"{path}: not a PyTorch weights file ({type(exc).__name__})") from None
    if isinstance(state, Mapping) and "state_dict" in state:  # a training checkpoint
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise ModelError(f"{path}: expected a state_dict (a mapping of tensors)")
    state = {k.removeprefix("module."): v for k, v in state.items() if not k.startswith("fc.")}
    try:
        result = body.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a tensor of the wrong shape: another network's weights
        reason = str(exc).strip().splitlines()[-1].strip()
        raise ModelError(f"{path}: not torchvision ResNet50 weights: {reason}") from None
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise ModelError(
            f"{path}: not torchvision ResNet50 weights (missing {missing[:3]}, "
            f"unexpected {list(result.unexpected_keys)[:3]})"
        )
