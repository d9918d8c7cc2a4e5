"""`dose_matched_pause`: the control of Mixup Pause that pauses as long, but not in the ENP.

Mixup at `mix.alpha` during the ENP, then no mixing for as many steps as the ENP lasted, then Mixup
again. It withholds the same number of mixed steps as Mixup Pause does in the same run (the dose),
right after the ENP instead of inside it: Pause minus this control is the part of Pause's effect that
needs the pause to fall in the ENP, rather than less mixing early in training. A run whose ENP never
ends mixes on every step (it is Mixup, as Pause is then vanilla)."""

from enlighten.phase.base import Phase
from enlighten.strategies.base import Plan, Schedule


class DoseMatchedPause(Schedule):
    def plan(self, phase: Phase, alpha: float) -> Plan:
        end = phase.enp_end_step  # the ENP lasted `end` steps (steps 0 .. end - 1 trained in it)
        paused = not phase.in_enp and end is not None and phase.step < 2 * end
        return Plan(alpha=None if paused else alpha)
