"""Time-series classifiers for UCR-style inputs [B, channels, length] (Wang, Yan & Oates 2017, the
standard baselines): `fcn1d`, three conv-BN-ReLU blocks of 128, 256 and 128 filters (kernels 8, 5, 3)
then global average pooling; `resnet1d`, three residual blocks of 64, 128 and 128 filters, each three
conv-BN layers (kernels 8, 5, 3) with a 1x1 projection shortcut. Both keep the length ("same"
padding), accept any length, and have the stem/stages/head layout the rest of the code relies on.
Convolutions carry no bias (batch norm follows)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from enlighten.models.layers import GlobalAvgPool, StagedNet, as_input_shape, check_width, scaled


class SameConv1d(nn.Conv1d):
    """A bias-free convolution that keeps the length, padding (k-1)//2 on the left and k//2 on the
    right as TensorFlow's "same" does (torch's padding="same" copies the input for even kernels)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int) -> None:
        super().__init__(in_ch, out_ch, kernel, bias=False)
        self.pad = ((kernel - 1) // 2, kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.pad))


def _conv_bn(in_ch: int, out_ch: int, kernel: int) -> list[nn.Module]:
    return [SameConv1d(in_ch, out_ch, kernel), nn.BatchNorm1d(out_ch)]


def _conv_bn_relu(in_ch: int, out_ch: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(*_conv_bn(in_ch, out_ch, kernel), nn.ReLU(inplace=True))


def fcn1d(num_classes: int, input_shape: tuple[int, ...] | list[int], width: float = 1.0) -> nn.Module:
    width = check_width(width)
    channels, _ = as_input_shape(input_shape, ndim=2)
    c1, c2, c3 = (scaled(c, width) for c in (128, 256, 128))
    stem = _conv_bn_relu(channels, c1, 8)
    stages = nn.Sequential(_conv_bn_relu(c1, c2, 5), _conv_bn_relu(c2, c3, 3))
    return StagedNet(stem, stages, c3, num_classes, GlobalAvgPool())


class ResidualBlock1d(nn.Module):
    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv_bn(in_ch, out_ch, 8),
            nn.ReLU(inplace=True),
            *_conv_bn(out_ch, out_ch, 5),
            nn.ReLU(inplace=True),
            *_conv_bn(out_ch, out_ch, 3),
        )
        self.shortcut = nn.Sequential(*_conv_bn(in_ch, out_ch, 1))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


def resnet1d(num_classes: int, input_shape: tuple[int, ...] | list[int], width: float = 1.0) -> nn.Module:
    width = check_width(width)
    channels, _ = as_input_shape(input_shape, ndim=2)
    c1, c2, c3 = (scaled(c, width) for c in (64, 128, 128))
    stem = ResidualBlock1d(channels, c1)
    stages = nn.Sequential(ResidualBlock1d(c1, c2), ResidualBlock1d(c2, c3))
    return StagedNet(stem, stages, c3, num_classes, GlobalAvgPool())
