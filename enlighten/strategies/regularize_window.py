"""`regularize_early`: weight decay and data augmentation only inside a window of training, none
outside it (Golatkar et al. 2019, "Time Matters in Regularizing Deep Networks": regularization removed
after an early window keeps most of its benefit; applied only after it, little). No mixing.

The window (`window`): `enp`, while the ENP lasts; `after_enp`, once it has ended; `epochs`, the epochs
[start, stop) given in `epochs`. Outside it the weight decay is multiplied by `weight_decay_scale_outside`
(0: none) and the images are not augmented."""

from __future__ import annotations

from enlighten.phase.base import Phase
from enlighten.strategies.base import Plan, Schedule

WINDOWS = ("enp", "after_enp", "epochs")


class RegularizeInWindow(Schedule):
    schedules_augmentation = True

    def __init__(
        self, window: str = "enp", epochs: tuple[int, int] = (0, 1), weight_decay_scale_outside: float = 0.0
    ) -> None:
        if window not in WINDOWS:
            raise ValueError(f"strategy.schedule.window must be one of {', '.join(WINDOWS)}, got {window!r}.")
        if window == "epochs" and not (len(epochs) == 2 and 0 <= epochs[0] < epochs[1]):
            raise ValueError(
                f"strategy.schedule.epochs must be [start, stop) with 0 <= start < stop, got {list(epochs)}."
            )
        if weight_decay_scale_outside < 0:
            raise ValueError(
                f"strategy.schedule.weight_decay_scale_outside must be >= 0, got {weight_decay_scale_outside}."
            )
        self.window, self.epochs, self.weight_decay_scale_outside = window, tuple(epochs), weight_decay_scale_outside

    def inside(self, phase: Phase) -> bool:
        if self.window == "enp":
            return phase.in_enp
        if self.window == "after_enp":
            return not phase.in_enp
        return self.epochs[0] <= phase.epoch < self.epochs[1]

    def plan(self, phase: Phase, alpha: float) -> Plan:
        if self.inside(phase):
            return Plan(alpha=None)
        return Plan(alpha=None, weight_decay_scale=self.weight_decay_scale_outside, augment=False)

    def alphas(self, alpha: float) -> tuple[float, ...]:
        return ()
