"""Results on disk: every file is written atomically (temporary file, fsync, rename).

A run directory holds `metrics.jsonl` (one JSON object per epoch) and `summary.json` (status, final
numbers and the resolved config). Readers (tables, figures, resumed sweeps) therefore only ever see a
previous complete version or the new complete version of a file, never a half-written one.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

import torch

METRICS_FILE = "metrics.jsonl"
DIAGNOSTICS_FILE = "diagnostics.jsonl"
SUMMARY_FILE = "summary.json"


def _umask() -> int:
    """The process's umask, read from /proc where it can be (setting it to read it, the only portable
    way, would briefly make files other threads create world-writable)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        mask = os.umask(0o077)
        os.umask(mask)
        return mask


UMASK = _umask()


def atomic_write(path: Path | str, write) -> None:
    """Call write(binary file) on a temporary file beside `path`, then rename it over `path`: readers see
    the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            try:  # mkstemp makes it 0600; a result file follows the umask like any other
                os.fchmod(f.fileno(), 0o666 & ~UMASK)
            except OSError:  # a file system without modes (some network mounts): keep mkstemp's
                pass
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path | str, text: str) -> None:
    atomic_write(Path(path), lambda f: f.write(text.encode()))


def atomic_torch_save(obj: Any, path: Path | str) -> None:
    atomic_write(Path(path), lambda f: torch.save(obj, f))


def to_jsonable(value: Any) -> Any:
    """Plain JSON: tensors to numbers, non-finite floats to null (JSON has no NaN)."""
    if isinstance(value, torch.Tensor):
        value = value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def write_json(path: Path | str, obj: dict) -> None:
    atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2, sort_keys=False) + "\n")


def read_json(path: Path | str) -> dict:
    with open(path) as f:
        return json.load(f)


def write_jsonl(path: Path | str, rows: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(to_jsonable(r)) + "\n" for r in rows))


def read_jsonl(path: Path | str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


class RunResults:
    """The files of one run directory. Metrics are kept in memory and the file rewritten each epoch
    (small files), which keeps every write atomic. `write=False` (the other processes of a
    data-parallel run) keeps the rows and writes nothing: one set of files per run."""

    def __init__(self, run_dir: Path | str, write: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.write = write
        self.metrics: list[dict] = []
        self.diagnostics: list[dict] = []
        if not write:
            return
        probe = self.run_dir / ".write_test"
        try:  # fail before training, not after hours of it
            self.run_dir.mkdir(parents=True, exist_ok=True)
            probe.write_text("ok")
            probe.unlink()
        except OSError as e:
            raise OSError(f"Results directory {self.run_dir} is not writable: {e}") from e

    def clear(self) -> list[Path]:
        """A fresh start in a used directory: remove the earlier run's result files, so none of them
        stands beside the new run's (a diagnostics.jsonl or a completed summary.json of the old run)."""
        removed = [p for p in (self.run_dir / n for n in (METRICS_FILE, DIAGNOSTICS_FILE, SUMMARY_FILE)) if p.exists()]
        if self.write:
            for path in removed:
                path.unlink(missing_ok=True)
        return removed

    def log_epoch(self, row: dict) -> None:
        self.metrics.append(to_jsonable(row))
        if self.write:
            write_jsonl(self.run_dir / METRICS_FILE, self.metrics)

    def log_diagnostics(self, rows: list[dict]) -> None:
        """Step-level diagnostics, written with the epoch's metrics (one rewrite per epoch)."""
        if rows:
            self.diagnostics.extend(to_jsonable(r) for r in rows)
            if self.write:
                write_jsonl(self.run_dir / DIAGNOSTICS_FILE, self.diagnostics)

    def restore(self, metrics: list[dict], diagnostics: list[dict]) -> None:
        """Resume: the rows up to a checkpoint replace whatever later epochs wrote before a crash."""
        self.metrics, self.diagnostics = list(metrics), list(diagnostics)
        if self.write:
            write_jsonl(self.run_dir / METRICS_FILE, self.metrics)
            write_jsonl(self.run_dir / DIAGNOSTICS_FILE, self.diagnostics)

    def write_summary(self, summary: dict) -> None:
        if self.write:
            write_json(self.run_dir / SUMMARY_FILE, summary)
