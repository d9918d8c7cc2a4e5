"""Pre-activation ResNets for small images (He et al. 2016, "Identity Mappings in Deep ResNets").

Blocks apply BN-ReLU *before* each conv, so the residual path is a pure sum of block outputs.
This follows the widely used CIFAR variant: a 3x3 stem conv with no BN/ReLU after it (the first
block's BN-ReLU plays that role), 1x1 conv shortcuts without BN where the shape changes (taking
the pre-activated input), and, by default, no final BN-ReLU before pooling. With that default the
parameter counts are the usual CIFAR references: 11,171,146 (18) and 23,509,066 (50) at 10 classes.
``final_norm=True`` adds the paper's final BN-ReLU; it is applied in ``forward_head`` before pooling
so that ``forward_features`` stays ``stages(stem(x))`` (see :class:`~enlighten.models.resnet.StagedNet`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from enlighten.models.layers import (
    GlobalAvgPool,
    StagedNet,
    as_input_shape,
    check_width,
    conv1x1,
    conv3x3,
    scaled,
)


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3, BN-ReLU-conv3x3, plus the shortcut."""

    expansion = 1

    def __init__(self, in_ch: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_ch = planes * self.expansion
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = conv3x3(in_ch, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = conv1x1(in_ch, out_ch, stride) if stride != 1 or in_ch != out_ch else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(x))
        # A projection sees the pre-activated input; an identity shortcut carries x untouched.
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(self.relu(self.bn2(out)))
        return out + shortcut


class PreActBottleneck(nn.Module):
    """BN-ReLU-conv1x1 (reduce), BN-ReLU-conv3x3 (strided), BN-ReLU-conv1x1 (expand x4)."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_ch = planes * self.expansion
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = conv1x1(in_ch, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = conv1x1(in_ch, out_ch, stride) if stride != 1 or in_ch != out_ch else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + shortcut


class PreActResNet(StagedNet):
    """Pre-activation ResNet with a 3x3 stride-1 stem and no max-pool (32x32 ends as 4x4)."""

    def __init__(
        self,
        block: type[PreActBlock] | type[PreActBottleneck],
        depths: Sequence[int],
        num_classes: int,
        in_chans: int,
        width: float = 1.0,
        final_norm: bool = False,
        base_widths: Sequence[int] = (64, 128, 256, 512),
    ) -> None:
        planes = [scaled(c, width) for c in base_widths]
        stem = conv3x3(in_chans, planes[0])
        stages = []
        in_ch = planes[0]
        for i, (depth, p) in enumerate(zip(depths, planes)):
            blocks = []
            for j in range(depth):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(block(in_ch, p, stride))
                in_ch = p * block.expansion
            stages.append(nn.Sequential(*blocks))
        norm = nn.Sequential(nn.BatchNorm2d(in_ch), nn.ReLU(inplace=True)) if final_norm else None
        super().__init__(stem, nn.Sequential(*stages), in_ch, num_classes, GlobalAvgPool(), final_norm=norm)


def preactresnet18(
    num_classes: int,
    input_shape: tuple[int, ...] | list[int],
    width: float = 1.0,
    final_norm: bool = False,
) -> nn.Module:
    """PreActResNet-18 (11,171,146 parameters at width 1, 10 classes, without final_norm)."""
    width = check_width(width)
    shape = as_input_shape(input_shape)
    return PreActResNet(PreActBlock, (2, 2, 2, 2), num_classes, shape[0], width, final_norm)


def preactresnet50(
    num_classes: int,
    input_shape: tuple[int, ...] | list[int],
    width: float = 1.0,
    final_norm: bool = False,
) -> nn.Module:
    """PreActResNet-50 (23,509,066 parameters at width 1, 10 classes, without final_norm)."""
    width = check_width(width)
    shape = as_input_shape(input_shape)
    return PreActResNet(PreActBottleneck, (3, 4, 6, 3), num_classes, shape[0], width, final_norm)
