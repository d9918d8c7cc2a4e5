"""`high_loss_removal` (the paper, for tasks where Mixup does not apply): during the ENP the
`drop_fraction` highest-loss samples of each batch are left out of the loss; after it every sample
counts. Losses are ranked within the batch, from the same forward pass (no extra cost).

Mixing is off by default (`alpha: 0`, its main use); with `alpha` > 0 it mixes as `mixup` does, and
ranks the mixed samples' losses. `whole_run=true` drops samples for the whole run (the control
`strategy=high_loss_removal_whole_run`). For a language model a sample is a sequence (its loss the
mean over its tokens), so whole sequences are dropped.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from enlighten.strategies.mixup import MixupStrategy


class HighLossRemoval(MixupStrategy):
    def __init__(self, drop_fraction: float = 0.1, whole_run: bool = False, **kwargs) -> None:
        kwargs.setdefault("alpha", 0.0)
        super().__init__(**kwargs)
        if not 0.0 <= drop_fraction < 1.0:
            raise ValueError(f"strategy.drop_fraction must be in [0, 1), got {drop_fraction}.")
        self.drop_fraction = drop_fraction
        self.whole_run = whole_run
        self.dropped = 0  # samples left out this epoch (a Python int: no device sync)

    def num_dropped(self, batch_size: int) -> int:
        return math.floor(self.drop_fraction * batch_size + 1e-9)  # 0.29 x 100 is 28.999... in floating point

    def check(self, batch_size: int) -> None:
        super().check(batch_size)
        if self.drop_fraction > 0 and self.num_dropped(batch_size) == 0:
            raise ValueError(
                f"drop_fraction={self.drop_fraction} drops floor({self.drop_fraction} x {batch_size}) = 0 samples of a "
                f"batch of {batch_size}: nothing would be removed. Use a share of at least 1/{batch_size} = "
                f"{1 / batch_size:.4g} or a larger trainer.batch_size."
            )

    def reduce(self, losses: Tensor, in_enp: bool) -> Tensor:
        k = self.num_dropped(len(losses)) if (in_enp or self.whole_run) else 0
        if k == 0:
            return losses.mean()
        self.dropped += k
        return self.keep(losses, len(losses) - k).mean()

    def keep(self, losses: Tensor, n: int) -> Tensor:
        """The `n` losses that count: here the lowest (the highest are dropped)."""
        return torch.topk(losses, n, largest=False, sorted=False).values

    def epoch_stats(self) -> dict:
        stats, self.dropped = {"dropped": self.dropped}, 0
        return stats

    def state_dict(self) -> dict:
        return {"dropped": self.dropped}

    def load_state_dict(self, state: dict) -> None:
        self.dropped = state["dropped"]


class LowLossRemoval(HighLossRemoval):
    """Control: drop the `drop_fraction` lowest-loss samples instead (is it the loss ranking that helps?)."""

    def keep(self, losses: Tensor, n: int) -> Tensor:
        return torch.topk(losses, n, largest=True, sorted=False).values


class RandomRemoval(HighLossRemoval):
    """Control: drop the same share at random (is it thinning the batch that helps?). Draws from torch's
    generator on the loss's device (seeded by the run, saved in checkpoints): no host sync."""

    def keep(self, losses: Tensor, n: int) -> Tensor:
        return losses[torch.randperm(len(losses), device=losses.device)[:n]]
