"""`diagnostics=weight_norms`: the L2 norm of the weights, overall and per parameter group (stem,
stages.0, ..., head), in every probe row: how the weights grow or shrink through the ENP."""

import torch

from enlighten.diagnostics.base import Measure, Probe
from enlighten.diagnostics.measures import parameter_groups
from enlighten.phase.base import Phase


class WeightNorms(Measure):
    def setup(self, probe: Probe) -> None:
        super().setup(probe)
        params = list(probe.model.parameters())
        self.groups = {name: [params[i] for i in idx] for name, idx in parameter_groups(probe.model).items()}

    @torch.no_grad()
    def row(self, phase: Phase) -> dict:
        # 0-d tensors: the monitor reads the epoch's rows from the device in one go
        norms = {g: torch.stack([p.double().norm() for p in ps]).norm() for g, ps in self.groups.items()}
        total = torch.stack(list(norms.values())).norm()
        return {"diag/weight_norm": total, **{f"diag/weight_norm/{g}": n for g, n in norms.items()}}
