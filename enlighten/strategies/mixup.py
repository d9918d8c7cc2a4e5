"""Mixup from the first step (the paper's baseline), through timm's Mixup/CutMix."""

from __future__ import annotations

from timm.data.mixup import Mixup
from torch import Tensor

from enlighten.strategies.base import Strategy


class MixupStrategy(Strategy):
    """timm's Mixup (and CutMix when `cutmix_alpha` > 0) at `alpha` on every step.

    Subclasses change only `alpha(in_enp)`, the schedule; 0 switches mixing off for that step.
    timm's Mixup draws lambda from numpy's global generator (seeded by the run), mixes in place
    with the reversed batch, and needs an even batch size.
    """

    def __init__(
        self,
        alpha: float = 1.0,
        cutmix_alpha: float = 0.0,
        label_smoothing: float = 0.0,
        mode: str = "batch",
        prob: float = 1.0,
        switch_prob: float = 0.5,
    ) -> None:
        super().__init__(label_smoothing)
        if alpha < 0 or cutmix_alpha < 0:
            raise ValueError(f"Mixup alphas must be >= 0, got alpha={alpha}, cutmix_alpha={cutmix_alpha}.")
        self.base_alpha = alpha
        self.cutmix_alpha = cutmix_alpha
        self.mix_kwargs = dict(prob=prob, switch_prob=switch_prob, mode=mode)
        self.mixer: Mixup | None = None

    def setup(self, num_classes: int) -> None:
        super().setup(num_classes)
        self.mixer = Mixup(
            mixup_alpha=self.base_alpha,
            # timm refuses mixup_alpha = cutmix_alpha = 0 at construction; mixing is toggled per step.
            cutmix_alpha=self.cutmix_alpha if (self.base_alpha or self.cutmix_alpha) else 1.0,
            label_smoothing=self.label_smoothing,  # timm's default is 0.1: always set from mix.*
            num_classes=num_classes,  # timm's default is 1000
            **self.mix_kwargs,
        )
        self.mixer.cutmix_alpha = self.cutmix_alpha

    def check(self, batch_size: int) -> None:
        if batch_size % 2:
            raise ValueError(
                f"trainer.batch_size={batch_size} is odd, but Mixup pairs each sample with the reversed "
                f"batch and needs an even batch size: use {batch_size + 1} or {batch_size - 1}."
            )

    def alpha(self, in_enp: bool) -> float:
        return self.base_alpha

    def mixing(self, in_enp: bool) -> bool:
        return self.alpha(in_enp) > 0 or self.cutmix_alpha > 0

    def prepare(self, x: Tensor, y: Tensor, in_enp: bool) -> tuple[Tensor, Tensor]:
        if not self.mixing(in_enp):
            return super().prepare(x, y, in_enp)
        self.mixer.mixup_alpha = self.alpha(in_enp)
        return self.mixer(x, y)
