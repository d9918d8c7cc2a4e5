"""The ENP strategies that change only Mixup's schedule (all share `mix.*`):

- `mixup_pause` (the paper, small scale): no mixing during the ENP, `alpha` after.
- `alpha_boost` (the paper, large scale that underfits): `boost_alpha` during the ENP, `alpha` after.
- `mixup_early` (a control with the reverse schedule): Mixup only during the ENP, none after.
"""

from __future__ import annotations

from enlighten.strategies.mixup import MixupStrategy


class MixupPause(MixupStrategy):
    def active(self, in_enp: bool) -> bool:
        return not in_enp


class AlphaBoost(MixupStrategy):
    def __init__(self, boost_alpha: float = 2.0, **kwargs) -> None:
        super().__init__(**kwargs)
        if boost_alpha <= 0:
            raise ValueError(f"strategy.boost_alpha must be > 0, got {boost_alpha}.")
        self.boost_alpha = boost_alpha

    def alpha(self, in_enp: bool) -> float:
        return self.boost_alpha if in_enp else self.base_alpha


class MixupEarly(MixupStrategy):
    def active(self, in_enp: bool) -> bool:
        return in_enp
