"""Pieces every model of the zoo shares: the staged-network skeleton and small helpers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def is_weight(p: torch.Tensor) -> bool:
    """A parameter of 2 or more dimensions: weight matrices and kernels, and also embedding tables and
    positional embeddings (a ViT's pos_embed and cls_token); not a bias or a normalization scale. What
    `model.init_scale` multiplies and `diagnostics=weight_distance` follows."""
    return p.ndim >= 2


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
        layout = {1: "(length,)", 2: "(channels, length)", 3: "(C, H, W)"}.get(ndim, f"{ndim} sizes")
        raise ValueError(f"input_shape must be {layout} of one sample, got {shape}.")
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"input_shape must have positive sizes, got {shape}.")
    return shape


class GlobalAvgPool(nn.Module):
    """Average over every dimension after the channels: [B, C, H, W] or [B, C, L] -> [B, C]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=tuple(range(2, x.ndim)))


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


def conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution without bias (a BatchNorm follows, which has its own shift)."""
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias, used for projections."""
    return nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False)
