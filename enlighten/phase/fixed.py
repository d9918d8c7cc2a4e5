"""`fixed_epochs` and `fraction`: the ENP as a fixed share of training, as the paper's experiments used.

- `fixed_epochs`: the first `epochs` epochs (the paper's grid: 10, 15, 20, 25).
- `fraction`: the first `fraction` of all training steps (v1 of the paper: up to 4%).
"""

from __future__ import annotations

import math
from typing import Optional

from enlighten.phase.base import PhaseDetector, Progress


class FixedEpochs(PhaseDetector):
    def __init__(self, epochs: int = 10, min_steps: int = 0, max_epochs: Optional[int] = None) -> None:
        super().__init__(min_steps=min_steps, max_epochs=max_epochs)
        if epochs < 0:
            raise ValueError(f"phase.epochs must be >= 0, got {epochs}.")
        self.epochs = epochs
        self.in_enp = epochs > 0

    def criterion(self, progress: Progress, signals) -> Optional[float]:
        return float(self.epochs) if progress.step >= self.epochs * progress.steps_per_epoch else None


class Fraction(PhaseDetector):
    def __init__(self, fraction: float = 0.04, min_steps: int = 0, max_epochs: Optional[int] = None) -> None:
        super().__init__(min_steps=min_steps, max_epochs=max_epochs)
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"phase.fraction must be in [0, 1], got {fraction}.")
        self.fraction = fraction
        self.in_enp = fraction > 0

    def criterion(self, progress: Progress, signals) -> Optional[float]:
        end = math.ceil(self.fraction * progress.total_steps)
        return progress.step / progress.total_steps if progress.step >= end else None
