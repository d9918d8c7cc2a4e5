"""The strategy interface: what data each step sees, and which samples count in the loss.

The training loop asks its strategy two things every step and nothing else:

    x, target = strategy.prepare(x, y, in_enp)     # transform the batch (e.g. Mixup); never in place
    logits = strategy.forward(model, x)            # usually model(x); Manifold Mixup mixes inside
    loss = strategy.reduce(per_sample_loss, in_enp)  # weight or drop samples (e.g. High-Loss Removal)

`in_enp` comes from the phase detector. Targets are always soft (probability vectors from timm's
`mixup_target`, with label smoothing), so every strategy uses the same per-sample loss.
A new strategy is one file: subclass `Strategy` (or `MixupStrategy`) and override what differs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.data.mixup import mixup_target
from torch import Tensor, nn


def soft_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Per-sample cross-entropy against soft targets; its batch mean is timm's SoftTargetCrossEntropy.

    Kept per sample (timm's module only returns the mean) so strategies can drop or weight samples.
    For sequence outputs (logits [B, T, V], targets [B * T, V] as timm's `mixup_target` makes them
    from labels [B, T]) a sample is a sequence: its loss is the mean over its T positions.
    """
    losses = torch.sum(-target.view(logits.shape) * F.log_softmax(logits.float(), dim=-1), dim=-1)
    return losses.flatten(1).mean(1) if losses.ndim > 1 else losses


class Strategy:
    """The base strategy: no mixing, every sample counts (the `vanilla` strategy as it is)."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}.")
        self.label_smoothing = label_smoothing
        self.num_classes = 0

    def check(self, batch_size: int) -> None:
        """Raise ValueError for a setting this strategy cannot train with (called before any work)."""

    def setup(self, num_classes: int, model: nn.Module | None = None) -> None:
        """Called once the data and the model are known."""
        self.num_classes = num_classes

    def alpha(self, in_enp: bool) -> float:
        """Mixup alpha in use for a step (0: no mixing). Python value: reading it costs no sync."""
        return 0.0

    def mixing(self, in_enp: bool) -> bool:
        """Whether a step mixes its batch."""
        return False

    def prepare(self, x: Tensor, y: Tensor, in_enp: bool) -> tuple[Tensor, Tensor]:
        return x, mixup_target(y, self.num_classes, 1.0, self.label_smoothing)

    def forward(self, model: nn.Module, x: Tensor) -> Tensor:
        return model(x)

    def reduce(self, losses: Tensor, in_enp: bool) -> Tensor:
        return losses.mean()

    def epoch_stats(self) -> dict:
        """Counters for this epoch's metrics row (reset on reading)."""
        return {"dropped": 0}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
