"""UCR time-series classification sets in the UCR 2018 archive layout:
`<root>/ucr/<name>/<name>_TRAIN.tsv` and `..._TEST.tsv`, one series per line, tab-separated, the class
label first. Labels (e.g. -1/1 or 1..K) are remapped to 0..K-1 in sorted order; each series is
z-normalized by default. Samples are float tensors [N, 1, length]."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from enlighten.data.base import DataError, InMemoryData, balanced_split


def read_ucr_file(path: Path) -> tuple[list[float], list[list[float]]]:
    """(labels, series) of one .tsv file; every line must have the same number of fields."""
    labels, rows = [], []
    width = None
    with open(path) as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            fields = line.rstrip("\n").split("\t") if "\t" in line else line.split(",")
            if width is None:
                width = len(fields)
            elif len(fields) != width:
                raise DataError(
                    f"{path}, line {lineno}: {len(fields) - 1} values where earlier lines have {width - 1}. "
                    f"Ragged (variable-length) series are not supported: pad or resample them to one length."
                )
            try:
                values = [float(v) for v in fields]
            except ValueError as e:
                raise DataError(f"{path}, line {lineno}: not a number ({e}).") from e
            bad = next((i for i, v in enumerate(values) if not math.isfinite(v)), None)
            if bad is not None:
                raise DataError(
                    f"{path}, line {lineno}, field {bad + 1}: non-finite value {fields[bad]!r}. "
                    f"Impute or drop missing values before training."
                )
            labels.append(values[0])
            rows.append(values[1:])
    if not rows:
        raise DataError(f"{path} holds no series.")
    return labels, rows


def ucr(
    name: str,
    root: str,
    znorm: bool = True,
    fraction: float = 1.0,
    fraction_seed: int = 0,
    val_fraction: float = 0.0,
) -> InMemoryData:
    folder = Path(root) / "ucr" / name
    files = {split: folder / f"{name}_{split}.tsv" for split in ("TRAIN", "TEST")}
    for path in files.values():
        if not path.is_file():
            raise DataError(
                f"UCR set {name!r} not found: expected {path}. Put the UCR 2018 archive's <name>/ folders "
                f"under <paths.data_dir>/ucr/ (set paths.data_dir or ENLIGHTEN_DATA_DIR)."
            )
    (train_labels, train_rows), (test_labels, test_rows) = (read_ucr_file(files[s]) for s in ("TRAIN", "TEST"))
    if len(train_rows[0]) != len(test_rows[0]):
        raise DataError(f"{name}: training series have length {len(train_rows[0])}, test series {len(test_rows[0])}.")
    classes = sorted(set(train_labels))
    unknown = sorted(set(test_labels) - set(classes))
    if unknown:
        raise DataError(f"{files['TEST']}: labels {unknown[:5]} do not occur in the training file.")
    index = {c: i for i, c in enumerate(classes)}

    def tensors(labels, rows):
        x = torch.tensor(rows, dtype=torch.float32).unsqueeze(1)  # [N, 1, length]
        if znorm:  # per series; constant series become zeros
            x = (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True).clamp_min(1e-8)
        return x, torch.tensor([index[c] for c in labels])

    train_x, train_y = tensors(train_labels, train_rows)
    test_x, test_y = tensors(test_labels, test_rows)
    keep, held_out = balanced_split(train_y, fraction, fraction_seed, val_fraction)
    return InMemoryData(
        train_x[keep],
        train_y[keep],
        test_x,
        test_y,
        num_classes=len(classes),
        name=name,
        val_x=train_x[held_out],
        val_y=train_y[held_out],
    )
