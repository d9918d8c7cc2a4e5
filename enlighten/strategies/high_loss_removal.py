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
import torch.distributed as dist
from torch import Tensor

from enlighten.strategies.mixup import MixupStrategy


class HighLossRemoval(MixupStrategy):
    """`scope` matters only with several processes (data-parallel): `local` ranks each process's own
    slice of the batch; `global` gathers the per-sample losses of the whole global batch and drops
    its highest, exactly as one process would (one all-gather of B numbers per step)."""

    def __init__(self, drop_fraction: float = 0.1, whole_run: bool = False, scope: str = "local", **kwargs) -> None:
        kwargs.setdefault("alpha", 0.0)
        super().__init__(**kwargs)
        if not 0.0 <= drop_fraction < 1.0:
            raise ValueError(f"strategy.drop_fraction must be in [0, 1), got {drop_fraction}.")
        if scope not in ("local", "global"):
            raise ValueError(f"strategy.scope must be local or global, got {scope!r}.")
        self.drop_fraction = drop_fraction
        self.whole_run = whole_run
        self.scope = scope
        self.dropped = 0  # samples left out this epoch (a Python int: no device sync)

    def num_dropped(self, batch_size: int) -> int:
        return math.floor(self.drop_fraction * batch_size + 1e-9)  # 0.29 x 100 is 28.999... in floating point

    def check(self, batch_size: int) -> None:
        super().check(batch_size)
        if self.scope == "global" and dist.is_initialized():  # ranked over the global batch
            batch_size *= dist.get_world_size()
        if self.drop_fraction > 0 and self.num_dropped(batch_size) == 0:
            raise ValueError(
                f"drop_fraction={self.drop_fraction} drops floor({self.drop_fraction} x {batch_size}) = 0 samples of a "
                f"batch of {batch_size}: nothing would be removed. Use a share of at least 1/{batch_size} = "
                f"{1 / batch_size:.4g} or a larger trainer.batch_size."
            )

    def reduce(self, losses: Tensor, in_enp: bool) -> Tensor:
        if not (in_enp or self.whole_run) or self.drop_fraction == 0:
            return losses.mean()
        if self.scope == "global" and dist.is_initialized() and dist.get_world_size() > 1:
            return self._reduce_global(losses)
        k = self.num_dropped(len(losses))
        self.dropped += k
        return losses[self.keep(losses, len(losses) - k)].mean()

    def _reduce_global(self, losses: Tensor) -> Tensor:
        """Drop the highest losses of the global batch. Each process returns the sum of its kept
        losses x world size / kept count, so DDP's average of the gradients is the gradient of the
        mean over every kept sample, as on one process. A mask, not a data-dependent index: no sync."""
        world, rank, b = dist.get_world_size(), dist.get_rank(), len(losses)
        gathered = [torch.empty_like(losses) for _ in range(world)]
        dist.all_gather(gathered, losses.detach().contiguous())
        everyone = torch.cat(gathered)  # process r holds samples r*b .. (r+1)*b - 1 of the global batch
        k = self.num_dropped(len(everyone))
        kept = torch.zeros_like(everyone).index_fill_(0, self.keep(everyone, len(everyone) - k), 1.0)
        self.dropped += k if rank == 0 else 0  # counters are summed over the processes
        return (losses * kept[rank * b : (rank + 1) * b]).sum() * world / (len(everyone) - k)

    def keep(self, losses: Tensor, n: int) -> Tensor:
        """Indices of the `n` losses that count: here the lowest (the highest are dropped)."""
        return torch.topk(losses, n, largest=False, sorted=False).indices

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
        return torch.topk(losses, n, largest=True, sorted=False).indices


class RandomRemoval(HighLossRemoval):
    """Control: drop the same share at random (is it thinning the batch that helps?). Draws from torch's
    generator on the loss's device (seeded by the run, saved in checkpoints): no host sync."""

    def keep(self, losses: Tensor, n: int) -> Tensor:
        return torch.randperm(len(losses), device=losses.device)[:n]
