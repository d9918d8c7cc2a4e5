"""`diagnostics=gradient_noise`: the covariance K of the per-sample gradients of the clean probe loss,
its largest eigenvalue and its trace, in every probe row. Jastrzebski et al. (2020) find that both peak
early in training, at the break-even point, and that the peak is lower with a larger learning rate or a
smaller batch. Off by default: a row computes and keeps one gradient per probe sample (n x parameters)."""

from __future__ import annotations

import torch
from torch import Tensor

from enlighten.console import log
from enlighten.diagnostics.base import Measure, Probe
from enlighten.diagnostics.measures import in_mode, per_sample_gradients
from enlighten.phase.base import Phase


class GradientNoise(Measure):
    """`diag/grad_noise_top` and `diag/grad_noise_trace`: the largest eigenvalue and the trace of the
    covariance of the per-sample gradients of the first `samples` probe samples (cross-entropy with hard
    labels, eval mode, as for sharpness: the loss is a function of the weights alone). Not measured on
    token sequences (a sample has no single label)."""

    enp_means = ("diag/grad_noise_top", "diag/grad_noise_trace")

    def __init__(self, samples: int = 64) -> None:
        if samples < 2:
            raise ValueError(
                f"diagnostics.measures.gradient_noise.samples must be >= 2 (a covariance needs two), got {samples}."
            )
        self.samples = samples

    def setup(self, probe: Probe) -> None:
        super().setup(probe)
        if not probe.can_mix:
            log.info(f"diagnostics: {probe.data.name} gives token sequences: gradient noise is not measured.")

    def row(self, phase: Phase) -> dict:
        if not self.probe.can_mix:
            return {}
        model = self.probe.model
        with in_mode(model, training=False):
            grads = per_sample_gradients(model, self.probe.x[: self.samples], self.probe.y[: self.samples])
        return gradient_covariance(grads)


def gradient_covariance(grads: list[Tensor]) -> dict[str, Tensor]:
    """The largest eigenvalue and the trace of the covariance (unbiased, 1 / (n - 1)) of n per-sample
    gradients (tensors [n, ...], one per parameter). K is parameters x parameters; its non-zero
    eigenvalues are those of the n x n Gram matrix of the centred gradients, which is all we form."""
    n = grads[0].shape[0]
    gram = torch.zeros(n, n, dtype=torch.float64, device=grads[0].device)
    for g in grads:  # products in the gradients' precision (float32: the cost), sums in float64
        centred = g.flatten(1) - g.flatten(1).mean(0)
        gram += (centred @ centred.T).double()
    gram /= n - 1
    return {"diag/grad_noise_top": torch.linalg.eigvalsh(gram)[-1], "diag/grad_noise_trace": gram.trace()}
