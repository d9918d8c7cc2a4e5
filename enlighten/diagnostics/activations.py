"""Activation revival, the paper's helpful effect, as a measure: the share of zero activations and of
dead units on the probe (eval mode, train mode, and mixed at lambda 0.5), in every probe row and as
per-epoch columns measured at the epoch's end. The counting is `measures.activation_stats`."""

from __future__ import annotations

from enlighten.diagnostics.base import Measure
from enlighten.diagnostics.measures import activation_stats
from enlighten.phase.base import Phase
from enlighten.strategies.mixing import mix_inputs


class Activations(Measure):
    enp_means = ("diag/zero_act",)

    def _measure(self) -> dict:
        model, x = self.probe.model, self.probe.x
        clean = activation_stats(model, [x])
        train = activation_stats(model, [x], "diag/zero_act_train", train_mode=True, per_site=False)
        if not self.probe.can_mix:
            return {**clean, **train}
        x_mix = mix_inputs(x, self.probe.partners[self.probe.strategy.mixer.pairing], 0.5)
        return {**clean, **train, **activation_stats(model, [x_mix], "diag/zero_act_mix", per_site=False)}

    def row(self, phase: Phase) -> dict:
        return self._measure()

    def end_epoch(self) -> dict:
        return self._measure()
