"""Generated images for fast tests: every class is a fixed random template plus noise."""

from __future__ import annotations

import torch

from enlighten.data.base import InMemoryData, finish_split


def synthetic(
    num_classes: int = 10,
    num_train: int = 512,
    num_test: int = 256,
    channels: int = 3,
    image_size: int = 32,
    noise: float = 0.5,
    seed: int = 0,
    fraction: float = 1.0,
    fraction_seed: int = 0,
    val_fraction: float = 0.0,
    crop_padding: int = 0,
    flip: bool = False,
) -> InMemoryData:
    """Learnable but not trivial at high `noise` (the share of each pixel that is noise)."""
    g = torch.Generator().manual_seed(seed)
    templates = torch.rand(num_classes, channels, image_size, image_size, generator=g)

    def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(n) % num_classes
        x = (1 - noise) * templates[y] + noise * torch.rand(n, channels, image_size, image_size, generator=g)
        return (x * 255).round().to(torch.uint8), y

    (train_x, train_y), (test_x, test_y) = make(num_train), make(num_test)
    return finish_split(
        train_x,
        train_y,
        test_x,
        test_y,
        num_classes=num_classes,
        fraction=fraction,
        fraction_seed=fraction_seed,
        val_fraction=val_fraction,
        mean=None,
        std=None,
        crop_padding=crop_padding,
        flip=flip,
        name="synthetic",
    )
