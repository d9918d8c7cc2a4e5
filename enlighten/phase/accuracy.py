"""`accuracy` and `chance_adjusted`: the ENP ends when clean accuracy reaches a threshold.

The paper's definition (v2): the ENP lasts until accuracy reaches about 50%. Accuracy on mixed
batches is ill-defined, so it is always measured on clean, un-mixed inputs, in eval mode, every
`check_every` steps (reading it costs a forward pass and a device sync, hence the cadence):

- `estimator=probe` (default): a fixed probe subset of the training set (`probe_size` samples, the
  same every check, un-augmented): a low-noise, comparable signal.
- `estimator=batch`: the current training batch before mixing (augmented), smoothed by an
  exponential moving average with factor `ema` over checks: no extra data, noisier.
- `source=val` reads accuracy on the validation split instead (its first `probe_size` samples in a fixed
  order; `dataset.val_fraction` must hold one out: the test split never decides anything).
"""

from __future__ import annotations

from typing import Optional

from enlighten.phase.base import PhaseDetector, Progress, Signals


class AccuracyThreshold(PhaseDetector):
    def __init__(
        self,
        threshold: float = 0.5,
        source: str = "train",
        estimator: str = "probe",
        probe_size: int = 1000,
        check_every: int = 10,
        ema: float = 0.0,
        min_steps: int = 0,
        max_epochs: Optional[int] = None,
    ) -> None:
        super().__init__(min_steps=min_steps, max_epochs=max_epochs)
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"phase.threshold must be in (0, 1), got {threshold}.")
        if source not in ("train", "val"):
            raise ValueError(f"phase.source must be train or val, got {source!r}.")
        if estimator not in ("probe", "batch"):
            raise ValueError(f"phase.estimator must be probe or batch, got {estimator!r}.")
        if check_every < 1 or probe_size < 1:
            raise ValueError("phase.check_every and phase.probe_size must be >= 1.")
        if not 0.0 <= ema < 1.0:
            raise ValueError(f"phase.ema must be in [0, 1), got {ema}.")
        self.threshold = threshold
        self.source, self.estimator = source, estimator
        self.probe_size, self.check_every, self.ema = probe_size, check_every, ema
        self.smoothed: Optional[float] = None

    def target(self) -> float:
        return self.threshold

    def measure(self, signals) -> float:
        if self.source == "val":
            return signals.val_accuracy(self.probe_size)
        if self.estimator == "batch":
            return signals.batch_accuracy()
        return signals.train_accuracy(self.probe_size)

    def criterion(self, progress: Progress, signals: Signals) -> Optional[float]:
        if progress.step % self.check_every:
            return None
        acc = self.measure(signals)
        self.smoothed = acc if self.smoothed is None else self.ema * self.smoothed + (1 - self.ema) * acc
        return self.smoothed if self.smoothed >= self.target() else None

    def state_dict(self) -> dict:
        return {**super().state_dict(), "smoothed": self.smoothed}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.smoothed = state["smoothed"]


class ChanceAdjusted(AccuracyThreshold):
    """Threshold 1/K + tau (1 - 1/K) for K classes: 50% is chance for a binary task (a reviewer's
    objection), and means something else for 10 and for 1000 classes. tau=0.5 gives 0.55 for 10 classes,
    0.75 for 2."""

    def __init__(self, tau: float = 0.5, **kwargs) -> None:
        if not 0.0 < tau < 1.0:
            raise ValueError(f"phase.tau must be in (0, 1), got {tau}.")
        super().__init__(**kwargs)
        self.tau = tau

    def target(self) -> float:
        k = self.num_classes
        return 1.0 / k + self.tau * (1.0 - 1.0 / k)
