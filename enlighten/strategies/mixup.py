"""Mixup from the first step (the paper's baseline): input Mixup/CutMix through timm's Mixup, or
Manifold Mixup (Verma et al. 2019), which mixes hidden states after a randomly chosen stage."""

from __future__ import annotations

import numpy as np
from timm.data.mixup import Mixup, mixup_target
from torch import Tensor, nn

from enlighten.strategies.base import Strategy


class MixupStrategy(Strategy):
    """timm's Mixup (and CutMix when `cutmix_alpha` > 0) at `alpha` on every step.

    Subclasses change only the schedule: `active(in_enp)` (mix in this phase at all?) and
    `alpha(in_enp)`.
    timm's Mixup draws lambda from numpy's global generator (seeded by the run), pairs each sample
    with the reversed batch, and needs an even batch size; it mixes in place, so we hand it a copy
    (the loop keeps the clean batch for the phase detector).

    `kind="manifold"` draws lambda the same way and a layer uniformly from the input and the outputs
    of every stage but the last (models with `stem` and `stages`: resnet18, preactresnet18,
    preactresnet50, cnn, mlp), and mixes there. CutMix does not apply to hidden states.
    """

    def __init__(
        self,
        alpha: float = 1.0,
        cutmix_alpha: float = 0.0,
        label_smoothing: float = 0.0,
        mode: str = "batch",
        prob: float = 1.0,
        switch_prob: float = 0.5,
        kind: str = "input",
    ) -> None:
        super().__init__(label_smoothing)
        if kind not in ("input", "manifold"):
            raise ValueError(f"mix.kind must be input or manifold, got {kind!r}.")
        self.kind = kind
        self._manifold_mix: tuple[float, int] | None = None
        if alpha < 0 or cutmix_alpha < 0:
            raise ValueError(f"Mixup alphas must be >= 0, got alpha={alpha}, cutmix_alpha={cutmix_alpha}.")
        self.base_alpha = alpha
        self.cutmix_alpha = cutmix_alpha
        self.mix_kwargs = dict(prob=prob, switch_prob=switch_prob, mode=mode)
        self.mixer: Mixup | None = None

    def setup(self, num_classes: int, model: nn.Module | None = None) -> None:
        super().setup(num_classes, model)
        if self.kind == "manifold" and not (hasattr(model, "stem") and hasattr(model, "stages")):
            raise ValueError(
                f"mix.kind=manifold mixes hidden states between stages, but {type(model).__name__} has no "
                f"stem/stages: use resnet18, preactresnet18, preactresnet50, cnn or mlp, or mix.kind=input."
            )
        self.mixer = Mixup(
            mixup_alpha=self.base_alpha,
            # timm refuses mixup_alpha = cutmix_alpha = 0 at construction; mixing is toggled per step.
            cutmix_alpha=self.cutmix_alpha if (self.base_alpha or self.cutmix_alpha) else 1.0,
            label_smoothing=self.label_smoothing,  # timm's default is 0.1: always set from mix.*
            num_classes=num_classes,  # timm's default is 1000
            **self.mix_kwargs,
        )
        self.mixer.cutmix_alpha = self.cutmix_alpha
        self._num_mix_layers = len(model.stages) if self.kind == "manifold" else 0

    def check(self, batch_size: int) -> None:
        if not (self.mixing(True) or self.mixing(False)):
            return  # never mixes (e.g. High-Loss Removal without Mixup): any batch size will do
        if batch_size % 2:
            raise ValueError(
                f"trainer.batch_size={batch_size} is odd, but Mixup pairs each sample with the reversed "
                f"batch and needs an even batch size: use {batch_size + 1} or {batch_size - 1}."
            )

    def active(self, in_enp: bool) -> bool:
        """Whether this phase of training mixes at all (schedules override this)."""
        return True

    def alpha(self, in_enp: bool) -> float:
        return self.base_alpha if self.active(in_enp) else 0.0

    def mixing(self, in_enp: bool) -> bool:
        cutmix = self.kind == "input" and self.cutmix_alpha > 0
        return self.active(in_enp) and (self.alpha(in_enp) > 0 or cutmix)

    def prepare(self, x: Tensor, y: Tensor, in_enp: bool) -> tuple[Tensor, Tensor]:
        if not self.mixing(in_enp):
            return super().prepare(x, y, in_enp)
        if self.kind == "input":
            self.mixer.mixup_alpha = self.alpha(in_enp)
            return self.mixer(x.clone(), y)
        alpha = self.alpha(in_enp)
        lam = float(np.random.beta(alpha, alpha))
        self._manifold_mix = (lam, int(np.random.randint(0, self._num_mix_layers)))
        return x, mixup_target(y, self.num_classes, lam, self.label_smoothing)

    def forward(self, model: nn.Module, x: Tensor) -> Tensor:
        if self._manifold_mix is None:
            return model(x)
        lam, layer = self._manifold_mix
        self._manifold_mix = None
        mix = lambda h: h.mul(lam).add_(h.flip(0), alpha=1.0 - lam)  # noqa: E731 - Mixup with the reversed batch
        h = model.stem(mix(x) if layer == 0 else x)
        for i, stage in enumerate(model.stages, start=1):
            h = stage(h)
            if i == layer:
                h = mix(h)
        return model.forward_head(h)
