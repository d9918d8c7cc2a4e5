"""`diagnostics=fisher`: the trace of the Fisher information of the clean probe, overall and per
parameter group, in every probe row. Achille et al. (2019) find that it rises and falls early in
training, during the critical period. Two traces:

- `diag/fisher_trace`: the Fisher of the model's own predictive distribution,
  E_x E_{c ~ p(.|x)} |grad log p(c|x)|^2, with the expectation over c computed exactly (every class);
- `diag/fisher_trace_empirical`: the "empirical Fisher", with the dataset's labels, E_x |grad log p(y|x)|^2.

Off by default: a row takes one per-sample gradient pass per class and one with the labels."""

from __future__ import annotations

import torch
from torch import Tensor

from enlighten.console import log
from enlighten.diagnostics.base import Measure, Probe
from enlighten.diagnostics.measures import in_mode, parameter_groups, per_sample_gradients
from enlighten.phase.base import Phase


class FisherTrace(Measure):
    """The two traces on the first `samples` probe samples (eval mode, as for sharpness), and each per
    parameter group (`diag/fisher_trace/<group>`, ...). Not measured on token sequences."""

    enp_means = ("diag/fisher_trace", "diag/fisher_trace_empirical")

    def __init__(self, samples: int = 64) -> None:
        if samples < 1:
            raise ValueError(f"diagnostics.measures.fisher.samples must be >= 1, got {samples}.")
        self.samples = samples

    def setup(self, probe: Probe) -> None:
        super().setup(probe)
        self.groups = parameter_groups(probe.model)
        if not probe.can_mix:
            log.info(f"diagnostics: {probe.data.name} gives token sequences: the Fisher trace is not measured.")

    def row(self, phase: Phase) -> dict:
        if not self.probe.can_mix:
            return {}
        model, x, y = self.probe.model, self.probe.x[: self.samples], self.probe.y[: self.samples]
        with in_mode(model, training=False):
            with torch.no_grad():
                probs = torch.softmax(model(x).float(), -1).double()
            empirical = _squared_norms(per_sample_gradients(model, x, y))  # [n, parameters]
            fisher = sum(
                probs[:, c, None] * _squared_norms(per_sample_gradients(model, x, torch.full_like(y, c)))
                for c in range(probs.shape[1])
            )
        return {**self._traces(fisher, "diag/fisher_trace"), **self._traces(empirical, "diag/fisher_trace_empirical")}

    def _traces(self, per_parameter: Tensor, key: str) -> dict[str, Tensor]:
        """The trace (the mean over samples of the squared gradient norms), overall and per group."""
        mean = per_parameter.mean(0)
        return {key: mean.sum(), **{f"{key}/{g}": mean[idx].sum() for g, idx in self.groups.items()}}


def _squared_norms(grads: list[Tensor]) -> Tensor:
    """[n, parameter tensors]: each sample's squared gradient norm in each parameter tensor."""
    return torch.stack([g.flatten(1).double().pow(2).sum(1) for g in grads], 1)
