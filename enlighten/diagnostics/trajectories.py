"""The paths of the weights and features through an epoch, as measures: BENR (how noisy the epoch's
path through parameter space is) and ATD (how far the probe's penultimate features move between
epochs), both per-epoch columns of metrics.jsonl. The arithmetic is in `enlighten.diagnostics.measures`."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from enlighten.diagnostics.base import Measure, Probe
from enlighten.diagnostics.measures import BatchEpochNormRatio, penultimate_features, trajectory_distance


class BENR(Measure):
    """`diag/benr`: the sum of every step's update norm over the norm of the epoch's net change."""

    def setup(self, probe: Probe) -> None:
        super().setup(probe)
        self.ratio = BatchEpochNormRatio(list(probe.model.parameters()))

    def after_step(self) -> None:
        self.ratio.step()

    def end_epoch(self) -> dict:
        return {"diag/benr": self.ratio.end_epoch()}

    def state_dict(self) -> dict:
        """Within an epoch, its start weights and the path so far (at an epoch's end both copies equal
        the current weights, so nothing)."""
        if self.ratio.path.item() == 0:
            return {"benr": None}
        return {"benr": {"start": [t.cpu() for t in self.ratio.start], "path": self.ratio.path.cpu()}}

    def load_state_dict(self, state: dict) -> None:
        self.ratio = BatchEpochNormRatio(list(self.probe.model.parameters()))  # after the model is loaded
        if state.get("benr"):
            device = self.probe.x.device
            torch._foreach_copy_(self.ratio.start, [t.to(device) for t in state["benr"]["start"]])
            self.ratio.path.copy_(state["benr"]["path"])


class ATD(Measure):
    """`diag/atd_mean`, `diag/atd_var`: per-sample distance of the probe's penultimate features (eval
    mode) between this epoch's end and the previous one's, from the second epoch."""

    def setup(self, probe: Probe) -> None:
        super().setup(probe)
        self.previous: Optional[Tensor] = None

    @torch.no_grad()
    def end_epoch(self) -> dict:
        model = self.probe.model
        was_training = model.training
        model.eval()
        features = penultimate_features(model, self.probe.x).float()
        model.train(was_training)
        out = trajectory_distance(self.previous, features) if self.previous is not None else {}
        self.previous = features
        return out

    def state_dict(self) -> dict:
        return {"prev_features": self.previous}

    def load_state_dict(self, state: dict) -> None:
        previous = state.get("prev_features")  # checkpoints load onto the CPU
        self.previous = None if previous is None else previous.to(self.probe.x.device)
