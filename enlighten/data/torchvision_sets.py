"""CIFAR-10/100, MNIST and Fashion-MNIST through torchvision, held on the device as uint8."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torchvision

from enlighten.data.base import DataError, InMemoryData, download_lock, finish_split

# (torchvision class, folder torchvision looks for under root, channels-last numpy images?)
_SETS = {
    "cifar10": (torchvision.datasets.CIFAR10, "cifar-10-batches-py", True),
    "cifar100": (torchvision.datasets.CIFAR100, "cifar-100-python", True),
    "mnist": (torchvision.datasets.MNIST, "MNIST/raw", False),
    "fashion_mnist": (torchvision.datasets.FashionMNIST, "FashionMNIST/raw", False),
}


def _load_split(name: str, root: str, train: bool, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    cls, folder, hwc = _SETS[name]
    expected = Path(root).resolve() / folder
    fetching = download and not (expected.is_dir() and any(expected.iterdir()))  # only then a lock file is written
    try:
        with download_lock(root, name) if fetching else contextlib.nullcontext():
            ds = cls(root=root, train=train, download=download)
    except Exception as e:  # noqa: BLE001 - torchvision raises RuntimeError, URLError, OSError...
        if expected.is_dir() and any(p.is_file() and p.stat().st_size for p in expected.iterdir()):
            raise DataError(
                f"{name} at {expected} is unreadable: its files are there but truncated or corrupt "
                f"({type(e).__name__}: "
                f"{e}). Replace them with a complete copy (or empty the folder and set dataset.download=true)."
            ) from e
        how = (
            "the download failed (no network?); download it on a machine with internet access and copy it there"
            if download
            else "set dataset.download=true to let torchvision fetch it, or copy the files there"
        )
        raise DataError(
            f"{name} not found at {expected} ({type(e).__name__}: {e}). To get it: {how}, "
            f"or point paths.data_dir (env ENLIGHTEN_DATA_DIR) at a folder that holds it."
        ) from e
    x = torch.as_tensor(np.asarray(ds.data))
    x = x.permute(0, 3, 1, 2) if hwc else x.unsqueeze(1)  # -> [N, C, H, W]
    return x.contiguous(), torch.as_tensor(np.asarray(ds.targets), dtype=torch.long)


def torchvision_dataset(
    name: str,
    root: str,
    download: bool = True,
    fraction: float = 1.0,
    fraction_seed: int = 0,
    val_fraction: float = 0.0,
    mean: Optional[list] = None,
    std: Optional[list] = None,
    crop_padding: int = 4,
    flip: bool = True,
) -> InMemoryData:
    """Load a torchvision dataset (`name` in cifar10, cifar100, mnist, fashion_mnist) into memory.

    `fraction` keeps a class-balanced share of the training split (drawn with `fraction_seed`) after
    `val_fraction` of it is held out for validation (`balanced_split`); the test split stays whole.
    `mean`/`std` default to the statistics of the training subset.
    """
    if name not in _SETS:
        raise DataError(f"Unknown torchvision dataset {name!r}; choose one of {sorted(_SETS)}.")
    train_x, train_y = _load_split(name, root, True, download)
    test_x, test_y = _load_split(name, root, False, download)
    return finish_split(
        train_x,
        train_y,
        test_x,
        test_y,
        num_classes=int(train_y.max()) + 1,
        fraction=fraction,
        fraction_seed=fraction_seed,
        val_fraction=val_fraction,
        mean=mean,
        std=std,
        crop_padding=crop_padding,
        flip=flip,
        name=name,
    )
