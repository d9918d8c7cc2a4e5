"""The measure contract: what the monitor asks of each measure, and the probe they all read.

A measure is one quantity measured during training (gradient interference, zero activations, BENR,
ATD, stiffness, or one of yours). It is one Python class and one entry under `measures:` in
conf/diagnostics/default.yaml; the monitor (`enlighten.diagnostics.monitor`) decides when rows are
measured, reads them from the device and writes them. A measure overrides only the hooks it uses:

    check(strategy)                    # before the data is loaded: settings that need the strategy
    setup(probe)                       # once, before step 0: the model, the data, the probe batch
    row(phase) -> dict                 # values for a probe row of diagnostics.jsonl (the monitor's cadence)
    own_rows(step, epoch, phase, enp_end) -> list[dict]   # rows on a cadence of its own (the dataset scope)
    after_step()                       # after every optimizer step (BENR's path)
    end_epoch() -> dict                # per-epoch columns of metrics.jsonl
    summary() -> dict                  # values for summary.json
    state_dict() / load_state_dict()   # what a resumed run needs to go on measuring the same way

Values may be 0-d tensors: the monitor reads a whole epoch's rows from the device in one go. A measure
never changes training: gradients through `torch.autograd.grad`, batch-norm statistics restored, no
random stream that training draws from (the monitor forks torch's around `row` and `end_epoch`).
`enp_means` names row keys whose mean over the ENP's rows goes to summary.json (`enp_mean/<key>`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from enlighten.phase.base import Phase

# Independent random streams drawn from the run's seed (a probe seeded with s + 1 would repeat the
# dataset order of seed s); the labels dataset.label_noise replaces are drawn from the third.
PROBE_STREAM, DATASET_STREAM, LABEL_NOISE_STREAM = 0, 1, 2


def stream_generator(seed: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, stream]).generate_state(1)[0]))


@dataclass
class Probe:
    """What every measure reads: the model, the data, the strategy, and the probe, a fixed batch of
    clean, un-augmented training samples `x`, `y` with fixed partners per pairing (`partners`), drawn
    from the run's `seed`: rows at different steps differ only by the weights."""

    model: nn.Module
    data: object
    strategy: object
    x: Tensor
    y: Tensor
    partners: dict[str, Tensor]
    seed: int

    @property
    def can_mix(self) -> bool:
        """Token ids (language models) cannot be mixed, and a sequence has no single class."""
        return not self.data.tokens


class Measure:
    """The base of every measure: each hook does nothing (see the module's docstring)."""

    enp_means: tuple[str, ...] = ()

    def check(self, strategy) -> None:
        pass

    def setup(self, probe: Probe) -> None:
        self.probe = probe

    def row(self, phase: Phase) -> dict:
        return {}

    def own_rows(self, step: int, epoch: int, phase: Phase, enp_end: bool) -> list[dict]:
        return []

    def after_step(self) -> None:
        pass

    def end_epoch(self) -> dict:
        return {}

    def summary(self) -> dict:
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
