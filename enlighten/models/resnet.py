"""CIFAR ResNet-18, plus the small interface every model in the zoo shares.

The shared pieces (:class:`StagedNet`, :func:`scaled`, :func:`check_width`,
:func:`as_input_shape`) live here because ResNet is the base the other conv nets
follow; the other model modules import them from this one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


# --------------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------------


def check_width(width: float) -> float:
    """Reject non-positive width multipliers early, with the offending value in the message."""
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width!r}.")
    return float(width)


def scaled(channels: int, width: float) -> int:
    """Scale a channel/hidden count by the width multiplier (rounded, at least 1)."""
    return max(1, int(round(channels * width)))


def as_input_shape(input_shape: Sequence[int], ndim: int | None = 3) -> tuple[int, ...]:
    """Turn a list/ListConfig/tuple shape into a tuple of ints, checking its length.

    Hydra hands over a ListConfig; the models only need plain ints.
    """
    shape = tuple(int(s) for s in input_shape)
    if ndim is not None and len(shape) != ndim:
        raise ValueError(f"input_shape must be (C, H, W) of one sample, got {shape}.")
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"input_shape must have positive sizes, got {shape}.")
    return shape


class GlobalAvgPool(nn.Module):
    """Average over the spatial dimensions: [B, C, H, W] -> [B, C]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class StagedNet(nn.Module):
    """stem -> stages -> (final_norm -> pool) -> head, with timm's method names.

    ``forward_features`` is exactly ``stages(stem(x))`` so that Manifold Mixup can run
    ``stem`` and a prefix of ``stages``, mix, and continue with the rest of ``stages`` and
    ``forward_head``. Anything that must follow the last stage (the optional final BN-ReLU of
    pre-activation nets, pooling) therefore lives in ``forward_head``.
    """

    def __init__(
        self,
        stem: nn.Module,
        stages: nn.Sequential,
        num_features: int,
        num_classes: int,
        pool: nn.Module,
        final_norm: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_features = num_features
        self.stem = stem
        self.stages = stages
        self.final_norm = final_norm if final_norm is not None else nn.Identity()
        self.pool = pool
        self.head = nn.Linear(num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Unpooled output of the last stage."""
        return self.stages(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool features; return the pooled [B, num_features] if ``pre_logits`` else logits."""
        x = self.pool(self.final_norm(x))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# --------------------------------------------------------------------------------------------------
# ResNet-18
# --------------------------------------------------------------------------------------------------


def conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution without bias (a BatchNorm follows, which has its own shift)."""
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias, used for projections."""
    return nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False)


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
