"""Stiffness (Fort et al. 2019): the mean cosine between per-example gradients, within a class and
between classes: gradient interference seen pair by pair. Off by default (one backward per sample)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


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
