"""Checkpoints: everything a run needs to continue exactly where it stopped.

A checkpoint is written atomically at the end of every `trainer.checkpoint_every` epochs and after
the last one, as `<run_dir>/checkpoints/epoch_NNNN.pt` (NNNN epochs done); within an epoch every
`trainer.checkpoint_every_steps` steps and on a stop signal, as `epoch_NNNN_step_SSSSSSSSS.pt` (NNNN
epochs done, then some steps of the next: SSSSSSSSS steps in all). While a run trains the newest two
are kept, so a checkpoint damaged by a crash mid-write (which atomic writes prevent) or on disk falls
back to the one before; once it has completed, `trainer.keep_checkpoints` (default 1: the final one;
0: none). A ResNet-18 checkpoint is about 90 MB: a sweep of hundreds of runs keeps tens of GB otherwise.
It holds plain data only (tensors, numbers, strings, lists, dicts) and is read with
`torch.load(weights_only=True)`, which never runs code from the file.
"""

from __future__ import annotations

import json
import random
import re
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from enlighten.compat import upgrade_checkpoint
from enlighten.config import config_differences
from enlighten.errors import UserError
from enlighten.results import atomic_torch_save

CHECKPOINT_DIR = "checkpoints"
KEEP = 2


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that cannot be resumed, with what to do about it."""


NAME = re.compile(r"epoch_(\d+)(?:_step_(\d+))?\.pt")


def checkpoint_path(run_dir: Path, epoch: int, step: Optional[int] = None) -> Path:
    """After `epoch` epochs (counted from 1), or, with `step`, within the next epoch at that step."""
    name = f"epoch_{epoch:04d}" + ("" if step is None else f"_step_{step:09d}")
    return Path(run_dir) / CHECKPOINT_DIR / f"{name}.pt"


def _position(path: Path) -> tuple[int, int]:
    """(epochs done, step within the next epoch or -1 at an epoch's end): the order of checkpoints."""
    epoch, step = NAME.fullmatch(path.name).groups()
    return int(epoch), -1 if step is None else int(step)


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoints of a run directory, newest first."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    found = [p for p in folder.glob("epoch_*.pt") if NAME.fullmatch(p.name)] if folder.is_dir() else []
    return sorted(found, key=_position, reverse=True)


def prune_checkpoints(run_dir: Path, keep: Path | None = None, newest: int = KEEP) -> None:
    """Drop all but the `newest` checkpoints (a process killed between writing one and this leaves
    one more), never `keep`; the folder too when none is left."""
    for old in list_checkpoints(run_dir)[newest:]:
        if old != keep:
            old.unlink(missing_ok=True)
    folder = Path(run_dir) / CHECKPOINT_DIR
    if newest == 0 and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def save_checkpoint(run_dir: Path, epoch: int, state: dict, step: Optional[int] = None) -> Path:
    """Write the checkpoint after `epoch` epochs (or within the next, at `step`); keep the newest KEEP."""
    path = checkpoint_path(run_dir, epoch, step)
    atomic_torch_save(state, path)
    prune_checkpoints(run_dir, keep=path)
    return path


def set_aside_checkpoints(run_dir: Path, stamp: str) -> list[Path]:
    """Move a directory's checkpoints into checkpoints/replaced-<stamp>/ before a fresh start in it, so
    they are never mixed with the new run's (a resume would pick the old run's higher epoch) and never lost."""
    found = list_checkpoints(run_dir)
    aside = Path(run_dir) / CHECKPOINT_DIR / f"replaced-{stamp}"
    for path in found:
        aside.mkdir(exist_ok=True)
        path.rename(aside / path.name)
    return [aside / p.name for p in found]


def load_latest(
    run_dir: Path, config: dict, force: bool = False, notes: list | None = None
) -> Optional[tuple[Path, dict]]:
    """The newest readable checkpoint of `run_dir` as (path, state), or None if there is none.

    An unreadable one (truncated, corrupt) is skipped for the one before it, and a forced resume of a
    different config goes on: both are said in `notes` (run() logs them and keeps them in the attempt's
    record, since they change what the run computes), or as warnings without it. One written by a
    different config raises CheckpointError naming the differences, unless `force`.
    """

    def note(message: str) -> None:
        if notes is None:
            warnings.warn(message, stacklevel=3)
        else:
            notes.append(message)

    for path in list_checkpoints(run_dir):
        try:
            state = upgrade_checkpoint(torch.load(path, map_location="cpu", weights_only=True))
            saved = json.loads(state["config_json"])
        except Exception as e:  # noqa: BLE001 - any failure to read means: try the previous one
            note(f"Checkpoint {path} is unreadable ({type(e).__name__}: {e}); trying the previous one.")
            continue
        diffs = config_differences(saved, config)
        if diffs and not force:
            shown = "; ".join(diffs[:8]) + (f"; and {len(diffs) - 8} more" if len(diffs) > 8 else "")
            raise CheckpointError(
                f"Checkpoint {path} was written by a different config ({shown}). Resume it anyway with "
                f"trainer.resume=force, start afresh with trainer.resume=never, or use another output directory."
            )
        if diffs:
            note(f"Resuming {path} with a different config (trainer.resume=force): {'; '.join(diffs)}")
        return path, state
    return None


def rng_state(data_generator: torch.Generator, device: torch.device) -> dict:
    """Every random stream a run draws from: Python, numpy's global one (timm's Mixup draws lambda
    there), torch on the CPU and on the training GPU, and the data-order generator."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "data": data_generator.get_state(),
    }


def set_rng_state(state: dict, data_generator: torch.Generator, device: torch.device) -> None:
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
    data_generator.set_state(state["data"])
