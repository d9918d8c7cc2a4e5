"""The schedules of the presets: each decides, from the phase record of a step, whether it mixes, at
which alpha, and whether the sample weighting applies (`Plan`).

- `EveryStep` (`mixup`, the paper's baseline): Mixup at `mix.alpha` on every step.
- `NoMixing` (`vanilla`): never mixes.
- `MixupPause` (the paper, small scale): no mixing during the ENP, `mix.alpha` after.
- `AlphaBoost` (the paper, large scale that underfits): `boost_alpha` during the ENP, `mix.alpha` after.
- `MixupEarly` (a control with the reverse schedule): Mixup only during the ENP, none after.
- `WeighDuringEnp` (High-Loss Removal and its controls): mixes at the mixer's alpha on every step
  (`strategy.mixer.alpha`, 0 in the removal presets: no mixing), applies the weighting during the ENP
  only, or for the whole run.

Schedules outside the paper have a file of their own each, as a new one would (the README's worked example).
"""

from __future__ import annotations

from enlighten.phase.base import Phase
from enlighten.strategies.base import Plan, Schedule


class EveryStep(Schedule):
    pass


class NoMixing(Schedule):
    def plan(self, phase: Phase, alpha: float) -> Plan:
        return Plan(alpha=None)

    def alphas(self, alpha: float) -> tuple[float, ...]:
        return ()


class MixupPause(Schedule):
    def plan(self, phase: Phase, alpha: float) -> Plan:
        return Plan(alpha=None if phase.in_enp else alpha)


class AlphaBoost(Schedule):
    def __init__(self, boost_alpha: float = 2.0) -> None:
        if boost_alpha <= 0:
            raise ValueError(f"strategy.schedule.boost_alpha must be > 0, got {boost_alpha}.")
        self.boost_alpha = boost_alpha

    def plan(self, phase: Phase, alpha: float) -> Plan:
        return Plan(alpha=self.boost_alpha if phase.in_enp else alpha)

    def alphas(self, alpha: float) -> tuple[float, ...]:
        return (self.boost_alpha, alpha)


class MixupEarly(Schedule):
    def plan(self, phase: Phase, alpha: float) -> Plan:
        return Plan(alpha=alpha if phase.in_enp else None)


class WeighDuringEnp(Schedule):
    def __init__(self, whole_run: bool = False) -> None:
        self.whole_run = whole_run

    def plan(self, phase: Phase, alpha: float) -> Plan:
        return Plan(alpha=alpha, weigh=phase.in_enp or self.whole_run)
