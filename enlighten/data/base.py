"""Datasets held as tensors on the training device, augmented a whole batch at a time.

Everything that fits in memory (CIFAR, MNIST, digits, Tiny-ImageNet at 64 px) is stored as uint8 on
the device. A training batch is produced by one gather that does random crop (with zero padding) and
horizontal flip together, followed by one fused normalization: no per-sample PIL transforms and no
DataLoader workers (the habit of cifar10-airbench).

All the randomness of the data pipeline (sample order, crop offsets, flips) comes from one CPU
``torch.Generator`` owned by the training loop, so a run is reproducible on any device and the
generator's state can be checkpointed.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from enlighten.config import check_fraction, check_val_fraction
from enlighten.errors import UserError


@contextlib.contextmanager
def download_lock(root: Path | str, name: str):
    """Held while `name` is fetched into `root`: the tasks of a job array that start together download
    one at a time (the first fetches, the others then find the files), never into one folder at once.
    An exclusive `flock`, which the kernel releases when its process dies. A folder that cannot be
    written (a read-only copy of the data) cannot be downloaded into either: no lock is needed there;
    nor can a file system mounted without locks (Lustre without `flock`) hold one: it goes on unlocked."""
    try:
        Path(root).mkdir(parents=True, exist_ok=True)
        handle = open(Path(root) / f".{name}.download.lock", "a")
    except OSError:
        handle = None
    with handle or contextlib.nullcontext():
        if handle is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
        yield


class DataError(UserError, RuntimeError):
    """Missing, unreadable or inconsistent data, with what to do about it."""


def balanced_split(labels: Tensor, fraction: float, seed: int, val_fraction: float = 0.0) -> tuple[Tensor, Tensor]:
    """(training subset, validation split): sorted indices, both class-balanced, drawn with their own seed.

    Each class is put in one random order (from `seed`): the validation split is the last
    `val_fraction` of it, and the training subset the first `fraction` of what remains. So, for one
    seed, the subsets of every `fraction` are nested (each a prefix) and all are disjoint from the
    validation split, and the dataset-size axis of a sweep does not move when the training seed does
    (unless `dataset.fraction_seed` follows it). Every class keeps at least one training sample (and
    one validation sample when `val_fraction` > 0).
    """
    check_fraction(fraction)
    check_val_fraction(val_fraction)
    if fraction == 1.0 and val_fraction == 0.0:
        return torch.arange(len(labels)), torch.zeros(0, dtype=torch.long)
    g = torch.Generator().manual_seed(seed)
    train, val = [], []
    for c in torch.unique(labels):
        idx = torch.nonzero(labels == c).flatten()
        order = idx[torch.randperm(len(idx), generator=g)]
        n_val = max(1, round(val_fraction * len(idx))) if val_fraction else 0
        if n_val >= len(idx):
            raise DataError(
                f"dataset.val_fraction={val_fraction} leaves class {int(c)} ({len(idx)} samples) no training "
                f"sample: lower it."
            )
        pool = len(idx) - n_val
        train.append(order[: max(1, round(fraction * pool))])
        val.append(order[len(idx) - n_val :])
    return torch.cat(train).sort().values, torch.cat(val).sort().values


def balanced_subset(labels: Tensor, fraction: float, seed: int) -> Tensor:
    """Sorted indices of a class-balanced subset holding `fraction` of every class (no validation
    split; see `balanced_split`)."""
    return balanced_split(labels, fraction, seed)[0]


@dataclass
class Normalize:
    """x -> (x / scale - mean) / std per channel, as one multiply and one subtract."""

    mean: Sequence[float]
    std: Sequence[float]
    scale: float = 255.0  # uint8 images; 1.0 for data already in physical units
    # (device, ndim) -> (multiplier, offset): built once per device, since a copy from host lists to a
    # GPU waits for the device.
    _constants: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __call__(self, x: Tensor) -> Tensor:
        key = (x.device, x.ndim)
        if key not in self._constants:
            shape = (1, -1) + (1,) * (x.ndim - 2)
            mean = torch.tensor(self.mean, dtype=torch.float32).view(shape)
            std = torch.tensor(self.std, dtype=torch.float32).view(shape)
            self._constants[key] = ((1.0 / (self.scale * std)).to(x.device), (mean / std).to(x.device))
        multiplier, offset = self._constants[key]
        # In place on a fresh float copy (never on the caller's tensor): on CPU much faster than
        # one broadcast addcmul.
        return x.to(torch.float32, copy=True).mul_(multiplier).sub_(offset)


class InMemoryData:
    """A classification dataset whose train and test splits live as tensors on one device.

    Args:
        train_x, test_x: samples, uint8 images [N, C, H, W] (or any tensor for other modalities).
        train_y, test_y: int64 labels [N].
        num_classes: number of classes.
        normalize: applied to every batch (None: pass through, e.g. for token ids).
        crop_padding: random-crop padding in pixels for training batches (0: no crop).
        flip: random horizontal flips for training batches.
        name: for logs.
        val_x, val_y: a validation split held out from the training images (`balanced_split`), evaluated
            like the test split; none by default. Selections (a best epoch, a best setting) read it, the
            test split only gives final numbers.
    """

    tokens = False  # inputs are continuous (images, series): they can be mixed
    noisy_labels: tuple[Tensor, Tensor] | None = None  # (indices, new labels) of `with_label_noise`

    def __init__(
        self,
        train_x: Tensor,
        train_y: Tensor,
        test_x: Tensor,
        test_y: Tensor,
        num_classes: int,
        normalize: Normalize | None = None,
        crop_padding: int = 0,
        flip: bool = False,
        name: str = "",
        val_x: Tensor | None = None,
        val_y: Tensor | None = None,
    ) -> None:
        if val_x is None or val_y is None:
            val_x, val_y = test_x[:0], test_y[:0]
        if len(train_x) != len(train_y) or len(test_x) != len(test_y) or len(val_x) != len(val_y):
            raise DataError(f"{name}: samples and labels differ in length.")
        if len(train_x) == 0 or len(test_x) == 0:
            raise DataError(f"{name}: the training or test split is empty.")
        for split, x in (("training", train_x), ("validation", val_x), ("test", test_x)):
            if len(x) and x.is_floating_point() and not torch.isfinite(x).all():
                bad = (~torch.isfinite(x)).flatten(1).any(1).nonzero().flatten()
                raise DataError(
                    f"{name}: the {split} split has non-finite values (NaN or inf) in {len(bad)} samples, the "
                    f"first at index {bad[0].item()}. Clean or impute the data before training."
                )
        if num_classes < 2:
            raise DataError(
                f"{name}: {num_classes} class in the data; a classifier needs at least 2 (check the label "
                f"column, or the subset that dataset.fraction keeps)."
            )
        if train_y.ndim == 1 and len(test_y):  # one label per sample (token targets are [N, T])
            unseen = sorted(set(test_y.unique().tolist()) - set(train_y.unique().tolist()))
            if unseen:
                raise DataError(
                    f"{name}: the test split has classes {unseen[:5]} that the training split lacks, so its "
                    f"accuracy would count them as errors it cannot learn: check the split or the labels."
                )
        if crop_padding and train_x.ndim != 4:
            raise DataError(f"{name}: random crops need images [N, C, H, W], got shape {tuple(train_x.shape)}.")
        self.name = name
        self.num_classes = int(num_classes)
        self.normalize = normalize
        self.crop_padding = int(crop_padding)
        self.flip = bool(flip)
        self.input_shape = tuple(train_x.shape[1:])
        self.train_y, self.test_x, self.test_y, self.val_x, self.val_y = train_y, test_x, test_y, val_x, val_y
        # Pad once, up front: every training batch is then a single gather from this tensor.
        p = self.crop_padding
        self.train_x = torch.nn.functional.pad(train_x, (p, p, p, p)) if p else train_x

    @property
    def num_train(self) -> int:
        return len(self.train_y)

    @property
    def num_test(self) -> int:
        return len(self.test_y)

    @property
    def num_val(self) -> int:
        return len(self.val_y)

    @property
    def device(self) -> torch.device:
        return self.train_x.device

    def to(self, device: torch.device | str) -> InMemoryData:
        """Move both splits to `device` (once per run; the loop never copies data again)."""
        for attr in ("train_x", "train_y", "test_x", "test_y", "val_x", "val_y"):
            setattr(self, attr, getattr(self, attr).to(device, non_blocking=True))
        return self

    def with_label_noise(self, share: float, generator: torch.Generator) -> InMemoryData:
        """A copy whose training labels differ at round(share x num_train) samples drawn from `generator`,
        each replaced by one of the other classes, uniformly (so exactly that share is wrong); the
        validation and test labels stay clean. `noisy_labels`: (indices, new labels), on the CPU."""
        y = self.train_y.cpu()
        index = torch.randperm(len(y), generator=generator)[: round(share * len(y))]
        label = (y[index] + torch.randint(1, self.num_classes, (len(index),), generator=generator)) % self.num_classes
        noisy = copy.copy(self)
        noisy.train_y = self.train_y.index_put((index.to(self.device),), label.to(self.device))
        noisy.noisy_labels = (index, label)
        return noisy

    def steps_per_epoch(self, batch_size: int) -> int:
        return self.num_train // batch_size  # drop_last: fixed shapes, even batches for Mixup

    def train_batches(
        self,
        batch_size: int,
        generator: torch.Generator,
        shard: tuple[int, int] = (0, 1),
        start: int = 0,
        augment: Callable[[], bool] | None = None,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """One epoch of shuffled, augmented, normalized training batches (the last partial batch dropped).

        The whole epoch's randomness (order, crop offsets, flips) is drawn up front on the CPU
        generator and moved to the device in one transfer: a step then only slices device tensors.
        `shard=(rank, world_size)`: every process draws the same plan and takes its slice of each
        global batch of `batch_size`, so together the processes see exactly the one-process batches.
        `start`: skip that many batches (a resume within the epoch), drawing exactly what they drew.
        `augment`: asked before each batch is cut; false gives the batch un-augmented (a strategy's plan).
        """
        steps = self.steps_per_epoch(batch_size)
        n = steps * batch_size
        draws = [torch.randperm(self.num_train, generator=generator)[:n]]
        if self.crop_padding or self.flip:
            p = self.crop_padding
            draws.append(torch.randint(0, 2 * p + 1, (n,), generator=generator))  # row offsets
            draws.append(torch.randint(0, 2 * p + 1, (n,), generator=generator))  # column offsets
            flips = torch.rand(n, generator=generator) < 0.5 if self.flip else torch.zeros(n, dtype=torch.bool)
            draws.append(flips.long())
        plan = torch.stack(draws)
        if self.device.type == "cuda":
            plan = plan.pin_memory()
        plan = plan.to(self.device, non_blocking=True)
        rank, world = shard
        local = batch_size // world
        for i in range(start, steps):
            first = i * batch_size + rank * local
            cols = plan[:, first : first + local]
            idx = cols[0]
            augmented = len(cols) > 1 and (augment is None or augment())
            x = self._gather(idx, cols[1], cols[2], cols[3].bool()) if augmented else self._gather(idx)
            yield x, self.train_y[idx]

    def eval_batches(
        self, split: str, batch_size: int, indices: Tensor | None = None
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Un-augmented batches of (a subset of) the training, validation or test split."""
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        n = {"train": self.num_train, "val": self.num_val, "test": self.num_test}[split]
        idx_all = (torch.arange(n) if indices is None else indices).to(self.device, non_blocking=True)
        for i in range(0, len(idx_all), batch_size):
            idx = idx_all[i : i + batch_size]
            if split != "train":
                x, y = (self.test_x[idx], self.test_y[idx]) if split == "test" else (self.val_x[idx], self.val_y[idx])
                yield (self.normalize(x) if self.normalize else x), y
            else:
                yield self._gather(idx), self.train_y[idx]

    def _gather(
        self, idx: Tensor, dy: Tensor | None = None, dx: Tensor | None = None, flip: Tensor | None = None
    ) -> Tensor:
        """Samples `idx` (device tensor), cropped at offsets (dy, dx) of the padded image and flipped
        where `flip`; without offsets, the centre crop (the original image)."""
        p = self.crop_padding
        if p:
            _, h, w = self.input_shape
            if dy is None:
                dy = dx = torch.full_like(idx, p)
            # A view of every h x w window of every image; one gather picks each sample's window.
            windows = self.train_x.unfold(2, h, 1).unfold(3, w, 1)  # [N, C, 2p+1, 2p+1, h, w]
            x = windows[idx, :, dy, dx]  # [B, C, h, w]
        else:
            x = self.train_x[idx]
        if flip is not None and self.flip:
            x = torch.where(flip.view(-1, *([1] * (x.ndim - 1))), x.flip(-1), x)
        return self.normalize(x) if self.normalize else x


def finish_split(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    *,
    num_classes: int,
    fraction: float,
    fraction_seed: int,
    val_fraction: float = 0.0,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    crop_padding: int,
    flip: bool,
    name: str,
) -> InMemoryData:
    """Common tail of every image loader: hold out the validation split, subset the training split
    (`balanced_split`), fill in statistics, wrap."""
    keep, held_out = balanced_split(train_y, fraction, fraction_seed, val_fraction)
    val_x, val_y = train_x[held_out].contiguous(), train_y[held_out].long()
    train_x, train_y = train_x[keep], train_y[keep]
    if mean is None or std is None:  # statistics of the (subset) training split
        xf = train_x.float() / 255.0
        dims = [0] + list(range(2, xf.ndim))
        mean = xf.mean(dims).tolist() if mean is None else mean
        std = xf.std(dims).clamp_min(1e-3).tolist() if std is None else std
    if len(mean) != train_x.shape[1] or len(std) != train_x.shape[1]:
        raise DataError(
            f"{name}: mean/std have {len(mean)}/{len(std)} entries but the images have {train_x.shape[1]} channels."
        )
    return InMemoryData(
        train_x.contiguous(),
        train_y.long(),
        test_x.contiguous(),
        test_y.long(),
        num_classes=num_classes,
        normalize=Normalize(list(mean), list(std)),
        crop_padding=crop_padding,
        flip=flip,
        name=name,
        val_x=val_x,
        val_y=val_y,
    )
