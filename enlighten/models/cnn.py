"""A small conv net for quick CPU runs (MNIST, 8x8 digits, smoke tests).

conv(32)-BN-ReLU-maxpool stem, then conv(64)-BN-ReLU-maxpool and conv(128)-BN-ReLU,
global average pool, linear: about 94k parameters at width 1. Pooling early keeps it fast on a
CPU (the convolutions at full resolution would cost most of the time); global pooling makes it
independent of the input size; the two 2x2 max-pools need at least 4x4 inputs.
"""

from __future__ import annotations

from torch import nn

from enlighten.models.layers import GlobalAvgPool, StagedNet, as_input_shape, check_width, conv3x3, scaled


def _conv_bn_relu(in_ch: int, out_ch: int, pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = [conv3x3(in_ch, out_ch), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


def cnn(num_classes: int, input_shape: tuple[int, ...] | list[int], width: float = 1.0) -> nn.Module:
    """Three conv-BN-ReLU blocks (32, 64, 128 channels x width), max-pools after the first two."""
    width = check_width(width)
    in_chans, height, width_px = as_input_shape(input_shape)
    if min(height, width_px) < 4:
        raise ValueError(
            f"cnn needs inputs of at least 4x4 (two 2x2 max-pools), got input_shape {(in_chans, height, width_px)}."
        )
    c1, c2, c3 = (scaled(c, width) for c in (32, 64, 128))
    stem = _conv_bn_relu(in_chans, c1, pool=True)
    stages = nn.Sequential(_conv_bn_relu(c1, c2, pool=True), _conv_bn_relu(c2, c3, pool=False))
    return StagedNet(stem, stages, c3, num_classes, GlobalAvgPool())
