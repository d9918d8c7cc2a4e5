"""Mixup from the first step (the paper's baseline): input Mixup/CutMix or Manifold Mixup (Verma et
al. 2019), which mixes hidden states after a randomly chosen stage. How a batch is mixed (the
pairing, the arithmetic) lives in `enlighten.strategies.mixing`, shared with the diagnostics."""

from __future__ import annotations

import numpy as np
from timm.data.mixup import Mixup, cutmix_bbox_and_lam, mixup_target
from torch import Tensor, nn

from enlighten.strategies.base import Strategy
from enlighten.strategies.mixing import (
    check_manifold,
    check_pairing,
    cutmix_inputs,
    draw_lambda,
    manifold_forward,
    mix_inputs,
    mixed_targets,
    partners,
)


class MixupStrategy(Strategy):
    """Mixup (and CutMix when `cutmix_alpha` > 0) at `alpha` on every step.

    Subclasses change only the schedule: `active(in_enp)` (mix in this phase at all?) and
    `alpha(in_enp)`.
    Lambda (and whether a batch uses CutMix) is drawn from numpy's global generator (seeded by the
    run) in timm's order; each sample's partner follows `pairing` (`permutation`: a fresh random
    permutation per step from torch's generator; `flip`: the reversed batch, which with
    `mode=batch` reproduces timm's Mixup bitwise). timm's per-pair and per-sample modes (`pair`,
    `elem`) run through timm itself and pair by flipping only. `flip` needs an even batch size.

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
        pairing: str = "permutation",
    ) -> None:
        super().__init__(label_smoothing)
        if kind not in ("input", "manifold"):
            raise ValueError(f"mix.kind must be input or manifold, got {kind!r}.")
        check_pairing(pairing)
        if pairing != "flip" and mode != "batch":
            raise ValueError(
                f"mix.mode={mode} mixes each pair with its own lambda through timm, which pairs sample i with "
                f"B-1-i only: use mix.pairing=flip with it, or mix.mode=batch with mix.pairing={pairing}."
            )
        self.kind, self.pairing = kind, pairing
        self._manifold_mix: tuple[float, int, Tensor] | None = None
        if alpha < 0 or cutmix_alpha < 0:
            raise ValueError(f"Mixup alphas must be >= 0, got alpha={alpha}, cutmix_alpha={cutmix_alpha}.")
        self.base_alpha = alpha
        self.cutmix_alpha = cutmix_alpha
        self.mode, self.prob, self.switch_prob = mode, prob, switch_prob
        self.mixer: Mixup | None = None  # timm's, for mode=pair|elem only

    def setup(self, num_classes: int, model: nn.Module | None = None) -> None:
        super().setup(num_classes, model)
        if self.kind == "manifold":
            check_manifold(model)
        if self.mode != "batch":
            self.mixer = Mixup(
                mixup_alpha=self.base_alpha,
                # timm refuses mixup_alpha = cutmix_alpha = 0 at construction; mixing is toggled per step.
                cutmix_alpha=self.cutmix_alpha if (self.base_alpha or self.cutmix_alpha) else 1.0,
                label_smoothing=self.label_smoothing,  # timm's default is 0.1: always set from mix.*
                num_classes=num_classes,  # timm's default is 1000
                prob=self.prob, switch_prob=self.switch_prob, mode=self.mode,
            )
            self.mixer.cutmix_alpha = self.cutmix_alpha
        self._num_mix_layers = len(model.stages) if self.kind == "manifold" else 0

    def check(self, batch_size: int) -> None:
        if not (self.mixing(True) or self.mixing(False)):
            return  # never mixes (e.g. High-Loss Removal without Mixup): any batch size will do
        if batch_size % 2 and self.pairing == "flip":
            raise ValueError(
                f"trainer.batch_size={batch_size} is odd, but mix.pairing=flip mixes sample i with sample B-1-i and "
                f"needs an even batch size: use {batch_size + 1} or {batch_size - 1}, or mix.pairing=permutation."
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
        alpha = self.alpha(in_enp)
        if self.kind == "manifold":
            lam = float(np.random.beta(alpha, alpha))
            layer = int(np.random.randint(0, self._num_mix_layers))
            partner = partners(len(x), self.pairing, x.device)
            self._manifold_mix = (lam, layer, partner)
            return x, mixed_targets(y, partner, lam, self.num_classes, self.label_smoothing)
        if self.mixer is not None:  # timm's pair/elem modes; timm mixes in place, so it gets a copy
            self.mixer.mixup_alpha = alpha
            return self.mixer(x.clone(), y)
        lam, use_cutmix = draw_lambda(alpha, self.cutmix_alpha, self.prob, self.switch_prob)
        if lam == 1.0:
            return x, mixup_target(y, self.num_classes, 1.0, self.label_smoothing)
        partner = partners(len(x), self.pairing, x.device)
        if use_cutmix:
            box, lam = cutmix_bbox_and_lam(x.shape, lam, correct_lam=True)
            x = cutmix_inputs(x, partner, box)
        else:
            x = mix_inputs(x, partner, lam)
        return x, mixed_targets(y, partner, lam, self.num_classes, self.label_smoothing)

    def forward(self, model: nn.Module, x: Tensor) -> Tensor:
        if self._manifold_mix is None:
            return model(x)
        lam, layer, partner = self._manifold_mix
        self._manifold_mix = None
        return manifold_forward(model, x, partner, lam, layer)
