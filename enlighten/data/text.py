"""Character-level language modelling on a text file held as one token stream on the device.

A sample is a window of `block_size` characters and its labels are the same window shifted by one
(next-character prediction at every position); a model returns logits [B, block_size, vocab]. The
training split is the first `1 - val_share` of the text, validation the rest (by position, so no
passage is in both).

- Training batches: windows at uniformly random offsets (nanoGPT's sampling), drawn for the whole
  epoch up front from the loop's CPU generator. An epoch is `num_train` windows: as many characters
  as the training text.
- Evaluation and probes: the non-overlapping windows at offsets 0, T, 2T, ... (`num_train` of
  them in the training split, `num_test` in validation), so a probe index means the same text in
  every run.

`tokens = True` tells the rest of the code that inputs are token ids: they cannot be mixed, and
validation also reports bits per character.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor

from enlighten.config import check_fraction
from enlighten.data.base import DataError, download_lock
from enlighten.results import atomic_write_text

TINYSHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"


class CharText:
    """Train and validation token streams (int64 on the device) and the vocabulary."""

    tokens = True

    def __init__(self, train: Tensor, val: Tensor, vocab: list[str], block_size: int, name: str = "") -> None:
        if block_size < 1:
            raise DataError(f"dataset.block_size must be >= 1, got {block_size}.")
        for split, stream in (("training", train), ("validation", val)):
            if len(stream) < block_size + 1:
                raise DataError(
                    f"{name}: the {split} text has {len(stream)} characters, fewer than dataset.block_size + 1 = "
                    f"{block_size + 1}: use a smaller dataset.block_size or more text."
                )
        self.name, self.vocab, self.block_size = name, list(vocab), int(block_size)
        self.num_classes = len(vocab)
        self.input_shape = (self.block_size,)
        self.train, self.val = train, val

    @property
    def num_train(self) -> int:
        return (len(self.train) - 1) // self.block_size

    @property
    def num_test(self) -> int:
        return (len(self.val) - 1) // self.block_size

    @property
    def device(self) -> torch.device:
        return self.train.device

    def to(self, device: torch.device | str) -> CharText:
        self.train, self.val = self.train.to(device), self.val.to(device)
        return self

    def steps_per_epoch(self, batch_size: int) -> int:
        return self.num_train // batch_size

    def decode(self, ids: Tensor) -> str:
        return "".join(self.vocab[i] for i in ids.tolist())

    def _windows(self, stream: Tensor, starts: Tensor) -> tuple[Tensor, Tensor]:
        w = stream.unfold(0, self.block_size + 1, 1)[starts]  # [B, T + 1]: one gather
        return w[:, :-1].contiguous(), w[:, 1:].contiguous()

    def train_batches(
        self, batch_size: int, generator: torch.Generator, shard: tuple[int, int] = (0, 1), start: int = 0
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Random windows; with `shard=(rank, world_size)` this process's slice of each global batch."""
        steps = self.steps_per_epoch(batch_size)
        starts = torch.randint(0, len(self.train) - self.block_size, (steps * batch_size,), generator=generator)
        starts = starts.to(self.device, non_blocking=True)
        rank, world = shard
        local = batch_size // world
        for i in range(start, steps):
            first = i * batch_size + rank * local
            yield self._windows(self.train, starts[first : first + local])

    def eval_batches(
        self, split: str, batch_size: int, indices: Tensor | None = None
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Non-overlapping windows of the validation ("test") or training split, or those of `indices`."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        stream, n = (self.val, self.num_test) if split == "test" else (self.train, self.num_train)
        idx = torch.arange(n) if indices is None else indices
        starts = idx.to(self.device) * self.block_size
        for i in range(0, len(starts), batch_size):
            yield self._windows(stream, starts[i : i + batch_size])


def read_text(path: Path, url: str | None) -> str:
    """The file's text; downloaded from `url` first when it is missing and `url` is given."""
    if not path.is_file() and url:
        try:
            with download_lock(path.parent, path.name):
                if not path.is_file():  # another process may have fetched it while this one waited
                    with urllib.request.urlopen(url, timeout=60) as response:
                        atomic_write_text(path, response.read().decode("utf-8"))  # never half a file under its name
        except OSError as e:
            raise DataError(
                f"{path} is missing and the download from {url} failed ({e}). Download it on a machine "
                f"with internet access and copy it there, or point paths.data_dir (ENLIGHTEN_DATA_DIR) at it."
            ) from e
    if not path.is_file():
        raise DataError(
            f"{path} not found. Set dataset.download=true to fetch it, or point paths.data_dir "
            f"(ENLIGHTEN_DATA_DIR) at a folder that holds {path.parent.name}/{path.name}."
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path} is not UTF-8 text ({e.reason} at byte {e.start}): convert it first, e.g. iconv -f UTF-16 -t UTF-8."
        ) from None
    if not text:
        raise DataError(f"{path} is empty.")
    return text


def char_text(
    text: str, block_size: int, val_share: float = 0.1, fraction: float = 1.0, name: str = "text"
) -> CharText:
    """Split `text` by position, map characters to ids (the sorted characters of the whole text) and
    keep the first `fraction` of the training part (a dataset-size axis; validation is unchanged)."""
    if not 0.0 < val_share < 1.0:
        raise DataError(f"dataset.val_share must be in (0, 1), got {val_share}.")
    check_fraction(fraction)
    vocab = sorted(set(text))
    ids = torch.tensor([ord(c) for c in text], dtype=torch.int64)
    lookup = torch.zeros(max(ord(c) for c in vocab) + 1, dtype=torch.int64)
    lookup[torch.tensor([ord(c) for c in vocab])] = torch.arange(len(vocab))
    ids = lookup[ids]
    split = int(len(ids) * (1 - val_share))
    train = ids[: int(split * fraction)]
    return CharText(train, ids[split:], vocab, block_size, name)


def tinyshakespeare(
    root: str, block_size: int = 128, val_share: float = 0.1, fraction: float = 1.0, download: bool = True
) -> CharText:
    """tinyshakespeare (1,115,394 characters, 65 distinct) from `<root>/tinyshakespeare/input.txt`."""
    path = Path(root) / "tinyshakespeare" / "input.txt"
    text = read_text(path, TINYSHAKESPEARE_URL if download else None)
    return char_text(text, block_size, val_share, fraction, name="tinyshakespeare")
