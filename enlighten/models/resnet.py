"""CIFAR ResNet-18: 3x3 stem, no max-pool (11,173,962 parameters at width 1, 10 classes)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from enlighten.models.layers import GlobalAvgPool, StagedNet, as_input_shape, check_width, conv1x1, conv3x3, scaled


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a residual connection (post-activation, He et al. 2015).

    The shortcut is a 1x1 conv + BN only where the stride or channel count changes, so
    identity blocks keep a clean gradient path.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_ch, out_ch, stride)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = conv3x3(out_ch, out_ch)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(conv1x1(in_ch, out_ch, stride), nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(StagedNet):
    """ResNet for small images: 3x3 stride-1 stem and no max-pool.

    The ImageNet stem (7x7 stride 2 + max-pool) would shrink a 32x32 input to a 1x1 map
    by the last stage; here the last stage sees 4x4.
    """

    def __init__(
        self,
        depths: Sequence[int],
        num_classes: int,
        in_chans: int,
        width: float = 1.0,
        base_widths: Sequence[int] = (64, 128, 256, 512),
    ) -> None:
        widths = [scaled(c, width) for c in base_widths]
        stem = nn.Sequential(conv3x3(in_chans, widths[0]), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        stages = []
        in_ch = widths[0]
        for i, (depth, out_ch) in enumerate(zip(depths, widths)):
            blocks = []
            for j in range(depth):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(BasicBlock(in_ch, out_ch, stride))
                in_ch = out_ch
            stages.append(nn.Sequential(*blocks))
        super().__init__(stem, nn.Sequential(*stages), in_ch, num_classes, GlobalAvgPool())


def resnet18(num_classes: int, input_shape: tuple[int, ...] | list[int], width: float = 1.0) -> nn.Module:
    """CIFAR ResNet-18 (11,173,962 parameters at width 1, 10 classes)."""
    width = check_width(width)
    shape = as_input_shape(input_shape)
    return ResNet((2, 2, 2, 2), num_classes, in_chans=shape[0], width=width)
