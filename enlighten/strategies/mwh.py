"""`mixup_without_hesitation`: Mixup Without Hesitation (Yu et al. 2021; github.com/yuhao318/mwh).
Mixup at `mix.alpha` on every step for the first `every_until` of the epochs, then on every other
epoch (the even ones) until `alternate_until`, then on a share of each epoch's steps that falls
linearly from 1 to 0 at the end of training (MWH's own 100 epochs: 1, 0.9, ..., 0.1 over the last
10; a run of 10 epochs has one fading epoch, at 1). MWH flips a coin per step for that share; here
the mixed steps are spread evenly over the epoch instead, so the plan stays a function of the phase."""

import math

from enlighten.phase.base import Phase
from enlighten.strategies.base import Plan, Schedule


class MixupWithoutHesitation(Schedule):
    def __init__(self, every_until: float = 0.6, alternate_until: float = 0.9) -> None:
        if not 0.0 <= every_until <= alternate_until <= 1.0:
            raise ValueError(
                f"strategy.schedule needs 0 <= every_until <= alternate_until <= 1, got "
                f"every_until={every_until}, alternate_until={alternate_until}."
            )
        self.every_until, self.alternate_until = every_until, alternate_until

    def plan(self, phase: Phase, alpha: float) -> Plan:
        if phase.epoch < round(self.every_until * phase.epochs, 9):  # rounded: 0.7 x 90 is 62.99... in floats
            return Plan(alpha=alpha)
        fade_start = round(self.alternate_until * phase.epochs, 9)
        if phase.epoch < fade_start:
            return Plan(alpha=alpha if phase.epoch % 2 == 0 else None)
        share = (phase.epochs - phase.epoch) / (phase.epochs - fade_start)
        i = phase.step - phase.epoch * phase.steps_per_epoch  # the step's place in its epoch
        mix = math.floor((i + 1) * share) > math.floor(i * share)  # floor(n x share) of the first n steps mix
        return Plan(alpha=alpha if mix else None)
