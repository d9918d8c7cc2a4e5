"""Stiffness (Fort et al. 2019): the mean cosine between per-example gradients, within a class and
between classes: gradient interference seen pair by pair. Off by default (one backward per sample):
`diagnostics=stiffness` turns it on."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from enlighten.console import log
from enlighten.diagnostics.base import Measure, Probe
from enlighten.phase.base import Phase


class Stiffness(Measure):
    """`diag/stiffness_within`, `diag/stiffness_between` in the probe rows, on the first `samples`
    probe samples (hard labels, so not on token sequences)."""

    def __init__(self, samples: int = 16) -> None:
        if samples < 2:
            raise ValueError(
                f"diagnostics.measures.stiffness.samples must be >= 2 (a cosine needs a pair), got {samples}."
            )
        self.samples = samples

    def setup(self, probe: Probe) -> None:
        super().setup(probe)
        if not probe.can_mix:
            log.info(
                f"diagnostics: {probe.data.name} gives token sequences, which have no single class: stiffness is "
                f"not measured."
            )

    def row(self, phase: Phase) -> dict:
        if not self.probe.can_mix:
            return {}
        return stiffness(self.probe.model, self.probe.x[: self.samples], self.probe.y[: self.samples])


def stiffness(model: nn.Module, x: Tensor, y: Tensor) -> dict[str, Tensor]:
    """Per-example gradients in eval mode (batch statistics of a single sample mean nothing)."""
    was_training = model.training
    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    rows = []
    for i in range(len(x)):
        loss = F.cross_entropy(model(x[i : i + 1]).float(), y[i : i + 1])
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        rows.append(torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, params)]))
    model.train(was_training)
    g = F.normalize(torch.stack(rows).double(), dim=1)
    cos = g @ g.T
    same = y[:, None] == y[None, :]
    off_diag = ~torch.eye(len(y), dtype=torch.bool, device=y.device)
    within, between = cos[same & off_diag], cos[~same]
    nan = cos.new_full((), float("nan"))  # a fill on the device, not a copy from the host
    return {  # 0-d tensors, read with the other measures at the epoch's end
        "diag/stiffness_within": within.mean() if within.numel() else nan,
        "diag/stiffness_between": between.mean() if between.numel() else nan,
    }
