"""Optimizers and learning-rate schedules (stepped per iteration, with linear warmup).

Configs name these with `_target_`; `run` supplies the model's parameters and the
run's step counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR


def param_groups(model: nn.Module, weight_decay: float, decay_norm_and_bias: bool) -> list[dict]:
    """Split parameters so weight decay can skip biases and norm gains (1-D tensors)."""
    if decay_norm_and_bias:
        return [{"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": weight_decay}]
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _fast_kwargs(params: list[dict]) -> dict:
    """Fused kernels on CUDA, multi-tensor (foreach) elsewhere."""
    on_cuda = all(p.is_cuda for g in params for p in g["params"])
    return {"fused": True} if on_cuda else {"foreach": True}


def sgd(
    model: nn.Module,
    lr: float = 0.1,
    momentum: float = 0.9,
    nesterov: bool = False,
    weight_decay: float = 5e-4,
    decay_norm_and_bias: bool = True,
) -> torch.optim.SGD:
    groups = param_groups(model, weight_decay, decay_norm_and_bias)
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov, **_fast_kwargs(groups))


def adamw(
    model: nn.Module,
    lr: float = 5e-4,
    betas: tuple = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.05,
    decay_norm_and_bias: bool = False,
) -> torch.optim.AdamW:
    groups = param_groups(model, weight_decay, decay_norm_and_bias)
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps, **_fast_kwargs(groups))


def _warmup(step: int, warmup_steps: int) -> float:
    return (step + 1) / warmup_steps if step < warmup_steps else 1.0


def cosine(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    steps_per_epoch: int,
    warmup_epochs: float = 0.0,
    min_lr_ratio: float = 0.0,
) -> LambdaLR:
    """Linear warmup, then cosine decay to `min_lr_ratio` x the base learning rate at the last step."""
    warm = round(warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warm:
            return _warmup(step, warm)
        progress = min(1.0, (step - warm) / max(1, total_steps - warm))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def multistep(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    steps_per_epoch: int,
    milestones: Iterable[float] = (100, 150),
    gamma: float = 0.1,
    warmup_epochs: float = 0.0,
) -> LambdaLR:
    """Linear warmup, then the rate times `gamma` at each milestone epoch."""
    warm = round(warmup_epochs * steps_per_epoch)
    bounds = sorted(round(m * steps_per_epoch) for m in milestones)

    def factor(step: int) -> float:
        return _warmup(step, warm) * gamma ** sum(step >= b for b in bounds)

    return LambdaLR(optimizer, factor)


def constant(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    steps_per_epoch: int,
    warmup_epochs: float = 0.0,
) -> LambdaLR:
    warm = round(warmup_epochs * steps_per_epoch)
    return LambdaLR(optimizer, lambda step: _warmup(step, warm))
