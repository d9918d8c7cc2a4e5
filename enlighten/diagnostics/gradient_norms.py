"""`diagnostics=gradient_norms`: the L2 norm of the gradient of the clean probe loss, overall and per
parameter group (stem, stages.0, ..., head), in every probe row: how hard each part of the network is
pushed through the ENP. One backward pass of the probe in train mode (its own batch statistics, as
training sees them; the running statistics restored), with the targets training uses (label smoothing)."""

from __future__ import annotations

from enlighten.diagnostics.base import Measure, Probe
from enlighten.diagnostics.measures import (
    clean_gradients,
    group_norms,
    in_mode,
    parameter_groups,
    preserved_buffers,
)
from enlighten.phase.base import Phase


class GradientNorms(Measure):
    enp_means = ("diag/grad_norm",)

    def setup(self, probe: Probe) -> None:
        super().setup(probe)
        self.groups = parameter_groups(probe.model)

    def row(self, phase: Phase) -> dict:
        model, p = self.probe.model, self.probe
        with in_mode(model, training=True), preserved_buffers(model):
            grads = clean_gradients(model, p.x, p.y, p.data.num_classes, p.strategy.mixer.label_smoothing)
        return group_norms(grads, self.groups, "diag/grad_norm")
