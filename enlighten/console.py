"""What a run says while it runs: a start line, progress within each epoch, a line per epoch, an end line.

All of it goes through `logging` (logger "enlighten"), so Hydra writes it to the console and to the
run's train.log (only the message of a stop signal that ends the process is printed to stderr too).
Within an epoch: on a terminal a progress bar (tqdm) with the rate and the time left; elsewhere (a
SLURM log, a file) a line every `trainer.progress_every_s` seconds instead of a bar redrawn into the
file. Epochs are counted from 0, here as in every file (`epoch 0 of 20` is the first).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Optional

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

log = logging.getLogger("enlighten")


class _CurrentStdout(logging.StreamHandler):
    """Writes to whatever sys.stdout is now (pytest and notebooks replace it)."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value) -> None:
        pass


def into_log_files(message: str, level: int = logging.ERROR) -> None:
    """`message` into the log files only (a run's train.log under Hydra): for an error that Hydra prints
    on the console itself, so that the file holds it too without the console showing it twice."""
    record = log.makeRecord(log.name, level, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def show_messages() -> None:
    """Outside Hydra (the compose API, a notebook) nothing configures logging: show our messages on
    stdout, plainly. Under Hydra its own handlers (console and train.log) do it."""
    if not logging.getLogger().handlers and not log.handlers:
        handler = _CurrentStdout()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False  # a root handler added later (basicConfig) would print every message twice


def result_line(summary: dict) -> str:
    """How a run ended, in one line: status, accuracy, where the ENP ended, time (and the error)."""
    s = summary
    parts = [s.get("status", "?")]
    if s.get("final_val_acc") is not None:
        parts.append(f"val_acc {s['final_val_acc']:.4f} (best {s['best_val_acc']:.4f})")
    if s.get("final_test_acc") is not None:
        parts.append(f"test_acc {s['final_test_acc']:.4f}")
    if s.get("final_test_bpc") is not None:
        parts.append(f"test_bpc {s['final_test_bpc']:.3f}")
    if s.get("enp_end_step") is not None:
        parts.append(f"ENP ended at step {s['enp_end_step']} (epoch {s.get('enp_end_epoch')})")
    elif s.get("status") == "completed":
        parts.append("the ENP did not end")
    if s.get("wall_time_s") is not None:
        parts.append(duration(s["wall_time_s"]))
    if s.get("status") != "completed" and s.get("error"):
        parts.append(s["error"].splitlines()[0][:200])
    return ", ".join(parts)


def duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class EpochProgress:
    """Progress within an epoch, for the main process: `start(epoch, done)`, `step()` after every
    step (a clock read; nothing touches the device), `close()` at the epoch's end."""

    def __init__(self, steps_per_epoch: int, num_epochs: int, every_s: float, enabled: bool = True) -> None:
        self.steps_per_epoch, self.num_epochs, self.every_s = steps_per_epoch, num_epochs, every_s
        self.enabled = enabled
        self.terminal = enabled and sys.stdout.isatty()
        self.bar: Optional[tqdm] = None
        self._redirect = None

    def __enter__(self) -> EpochProgress:
        if self.terminal:  # messages printed while a bar shows go above it, not into it
            self._redirect = logging_redirect_tqdm()
            self._redirect.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.close()  # also when the epoch ends by an exception (divergence, a stop signal, Ctrl-C)
        if self._redirect is not None:
            self._redirect.__exit__(*exc)
            self._redirect = None

    def start(self, epoch: int, done: int) -> None:
        """`done`: steps of this epoch already trained (a resume within it)."""
        self.epoch, self.done, self.first = epoch, done, done
        self.t0 = self.last = time.perf_counter()
        if self.terminal:
            self.bar = tqdm(
                total=self.steps_per_epoch,
                initial=done,
                desc=f"epoch {epoch} of {self.num_epochs}",
                unit="step",
                leave=False,
                dynamic_ncols=True,
                file=sys.stdout,
            )

    def step(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        elif (
            self.enabled
            and self.every_s
            and self.done < self.steps_per_epoch  # the epoch's own line follows
            and (now := time.perf_counter()) - self.last >= self.every_s
        ):
            self.last = now
            rate = (self.done - self.first) / (now - self.t0)
            left = (self.steps_per_epoch - self.done) / rate
            log.info(
                f"  epoch {self.epoch} of {self.num_epochs}: step {self.done}/{self.steps_per_epoch} "
                f"({100 * self.done / self.steps_per_epoch:.0f}%), {rate:.2f} steps/s, epoch ends in "
                f"{duration(left)}"
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
