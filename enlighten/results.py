"""Results on disk: every file is written atomically (temporary file, fsync, rename).

A run directory holds `metrics.jsonl` (one JSON object per epoch) and `summary.json` (status, final
numbers and the resolved config). Readers (tables, figures, resumed sweeps) therefore only ever see a
previous complete version or the new complete version of a file, never a half-written one.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import io
import json
import logging
import math
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from enlighten.compat import upgrade_summary
from enlighten.errors import UserError

METRICS_FILE = "metrics.jsonl"
DIAGNOSTICS_FILE = "diagnostics.jsonl"
DETECTOR_FILE = "detector.jsonl"
SUMMARY_FILE = "summary.json"
# The summary's record of how the run was made, not what it measured (left out of W&B's summary and of
# the results columns of scripts/collect.py).
RUN_RECORD_KEYS = ("config", "choices", "overrides", "traceback", "attempts")
LOCK_FILE = ".lock"


class ResultsWriteError(UserError):
    """A result file that could not be written (a full disk, a read-only directory), with its path."""


def not_writable(run_dir: Path, error: OSError) -> ResultsWriteError:
    return ResultsWriteError(
        f"Results directory {run_dir} is not writable: {error}. Choose a writable one "
        f"(hydra.run.dir=..., hydra.sweep.dir=...)."
    )


class RunDirectoryBusy(UserError, RuntimeError):
    """Another live process holds the run directory."""


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
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        free = shutil.disk_usage(path.parent).free / 2**20
        raise ResultsWriteError(
            f"Cannot write {path}: {os.strerror(e.errno)} ({free:.1f} MiB free). The previous version of "
            f"the file is kept: free some space (or point the output directory elsewhere) and run the same "
            f"command again to continue."
        ) from e
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path | str, text: str) -> None:
    atomic_write(Path(path), lambda f: f.write(text.encode()))


def atomic_torch_save(obj: Any, path: Path | str) -> None:
    """Serialized in memory first and then written as plain bytes: torch's own writer reports a full
    disk as "unexpected pos", the file's write as "No space left on device"."""
    import torch  # here: reading results (tables, the sweep report) must not load torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write(Path(path), lambda f: f.write(buffer.getbuffer()))


class RunDirLock:
    """One process per run directory: an exclusive `flock` on `<run_dir>/.lock`. The kernel releases it
    when its process dies however it dies, so a killed run's lock is simply taken over by the next
    process; the file names its holder, for the message a second process shows."""

    def __init__(self, run_dir: Path | str) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self.fd: int | None = None

    def acquire(self) -> str:
        """Take the lock; return what the file said of an earlier holder (a killed process) or ''.
        Raises RunDirectoryBusy naming the live holder, ResultsWriteError where it cannot be created."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise not_writable(self.path.parent, e) from e
        try:
            for wait in (0.02, 0.05, 0.1, None):  # a reader's probe (`held`) holds it for an instant: wait that out
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if wait is None:
                        raise
                    time.sleep(wait)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "a process that has not yet said which"
            os.close(fd)
            raise RunDirectoryBusy(
                f"{self.path.parent} is in use by another run: {holder}. Two processes in one directory would "
                f"overwrite each other's results. Wait for it to end (or stop it), or give this run its own "
                f"directory (hydra.run.dir=...)."
            ) from None
        except OSError as e:  # a file system without locks (some network mounts): go on, unguarded
            os.close(fd)
            logging.getLogger("enlighten").warning(
                f"Cannot lock {self.path} ({e}): nothing stops a second process "
                f"from using {self.path.parent} at the same time."
            )
            return ""
        previous = os.pread(fd, 4096, 0).decode(errors="replace").strip()
        command = " ".join(sys.argv)
        me = (
            f"pid {os.getpid()} on {socket.gethostname()}, "
            f"since {datetime.datetime.now().isoformat(timespec='seconds')}"
            f" ({command[:300] + ('...' if len(command) > 300 else '')})"
        )
        os.ftruncate(fd, 0)
        os.pwrite(fd, me.encode() + b"\n", 0)
        self.fd = fd
        return previous

    @staticmethod
    def held(run_dir: Path | str) -> bool:
        """Whether a live process holds `run_dir`'s lock now (without taking it for longer than a test)."""
        path = Path(run_dir) / LOCK_FILE
        if not path.is_file():
            return False
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        except BlockingIOError:
            return True
        except OSError:  # a file system without locks: nobody can be known to hold it
            return False
        finally:
            os.close(fd)

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)  # a lock file that names nobody: no holder to report
            os.close(self.fd)  # closing releases the lock
            self.fd = None


def to_jsonable(value: Any) -> Any:
    """Plain JSON: tensors to numbers, non-finite floats to null (JSON has no NaN)."""
    torch = sys.modules.get("torch")  # a tensor exists only where torch was loaded
    if torch is not None and isinstance(value, torch.Tensor):
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


def earlier_summary(run_dir: Path | str) -> dict | None:
    """The summary.json an earlier run left in `run_dir` (today's names), or None (none, or unreadable)."""
    path = Path(run_dir) / SUMMARY_FILE
    try:
        return upgrade_summary(read_json(path)) if path.is_file() else None
    except (OSError, ValueError):
        return None


def completed_before(run_dir: Path | str, config: dict, trainer) -> dict | None:
    """The summary of an earlier completed run of this config in `run_dir`, where the run is to be
    skipped for it (`trainer.skip_completed`, and not `trainer.resume=never`): a sweep re-run into the
    same directory then completes only its missing or failed jobs. Settings that do not change the
    results (config.RESULT_NEUTRAL_KEYS) may differ. run() skips on it; so does our sweeper, before launching."""
    from enlighten.config import config_differences  # config imports nothing of ours but errors

    if not trainer.skip_completed or trainer.resume == "never":
        return None
    previous = earlier_summary(run_dir)
    if (
        previous is None
        or previous.get("status") != "completed"
        or config_differences(previous.get("config") or {}, config)
    ):
        return None
    return previous


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
        self.detector: list[dict] = []
        if not write:
            return
        probe = self.run_dir / ".write_test"
        try:  # fail before training, not after hours of it
            self.run_dir.mkdir(parents=True, exist_ok=True)
            probe.write_text("ok")
            probe.unlink()
        except OSError as e:
            raise not_writable(self.run_dir, e) from e

    def remove_leftovers(self) -> list[Path]:
        """Temporary files of a process killed while writing (its lock is gone, so none is being written)."""
        leftovers = [*self.run_dir.glob(".*.tmp"), *self.run_dir.glob("*/.*.tmp")]  # results and checkpoints/
        for path in leftovers:
            path.unlink(missing_ok=True)
        return leftovers

    def set_aside(self, stamp: str) -> list[Path]:
        """A fresh start in a used directory: the earlier run's result files renamed `<name>.replaced-<stamp>`,
        so none of them stands beside the new run's and none is lost (readers look for the plain names)."""
        found = [
            p
            for p in (self.run_dir / n for n in (METRICS_FILE, DIAGNOSTICS_FILE, DETECTOR_FILE, SUMMARY_FILE))
            if p.exists()
        ]
        moved = [p.with_name(f"{p.name}.replaced-{stamp}") for p in found]
        if self.write:
            for old, new in zip(found, moved):
                old.rename(new)
        return moved

    def log_epoch(self, row: dict) -> None:
        self.metrics.append(to_jsonable(row))
        if self.write:
            write_jsonl(self.run_dir / METRICS_FILE, self.metrics)

    def log_diagnostics(self, rows: list[dict]) -> None:
        """Step-level diagnostics, written with the epoch's metrics (one rewrite per epoch)."""
        self._extend(self.diagnostics, DIAGNOSTICS_FILE, rows)

    def log_detector(self, rows: list[dict]) -> None:
        """What the phase detector measured, by step (clean accuracy on its probe, the loss): learning
        curves at step resolution where the ENP lives, at no extra cost. Written with the epoch's metrics."""
        self._extend(self.detector, DETECTOR_FILE, rows)

    def _extend(self, kept: list[dict], name: str, rows: list[dict]) -> None:
        if rows:
            kept.extend(to_jsonable(r) for r in rows)
            if self.write:
                write_jsonl(self.run_dir / name, kept)

    def restore(self, metrics: list[dict], diagnostics: list[dict], detector: list[dict] = ()) -> None:
        """Resume: the rows up to a checkpoint replace whatever later epochs wrote before a crash."""
        self.metrics, self.diagnostics, self.detector = list(metrics), list(diagnostics), list(detector)
        if self.write:
            for name, rows in (
                (METRICS_FILE, self.metrics),
                (DIAGNOSTICS_FILE, self.diagnostics),
                (DETECTOR_FILE, self.detector),
            ):
                write_jsonl(self.run_dir / name, rows)

    def write_summary(self, summary: dict) -> None:
        if self.write:
            write_json(self.run_dir / SUMMARY_FILE, summary)
