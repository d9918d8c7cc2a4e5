"""`diagnostics=weight_norms`: the L2 norm of the weights, overall and per parameter group (stem,
stages.0, ..., head), in every probe row: how the weights grow or shrink through the ENP."""

from enlighten.diagnostics.base import Measure, Probe
from enlighten.diagnostics.measures import group_norms, parameter_groups
from enlighten.phase.base import Phase


class WeightNorms(Measure):
    def setup(self, probe: Probe) -> None:
        super().setup(probe)
        self.groups = parameter_groups(probe.model)

    def row(self, phase: Phase) -> dict:
        return group_norms(list(self.probe.model.parameters()), self.groups, "diag/weight_norm")
