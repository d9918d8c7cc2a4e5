"""Image folders: `root/<train_split>/<class>/**/*.jpg` and `root/<test_split>/<class>/**/*`.

Folders that fit in memory (the CIFAR-10 copy, Tiny-ImageNet at 64 px) are decoded once, cached as a
uint8 tensor file keyed by the folder's path, file list and image size, and then held on the device
like every other in-memory dataset. ImageNet-size folders stream through a DataLoader with workers
(random-resized crops decoded in the workers, flip and normalization on the device).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2 import RandomResizedCrop
from torchvision.transforms.v2 import functional as TF

from enlighten.data.base import DataError, InMemoryData, Normalize, balanced_subset, finish_split
from enlighten.results import atomic_torch_save

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def list_split(split_dir: Path, classes: list[str] | None = None) -> tuple[list[str], list[Path], list[int]]:
    """(classes, files, labels) of one split; classes are the sub-folder names, sorted."""
    if not split_dir.is_dir():
        raise DataError(
            f"Image folder split not found: {split_dir}. Expected <root>/<split>/<class>/<images>; "
            f"set dataset.root to the folder that holds it."
        )
    found = sorted(d.name for d in split_dir.iterdir() if d.is_dir())
    if not found:
        raise DataError(f"No class folders in {split_dir}: expected {split_dir}/<class>/<images>.")
    if classes is None:
        classes = found
    elif set(found) - set(classes):
        extra = sorted(set(found) - set(classes))[:5]
        raise DataError(f"{split_dir} has classes that the training split lacks: {extra}.")
    files, labels = [], []
    for label, name in enumerate(classes):
        cdir = split_dir / name
        members = sorted(p for p in cdir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if cdir.is_dir() else []
        if not members and cdir.is_dir():
            raise DataError(f"Empty class folder: {cdir} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}).")
        files += members
        labels += [label] * len(members)
    return classes, files, labels


def decode(path: Path, image_size: int, channels: int) -> Tensor:
    """Decode one image to uint8 [C, S, S], resizing (shorter side, then centre crop) when needed."""
    mode = ImageReadMode.RGB if channels == 3 else ImageReadMode.GRAY
    try:
        img = decode_image(str(path), mode=mode)
    except Exception as e:  # noqa: BLE001
        raise DataError(f"Cannot decode image {path}: {e}. Remove or replace the file.") from e
    if img.shape[1:] != (image_size, image_size):
        img = TF.center_crop(TF.resize(img, image_size, antialias=True), [image_size, image_size])
    return img


def _fingerprint(files: list[Path]) -> str:
    h = hashlib.sha1()
    for f in files:
        st = f.stat()
        h.update(f"{f}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def decode_split(files: list[Path], labels: list[int], image_size: int, channels: int) -> tuple[Tensor, Tensor]:
    # Decoding happens in C++ and releases the GIL, so threads use every core.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        images = list(pool.map(lambda f: decode(f, image_size, channels), files, chunksize=256))
    return torch.stack(images), torch.tensor(labels, dtype=torch.long)


def load_cached(root: Path, split_dirs: tuple[str, str], image_size: int, channels: int, cache_dir: str) -> dict:
    """Decode both splits once; later runs (and sweep jobs) read the cached uint8 tensors."""
    classes, train_files, train_labels = list_split(root / split_dirs[0])
    _, test_files, test_labels = list_split(root / split_dirs[1], classes)
    key = hashlib.sha1(
        f"{root.resolve()}|{split_dirs}|{image_size}|{channels}|"
        f"{_fingerprint(train_files)}|{_fingerprint(test_files)}".encode()
    ).hexdigest()[:20]
    cache = Path(cache_dir) / "image_folder" / f"{root.name}-{image_size}px-{key}.pt"
    if cache.is_file():
        try:
            return torch.load(cache, weights_only=True)
        except Exception:  # noqa: BLE001 - a damaged cache is rebuilt, never trusted
            pass
    train_x, train_y = decode_split(train_files, train_labels, image_size, channels)
    test_x, test_y = decode_split(test_files, test_labels, image_size, channels)
    data = {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y, "classes": classes}
    try:
        atomic_torch_save(data, cache)
    except OSError:
        pass  # an unwritable cache only costs the next run a decode
    return data


def image_folder(
    root: str,
    image_size: int = 32,
    channels: int = 3,
    train_split: str = "train",
    test_split: str = "test",
    fraction: float = 1.0,
    fraction_seed: int = 0,
    val_fraction: float = 0.0,
    mean: Optional[list] = None,
    std: Optional[list] = None,
    crop_padding: int = 4,
    flip: bool = True,
    in_memory: Optional[bool] = None,
    max_memory_gb: float = 16.0,
    num_workers: int = 8,
    cache_dir: str = "",
) -> InMemoryData | StreamingImageFolder:
    """An image-classification folder, in memory when it fits (`in_memory`: null, or true | false)."""
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(
            f"dataset.root={root!r} is not a directory ({path.resolve()}). Point it at a folder with "
            f"{train_split}/<class>/* and {test_split}/<class>/* (for the shared CIFAR-10 copy: "
            f"python ../shared/data/cifar10/prepare.py OUT, then dataset.root=OUT)."
        )
    if in_memory not in (None, True, False):
        raise DataError(f"dataset.in_memory must be true, false or null (when it fits), got {in_memory!r}.")
    if in_memory is None:
        _, files, _ = list_split(path / train_split)
        in_memory = len(files) * channels * image_size**2 <= max_memory_gb * 2**30
    if not in_memory:
        if val_fraction:
            raise DataError(
                f"dataset.val_fraction={val_fraction}: a validation split is held only in memory, and "
                f"{path} is read from disk (dataset.in_memory=false, or larger than dataset.max_memory_gb): "
                f"give it a folder of its own as the test split, or load it in memory."
            )
        return StreamingImageFolder(
            path, image_size, channels, (train_split, test_split), fraction, fraction_seed, mean, std, flip, num_workers
        )
    d = load_cached(path, (train_split, test_split), image_size, channels, cache_dir or str(path / ".cache"))
    return finish_split(
        d["train_x"],
        d["train_y"],
        d["test_x"],
        d["test_y"],
        num_classes=len(d["classes"]),
        fraction=fraction,
        fraction_seed=fraction_seed,
        val_fraction=val_fraction,
        mean=mean,
        std=std,
        crop_padding=crop_padding,
        flip=flip,
        name=path.name,
    )


class _FolderDataset(torch.utils.data.Dataset):
    def __init__(self, files: list[Path], labels: list[int], image_size: int, channels: int, train: bool):
        self.files, self.labels, self.size, self.channels, self.train = files, labels, image_size, channels, train
        # the standard ImageNet crop for training; flips happen batched on the device
        self.random_crop = RandomResizedCrop(image_size, antialias=True)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[Tensor, int]:
        """`item` is an index, or for training (index, crop seed)."""
        i, crop_seed = item if isinstance(item, tuple) else (item, None)
        mode = ImageReadMode.RGB if self.channels == 3 else ImageReadMode.GRAY
        try:
            img = decode_image(str(self.files[i]), mode=mode)
        except Exception as e:  # noqa: BLE001
            raise DataError(f"Cannot decode image {self.files[i]}: {e}") from e
        if self.train:
            # The crop comes from the sample's own seed, drawn with the epoch's order: the same on any
            # number of workers or processes (worker seeds would repeat on every process).
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(crop_seed)
                img = self.random_crop(img)
        else:
            img = TF.center_crop(TF.resize(img, int(self.size / 0.875), antialias=True), [self.size, self.size])
        return img, self.labels[i]


class StreamingImageFolder:
    """A folder too large for memory, read by DataLoader workers; same interface as InMemoryData."""

    tokens = False

    def __init__(self, root, image_size, channels, splits, fraction, fraction_seed, mean, std, flip, num_workers):
        classes, files, labels = list_split(root / splits[0])
        keep = balanced_subset(torch.tensor(labels), fraction, fraction_seed).tolist()
        self.train = _FolderDataset([files[i] for i in keep], [labels[i] for i in keep], image_size, channels, True)
        _, tfiles, tlabels = list_split(root / splits[1], classes)
        self.test = _FolderDataset(tfiles, tlabels, image_size, channels, False)
        self.num_classes = len(classes)
        self.input_shape = (channels, image_size, image_size)
        self.normalize = Normalize(mean or [0.485, 0.456, 0.406][:channels], std or [0.229, 0.224, 0.225][:channels])
        self.flip, self.num_workers, self.device = flip, num_workers, torch.device("cpu")
        self.name = root.name

    @property
    def num_train(self) -> int:
        return len(self.train)

    @property
    def num_test(self) -> int:
        return len(self.test)

    @property
    def train_y(self) -> Tensor:
        return torch.tensor(self.train.labels)

    def to(self, device) -> StreamingImageFolder:
        self.device = torch.device(device)
        return self

    def steps_per_epoch(self, batch_size: int) -> int:
        return self.num_train // batch_size

    def _loader(self, dataset, batch_size, sampler) -> Iterator[tuple[Tensor, Tensor]]:
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
            drop_last=dataset.train,
            persistent_workers=False,
            # Its own generator: the base seed every iterator draws would otherwise come from torch's global
            # one, which Mixup and dropout draw from (a resume within an epoch would draw it twice).
            generator=torch.Generator(),
        )
        for x, y in loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def train_batches(
        self, batch_size: int, generator: torch.Generator, shard: tuple[int, int] = (0, 1), start: int = 0
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """With `shard=(rank, world_size)` the workers read only this process's slice of each global
        batch of the shared order (not DistributedSampler, which shuffles with its own seed and deals
        samples out round-robin: here the processes together see exactly the one-process batches)."""
        rank, world = shard
        local = batch_size // world
        steps = self.steps_per_epoch(batch_size)
        order = torch.randperm(self.num_train, generator=generator)[: steps * batch_size].view(steps, batch_size)
        crop_seeds = torch.randint(2**62, (steps, batch_size), generator=generator)
        mine = list(
            zip(*(t[start:, rank * local : (rank + 1) * local].flatten().tolist() for t in (order, crop_seeds)))
        )
        for _ in range(
            start if self.flip else 0
        ):  # the skipped batches' flips: the generator goes on where they left it
            torch.rand(batch_size, generator=generator)
        for x, y in self._loader(self.train, local, mine):
            if self.flip:  # drawn for the global batch, so the generator advances alike on every process
                flip = (torch.rand(batch_size, generator=generator) < 0.5)[rank * local : (rank + 1) * local]
                x = torch.where(flip.to(self.device)[:, None, None, None], x.flip(3), x)
            yield self.normalize(x), y

    def eval_batches(self, split: str, batch_size: int, indices: Tensor | None = None):
        if split == "test":
            ds = self.test
        else:
            ds = _FolderDataset(self.train.files, self.train.labels, self.train.size, self.train.channels, False)
        sampler = range(len(ds)) if indices is None else indices.tolist()
        for x, y in self._loader(ds, batch_size, sampler):
            yield self.normalize(x), y
