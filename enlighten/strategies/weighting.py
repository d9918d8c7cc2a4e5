"""Sample weightings: how a step's per-sample losses become its loss.

- `Mean`: every sample counts.
- `DropHighest` (High-Loss Removal, the paper): the `drop_fraction` highest losses of the batch are left
  out. Losses are ranked within the batch, from the same forward pass (no extra cost).
- `DropLowest`, `DropRandom`: the controls (is it the loss ranking that helps? thinning the batch?).

For a language model a sample is a sequence (its loss the mean over its tokens), so whole sequences are
dropped. `reduce` returns the loss and the number of samples it dropped (a Python int: no device sync).
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import Tensor


class Mean:
    drops = False  # whether it ever leaves samples out

    def check(self, batch_size: int) -> None:
        pass

    def reduce(self, losses: Tensor) -> tuple[Tensor, int]:
        return losses.mean(), 0


class DropHighest(Mean):
    """`scope` matters only with several processes (data-parallel): `local` ranks each process's own
    slice of the batch; `global` gathers the per-sample losses of the whole global batch and drops
    its highest, exactly as one process would (one all-gather of B numbers per step)."""

    def __init__(self, drop_fraction: float = 0.1, scope: str = "local") -> None:
        if not 0.0 <= drop_fraction < 1.0:
            raise ValueError(f"strategy.weighting.drop_fraction must be in [0, 1), got {drop_fraction}.")
        if scope not in ("local", "global"):
            raise ValueError(f"strategy.weighting.scope must be local or global, got {scope!r}.")
        self.drop_fraction = drop_fraction
        self.scope = scope
        self.drops = drop_fraction > 0

    def num_dropped(self, batch_size: int) -> int:
        return math.floor(self.drop_fraction * batch_size + 1e-9)  # 0.29 x 100 is 28.999... in floating point

    def check(self, batch_size: int) -> None:
        if self.scope == "global" and dist.is_initialized():  # ranked over the global batch
            batch_size *= dist.get_world_size()
        if self.drop_fraction > 0 and self.num_dropped(batch_size) == 0:
            raise ValueError(
                f"drop_fraction={self.drop_fraction} drops floor({self.drop_fraction} x {batch_size}) = 0 samples of a "
                f"batch of {batch_size}: nothing would be removed. Use a share of at least 1/{batch_size} = "
                f"{1 / batch_size:.4g} or a larger trainer.batch_size."
            )

    def reduce(self, losses: Tensor) -> tuple[Tensor, int]:
        if self.drop_fraction == 0:
            return losses.mean(), 0
        if self.scope == "global" and dist.is_initialized() and dist.get_world_size() > 1:
            return self._reduce_global(losses)
        k = self.num_dropped(len(losses))
        return losses[self.keep(losses, len(losses) - k)].mean(), k

    def _reduce_global(self, losses: Tensor) -> tuple[Tensor, int]:
        """Drop the highest losses of the global batch. Each process returns the sum of its kept
        losses x world size / kept count, so DDP's average of the gradients is the gradient of the
        mean over every kept sample, as on one process. A mask, not a data-dependent index: no sync.
        The dropped count is the main process's alone (counters are summed over the processes)."""
        world, rank, b = dist.get_world_size(), dist.get_rank(), len(losses)
        gathered = [torch.empty_like(losses) for _ in range(world)]
        dist.all_gather(gathered, losses.detach().contiguous())
        everyone = torch.cat(gathered)  # process r holds samples r*b .. (r+1)*b - 1 of the global batch
        k = self.num_dropped(len(everyone))
        kept = torch.zeros_like(everyone).index_fill_(0, self.keep(everyone, len(everyone) - k), 1.0)
        loss = (losses * kept[rank * b : (rank + 1) * b]).sum() * world / (len(everyone) - k)
        return loss, k if rank == 0 else 0

    def keep(self, losses: Tensor, n: int) -> Tensor:
        """Indices of the `n` losses that count: here the lowest (the highest are dropped)."""
        return torch.topk(losses, n, largest=False, sorted=False).indices


class DropLowest(DropHighest):
    def keep(self, losses: Tensor, n: int) -> Tensor:
        return torch.topk(losses, n, largest=True, sorted=False).indices


class DropRandom(DropHighest):
    """Draws from torch's generator on the loss's device (seeded by the run, saved in checkpoints): no
    host sync."""

    def keep(self, losses: Tensor, n: int) -> Tensor:
        return torch.randperm(len(losses), device=losses.device)[:n]
