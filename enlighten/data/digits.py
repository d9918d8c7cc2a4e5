"""scikit-learn's bundled 8x8 digits: a real dataset that needs no download (the demo's default)."""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from enlighten.data.base import InMemoryData, finish_split


def digits(
    test_size: float = 0.2,
    split_seed: int = 0,
    fraction: float = 1.0,
    fraction_seed: int = 0,
    val_fraction: float = 0.0,
    mean: Optional[list] = None,
    std: Optional[list] = None,
    crop_padding: int = 1,
    flip: bool = False,
) -> InMemoryData:
    """1,797 images, 10 classes, split into train/test by a fixed stratified split (`split_seed`)."""
    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # 0..16 -> uint8
    tr, te = train_test_split(
        np.arange(len(images)), test_size=test_size, random_state=split_seed, stratify=bunch.target
    )
    x, y = torch.from_numpy(images), torch.from_numpy(bunch.target.astype(np.int64))
    return finish_split(
        x[tr],
        y[tr],
        x[te],
        y[te],
        num_classes=10,
        fraction=fraction,
        fraction_seed=fraction_seed,
        val_fraction=val_fraction,
        mean=mean,
        std=std,
        crop_padding=crop_padding,
        flip=flip,
        name="digits",
    )
