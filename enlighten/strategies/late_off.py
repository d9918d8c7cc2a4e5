"""`mixup_late_off`: Mixup at `mix.alpha` on every step but none in the last `off_share` of training,
so it ends on clean data (timm's `--mixup-off-epoch`, counted in steps here)."""

from enlighten.phase.base import Phase
from enlighten.strategies.base import Plan, Schedule


class MixupLateOff(Schedule):
    def __init__(self, off_share: float = 0.1) -> None:
        if not 0.0 <= off_share <= 1.0:
            raise ValueError(f"strategy.schedule.off_share must be in [0, 1], got {off_share}.")
        self.off_share = off_share

    def plan(self, phase: Phase, alpha: float) -> Plan:
        late = phase.step >= round((1.0 - self.off_share) * phase.total_steps)
        return Plan(alpha=None if late else alpha)
