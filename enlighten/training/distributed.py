"""Data-parallel training with PyTorch's own stack: torch.distributed, DistributedDataParallel, torchrun.

One run may span several processes (one per GPU, or a few on a CPU with the gloo backend):

- under torchrun (`python -m torch.distributed.run --nproc_per_node=N train.py ...`), which sets RANK,
  WORLD_SIZE, MASTER_ADDR and MASTER_PORT;
- as a multi-task SLURM job (`hydra/launcher=slurm hydra.launcher.tasks_per_node=N`), where submitit's
  `TorchDistributedEnvironment` exports the same variables from SLURM's.

`init()` joins the process group (NCCL for CUDA, gloo on the CPU) and says which rank this process is;
everything else reads `torch.distributed`. With one process nothing here does anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Only the main process writes results, checkpoints and the W&B run."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def _submitit_tasks() -> int:
    """Number of tasks of the SLURM job this submitit job runs in (1 outside one)."""
    if "SUBMITIT_EXECUTOR" not in os.environ or "SLURM_NTASKS" not in os.environ:
        return 1
    return int(os.environ["SLURM_NTASKS"])


def init() -> Dist:
    """Join the process group if this process is one of several; idempotent (a multirun's jobs, or the
    output-directory stamp, may have joined already). With CUDA the group has both backends (NCCL for
    GPU tensors, gloo for CPU ones) and this process uses GPU LOCAL_RANK."""
    if not dist.is_initialized():
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1 and _submitit_tasks() > 1:
            from submitit.helpers import TorchDistributedEnvironment

            TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return Dist()
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")
    return current()


def current() -> Dist:
    """This process's place in the group (one process: rank 0 of 1)."""
    if not dist.is_initialized():
        return Dist()
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))


def all_reduce_sum(*tensors: torch.Tensor) -> list[torch.Tensor]:
    """Sum each tensor over the ranks (one collective for all of them); unchanged with one process."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return list(tensors)
    flat = torch.cat([t.reshape(-1).double() for t in tensors])
    dist.all_reduce(flat)
    out, i = [], 0
    for t in tensors:
        out.append(flat[i : i + t.numel()].view_as(t).to(t.dtype))
        i += t.numel()
    return out


def broadcast_object(obj, src: int = 0):
    """The main process's value of a picklable object, on every rank."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]
