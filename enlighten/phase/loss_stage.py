"""`loss_stage`: the ENP ends when the rapid initial descent of the training loss is over.

The picture is arXiv 2410.20119's three stages: an initial plateau, a rapid descent, a secondary
plateau. Every `check_every` steps the detector reads the training loss and keeps an exponential
moving average (factor `ema`). The descent rate is the drop of the smoothed loss per step over the
last `window` checks. The ENP ends once the rate has peaked and then fallen below `share` of its
steepest value (the descent is over), and the smoothed loss has fallen by at least `min_drop` of its
first value (so noise on the initial plateau cannot end it). The criterion's value is the rate.
"""

from __future__ import annotations

from collections import deque
from typing import Optional

from enlighten.phase.base import PhaseDetector, Progress, Signals


class LossStage(PhaseDetector):
    def __init__(
        self,
        check_every: int = 10,
        ema: float = 0.9,
        window: int = 5,
        share: float = 0.2,
        min_drop: float = 0.1,
        min_steps: int = 0,
        max_epochs: Optional[int] = None,
    ) -> None:
        super().__init__(min_steps=min_steps, max_epochs=max_epochs)
        if check_every < 1 or window < 1:
            raise ValueError("phase.check_every and phase.window must be >= 1.")
        if not 0.0 <= ema < 1.0 or not 0.0 < share < 1.0 or not 0.0 <= min_drop < 1.0:
            raise ValueError("phase.ema and phase.min_drop must be in [0, 1), phase.share in (0, 1).")
        self.check_every, self.ema, self.window = check_every, ema, window
        self.share, self.min_drop = share, min_drop
        self.smoothed: Optional[float] = None
        self.first: Optional[float] = None
        self.history: deque = deque(maxlen=window + 1)
        self.peak_rate = 0.0

    def criterion(self, progress: Progress, signals: Signals) -> Optional[float]:
        if progress.step % self.check_every:
            return None
        loss = signals.loss()
        self.smoothed = loss if self.smoothed is None else self.ema * self.smoothed + (1 - self.ema) * loss
        self.first = self.smoothed if self.first is None else self.first
        self.history.append(self.smoothed)
        if len(self.history) <= self.window:
            return None
        rate = (self.history[0] - self.history[-1]) / (self.window * self.check_every)
        self.peak_rate = max(self.peak_rate, rate)
        dropped = self.smoothed <= (1 - self.min_drop) * self.first
        if self.peak_rate > 0 and dropped and rate < self.share * self.peak_rate:
            return rate
        return None

    def state_dict(self) -> dict:
        return {
            **super().state_dict(),
            "smoothed": self.smoothed,
            "first": self.first,
            "history": list(self.history),
            "peak_rate": self.peak_rate,
        }

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.smoothed, self.first, self.peak_rate = state["smoothed"], state["first"], state["peak_rate"]
        self.history = deque(state["history"], maxlen=self.window + 1)
