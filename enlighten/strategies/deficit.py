"""`blur_deficit`: blurred images until a step, clean ones after (Achille et al. 2019, "Critical
Learning Periods in Deep Networks": a deficit removed late leaves a lasting loss of accuracy, one
removed early almost none). Sweep `strategy.schedule.until_step` for the critical period. No mixing.

`until_step`: the deficit is removed after that many steps (null: where the ENP ends). `sigma`: the
Gaussian blur in pixels (Achille et al. down- and up-sample 32x32 images to 8x8; sigma 2 on MNIST's
28x28 blurs strokes to a similar degree)."""

from __future__ import annotations

from typing import Optional

from enlighten.phase.base import Phase
from enlighten.strategies.base import Plan, Schedule


class BlurDeficit(Schedule):
    def __init__(self, sigma: float = 2.0, until_step: Optional[int] = None) -> None:
        if sigma <= 0:
            raise ValueError(f"strategy.schedule.sigma must be > 0 (pixels), got {sigma}.")
        if until_step is not None and until_step < 0:
            raise ValueError(f"strategy.schedule.until_step must be >= 0 or null (the ENP's end), got {until_step}.")
        self.sigma, self.until_step = sigma, until_step

    def plan(self, phase: Phase, alpha: float) -> Plan:
        deficit = phase.in_enp if self.until_step is None else phase.step < self.until_step
        return Plan(alpha=None, blur=self.sigma if deficit else 0.0)

    def alphas(self, alpha: float) -> tuple[float, ...]:
        return ()

    def check_input(self, input_shape: tuple) -> None:
        if len(input_shape) != 3:
            raise ValueError(
                f"strategy.schedule.sigma blurs images [C, H, W]; these samples have shape {list(input_shape)}."
            )
