"""The phase-detector interface: is training still in the Enlightenment Period (ENP)?

The loop calls `observe(...)` after every optimizer step and asks `phase(...)` before the next one: the
phase record it returns is all a strategy and the diagnostics learn of where training stands. The ENP
can end in the middle of an epoch. The answer is one-way: once the ENP is over it stays over,
and where and why it ended is recorded (`summary()`). Bounds hold for every detector: the ENP lasts
at least `min_steps` steps and ends at the latest after `max_epochs` epochs, so a criterion that
never fires cannot keep a run in the ENP forever.

A new detector is one Python file and one YAML file (conf/phase/): subclass `PhaseDetector` and
implement `criterion`, returning the signal value that ends the ENP (or None while it goes on); see
docs/enp.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional, Protocol


@dataclass(frozen=True)
class Progress:
    """Where training stands (what the loop knows), passed to the detector."""

    step: int  # optimizer steps done so far (after the first step: 1; before it: 0)
    epoch: int  # current epoch, 0-based
    steps_per_epoch: int
    total_steps: int

    @property
    def epochs(self) -> float:
        """The run's length in epochs (trainer.epochs, or a fraction with trainer.max_steps)."""
        return self.total_steps / self.steps_per_epoch


@dataclass(frozen=True)
class Phase(Progress):
    """The phase record a step is trained under: where training stands before the step (`step` is
    the number of steps done, so the first step trains under step 0) and what the detector decided.
    Immutable: a strategy reads it and cannot change what the loop or the detector hold."""

    in_enp: bool = True
    enp_end_step: Optional[int] = None  # the step the ENP ended at, once it has


@dataclass
class EnpEnd:
    step: Optional[int] = None
    epoch: Optional[int] = None
    reason: str = "none"  # criterion | bound | none (the run ended inside the ENP, or had no ENP)
    value: Optional[float] = None


class Signals(Protocol):
    """What a detector may read after a step (the training loop's `StepSignals` gives it): each value
    costs a device sync or a forward pass, is computed only when asked for and at most once per step,
    and what was read is recorded in detector.jsonl."""

    def loss(self) -> float:
        """The step's training loss (the objective as optimized; the mean over the processes)."""

    def train_accuracy(self, n: int) -> float:
        """Clean accuracy (eval mode) on the first `n` samples of the fixed training probe."""

    def val_accuracy(self, n: int) -> float:
        """Accuracy on the first `n` samples of the validation split (never the test split)."""

    def batch_accuracy(self) -> float:
        """Clean accuracy on this step's training batch before any mixing."""


class PhaseDetector:
    """Base class; subclasses define `criterion`. `starts_in_enp=False` means there is no ENP."""

    starts_in_enp = True

    def __init__(self, min_steps: int = 0, max_epochs: Optional[int] = None) -> None:
        if min_steps < 0:
            raise ValueError(f"phase.min_steps must be >= 0, got {min_steps}.")
        if max_epochs is not None and max_epochs < 0:
            raise ValueError(f"phase.max_epochs must be >= 0 or null, got {max_epochs}.")
        self.min_steps = min_steps
        self.max_epochs = max_epochs
        self.in_enp = self.starts_in_enp
        self.end = EnpEnd()

    def setup(self, num_classes: int, steps_per_epoch: int, total_steps: int) -> None:
        """Called once before training with what the run knows about itself."""
        self.num_classes = num_classes

    def phase(self, progress: Progress) -> Phase:
        """The phase record of the step about to be taken."""
        return Phase(
            progress.step,
            progress.epoch,
            progress.steps_per_epoch,
            progress.total_steps,
            in_enp=self.in_enp,
            enp_end_step=self.end.step,
        )

    def criterion(self, progress: Progress, signals: Signals) -> Optional[float]:
        """The signal value that ends the ENP at this step, or None while it goes on."""
        return None

    def observe(self, progress: Progress, signals: Optional[Signals] = None) -> None:
        if not self.in_enp:
            return
        if self.max_epochs is not None and progress.step >= self.max_epochs * progress.steps_per_epoch:
            self._finish(progress, "bound", None)
            return
        value = self.criterion(progress, signals)
        if value is not None and progress.step >= self.min_steps:
            self._finish(progress, "criterion", value)

    def _finish(self, progress: Progress, reason: str, value: Optional[float]) -> None:
        self.in_enp = False
        epoch = (progress.step - 1) // progress.steps_per_epoch if progress.steps_per_epoch else progress.epoch
        self.end = EnpEnd(step=progress.step, epoch=epoch, reason=reason, value=value)

    def summary(self) -> dict:
        return {f"enp_end_{k}": v for k, v in asdict(self.end).items()}

    def state_dict(self) -> dict:
        return {"in_enp": self.in_enp, "end": asdict(self.end)}

    def load_state_dict(self, state: dict) -> None:
        self.in_enp = state["in_enp"]
        self.end = EnpEnd(**state["end"])
