"""`diagnostics=sharpness`: the curvature of the loss, the largest eigenvalue (in magnitude) of the
Hessian of the clean probe loss, by power iteration on Hessian-vector products. Early training's
sharpness rises and falls around the break-even point (Jastrzebski et al. 2020) and settles near 2/lr
at the edge of stability (Cohen et al. 2021). Off by default: a row costs 1 + `iterations`
double-backward passes of the probe."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from enlighten.diagnostics.base import Measure, Probe
from enlighten.diagnostics.measures import in_mode
from enlighten.phase.base import Phase


class Sharpness(Measure):
    """`diag/sharpness` in the probe rows: the Rayleigh quotient v'Hv of the last of `iterations` power
    steps (v of unit norm), from a fixed random start (`seed`; its own generator, not training's). The
    loss is the mean cross-entropy with hard labels in eval mode, so batch norm uses its running
    statistics and the loss is a function of the weights alone."""

    enp_means = ("diag/sharpness",)

    def __init__(self, iterations: int = 20, seed: int = 0) -> None:
        if iterations < 1:
            raise ValueError(f"diagnostics.measures.sharpness.iterations must be >= 1, got {iterations}.")
        self.iterations, self.seed = iterations, seed

    def setup(self, probe: Probe) -> None:
        super().setup(probe)
        self.params = [p for p in probe.model.parameters() if p.requires_grad]
        g = torch.Generator().manual_seed(self.seed)
        start = [torch.randn(p.shape, generator=g, dtype=torch.float32) for p in self.params]
        self.start = [v.to(p.device) for v, p in zip(start, self.params)]

    def row(self, phase: Phase) -> dict:
        model, x, y = self.probe.model, self.probe.x, self.probe.y
        with in_mode(model, training=False):
            logits = model(x)
            loss = F.cross_entropy(logits.flatten(0, -2).float(), y.flatten())
            grads = torch.autograd.grad(loss, self.params, create_graph=True)
            v = _unit(self.start)
            for _ in range(self.iterations):
                hv = torch.autograd.grad(grads, self.params, grad_outputs=v, retain_graph=True)
                eigenvalue = sum((h * u).sum() for h, u in zip(hv, v))  # v has unit norm
                v = _unit([h.detach() for h in hv])
        return {"diag/sharpness": eigenvalue.detach().double()}


def _unit(vectors: list[torch.Tensor]) -> list[torch.Tensor]:
    norm = torch.sqrt(sum(v.pow(2).sum() for v in vectors))
    return [v / norm for v in vectors]
