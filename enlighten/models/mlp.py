"""A fully connected baseline: flatten, ``depth`` hidden Linear-ReLU layers, linear head."""

from __future__ import annotations

import math

from torch import nn

from enlighten.models.layers import StagedNet, as_input_shape, check_width, scaled


def mlp(
    num_classes: int,
    input_shape: tuple[int, ...] | list[int],
    width: float = 1.0,
    hidden: int = 512,
    depth: int = 2,
) -> nn.Module:
    """MLP with ``depth`` hidden layers of ``hidden * width`` units.

    ``stem`` is the flatten, ``stages`` the hidden layers (each a Linear-ReLU pair, so Manifold
    Mixup can mix after any of them), and there is no pooling: features are already [B, D].
    """
    width = check_width(width)
    shape = as_input_shape(input_shape, ndim=None)
    if hidden < 1 or depth < 0:
        raise ValueError(f"mlp needs hidden >= 1 and depth >= 0, got hidden={hidden}, depth={depth}.")
    in_features = math.prod(shape)
    units = scaled(hidden, width)
    layers = []
    for _ in range(depth):
        layers.append(nn.Sequential(nn.Linear(in_features, units), nn.ReLU(inplace=True)))
        in_features = units
    return StagedNet(nn.Flatten(1), nn.Sequential(*layers), in_features, num_classes, nn.Identity())
