"""`diagnostics=weight_distance`: how far the distribution of weight amplitudes |w| has moved from
the one at initialization, as the 1-D Wasserstein distance W1, overall and per parameter group, in every
probe row. The small-initialization and multi-stage loss literature follows the weights' amplitude
distribution rather than their norm: a distance near 0 with a changing loss is the lazy regime."""

from __future__ import annotations

import torch
from torch import Tensor

from enlighten.diagnostics.base import Measure, Probe
from enlighten.diagnostics.measures import parameter_groups
from enlighten.models.layers import is_weight
from enlighten.phase.base import Phase


class WeightDistance(Measure):
    """`diag/weight_w1` and `diag/weight_w1/<group>`: W1 between the empirical distributions of |w| now
    and at initialization, over the weight matrices and kernels (parameters of 2 or more dimensions;
    biases and normalization scales are left out). Both distributions have the same number of points,
    so W1 is the mean absolute difference of the sorted amplitudes. The initial amplitudes are taken
    at setup, before the first step (a resumed run rebuilds the same initial weights from its seed)."""

    enp_means = ("diag/weight_w1",)

    def setup(self, probe: Probe) -> None:
        super().setup(probe)
        params = list(probe.model.parameters())
        self.groups = {
            g: [i for i in idx if is_weight(params[i])]
            for g, idx in parameter_groups(probe.model).items()
            if any(is_weight(params[i]) for i in idx)
        }
        self.initial = {g: _amplitudes(params, idx) for g, idx in self.groups.items()}
        self.initial_all = torch.sort(torch.cat(list(self.initial.values())))[0]

    @torch.no_grad()
    def row(self, phase: Phase) -> dict:
        params = list(self.probe.model.parameters())
        now = {g: _amplitudes(params, idx) for g, idx in self.groups.items()}
        everything = torch.sort(torch.cat(list(now.values())))[0]
        return {
            "diag/weight_w1": (everything - self.initial_all).abs().mean(),
            **{f"diag/weight_w1/{g}": (now[g] - self.initial[g]).abs().mean() for g in self.groups},
        }


@torch.no_grad()
def _amplitudes(params: list[Tensor], idx: list[int]) -> Tensor:
    """The sorted |w| of the parameters `idx`, in float64."""
    return torch.sort(torch.cat([params[i].detach().flatten().double().abs() for i in idx]))[0]
