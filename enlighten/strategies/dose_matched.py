"""`dose_matched_pause`: the control of Mixup Pause that pauses as long, but not in the ENP.

Mixup at `mix.alpha` during the ENP, then no mixing for `steps` steps, then Mixup again. With `steps`
set to the number of steps the same seed's Mixup Pause run spent in the ENP, it withholds exactly
Pause's dose of un-mixed steps, right after the ENP instead of inside it: Pause minus this control is
the part of Pause's effect that needs the pause to fall in the ENP, rather than less mixing early in
training. Without `steps` it pauses for as long as its own ENP lasted, which under Mixup is longer
than Pause's (a clean run leaves the ENP sooner). A run whose ENP never ends mixes on every step (it
is Mixup, as Pause is then vanilla)."""

from typing import Optional

from enlighten.phase.base import Phase
from enlighten.strategies.base import Plan, Schedule


class DoseMatchedPause(Schedule):
    def __init__(self, steps: Optional[int] = None) -> None:
        if steps is not None and steps < 0:
            raise ValueError(f"strategy.schedule.steps must be >= 0 or null (as long as the ENP lasted), got {steps}.")
        self.steps = steps

    def plan(self, phase: Phase, alpha: float) -> Plan:
        end = phase.enp_end_step  # the ENP lasted `end` steps (steps 0 .. end - 1 trained in it)
        pause = end if self.steps is None else self.steps
        paused = not phase.in_enp and end is not None and phase.step < end + pause
        return Plan(alpha=None if paused else alpha)
