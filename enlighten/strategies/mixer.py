"""The mixer: how a strategy mixes a batch at the alpha its schedule chose. Input Mixup, CutMix (when
`cutmix_alpha` > 0) or Manifold Mixup (Verma et al. 2019: hidden states after a randomly chosen
stage); how pairs are formed and mixed lives in `enlighten.strategies.mixing`, shared with the
diagnostics, so a measurement mixes exactly as training does."""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np
from torch import Tensor, nn

from enlighten.strategies.mixing import (
    check_manifold,
    check_pairing,
    cutmix_inputs,
    draw_lambda,
    mix_inputs,
    mixed_targets,
    partners,
)


class Mixed(NamedTuple):
    """A batch as the mixer left it: inputs, soft targets, whether it was mixed, and for Manifold Mixup
    the (lambda, layer, partners) to mix the hidden states with in the forward pass."""

    x: Tensor
    target: Tensor
    mixed: bool
    manifold: Optional[tuple[float, int, Tensor]] = None


class Mixer:
    """Lambda (and whether a batch uses CutMix) is drawn from numpy's global generator (seeded by the
    run) in timm's order; each sample's partner follows `pairing` (`permutation`: a fresh random
    permutation per step from torch's generator; `flip`: the reversed batch, which with `mode=batch`
    reproduces timm's Mixup bitwise). timm's per-pair and per-sample modes (`pair`, `elem`) run
    through timm itself and pair by flipping only. `flip` needs an even batch size.

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
        if kind not in ("input", "manifold"):
            raise ValueError(f"mix.kind must be input or manifold, got {kind!r}.")
        check_pairing(pairing)
        if alpha < 0 or cutmix_alpha < 0:
            raise ValueError(f"Mixup alphas must be >= 0, got alpha={alpha}, cutmix_alpha={cutmix_alpha}.")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}.")
        self.alpha, self.cutmix_alpha, self.label_smoothing = alpha, cutmix_alpha, label_smoothing
        self.mode, self.prob, self.switch_prob = mode, prob, switch_prob
        self.kind, self.pairing = kind, pairing
        self.num_classes = 0
        self.timm_mixer = None  # timm's Mixup, for mode=pair|elem only

    def mixes(self, alpha: float) -> bool:
        """Whether a step planned at `alpha` mixes (CutMix mixes at any Mixup alpha, on inputs)."""
        return alpha > 0 or (self.kind == "input" and self.cutmix_alpha > 0)

    def check(self, batch_size: int) -> None:
        """Settings only mixing needs (the strategy calls this when it can mix at all)."""
        if self.pairing != "flip" and self.mode != "batch":
            raise ValueError(
                f"mix.mode={self.mode} mixes each pair with its own lambda through timm, which pairs sample i with "
                f"B-1-i only: use mix.pairing=flip with it, or mix.mode=batch with mix.pairing={self.pairing}."
            )
        if batch_size % 2 and self.pairing == "flip":
            raise ValueError(
                f"trainer.batch_size={batch_size} is odd, but mix.pairing=flip mixes sample i with sample B-1-i and "
                f"needs an even batch size: use {batch_size + 1} or {batch_size - 1}, or mix.pairing=permutation."
            )

    def setup(self, num_classes: int, model: nn.Module | None, mixes: bool = True) -> None:
        """`mixes`: whether the strategy can mix at all (if not, nothing to check or prepare)."""
        self.num_classes = num_classes
        if not mixes:
            return
        if self.kind == "manifold":
            check_manifold(model)
            self._num_mix_layers = len(model.stages)
        if self.mode != "batch":
            from timm.data.mixup import Mixup  # imported when used: timm takes about 2 s to import

            self.timm_mixer = Mixup(
                mixup_alpha=self.alpha,
                # timm refuses mixup_alpha = cutmix_alpha = 0 at construction; mixing is toggled per step.
                cutmix_alpha=self.cutmix_alpha if (self.alpha or self.cutmix_alpha) else 1.0,
                label_smoothing=self.label_smoothing,  # timm's default is 0.1: always set from mix.*
                num_classes=num_classes,  # timm's default is 1000
                prob=self.prob,
                switch_prob=self.switch_prob,
                mode=self.mode,
            )
            self.timm_mixer.cutmix_alpha = self.cutmix_alpha

    def clean_targets(self, y: Tensor) -> Tensor:
        return mixed_targets(y, None, 1.0, self.num_classes, self.label_smoothing)

    def mix(self, x: Tensor, y: Tensor, alpha: float) -> Mixed:
        """The batch mixed at `alpha`, out of place; Manifold Mixup leaves the inputs and says how to mix
        in the forward pass (`forward`). With `prob` < 1 a batch may come out clean (lambda 1). timm's
        per-pair and per-sample modes count as mixed: which of their samples were is timm's to know."""
        if self.kind == "manifold":
            lam = float(np.random.beta(alpha, alpha))
            layer = int(np.random.randint(0, self._num_mix_layers))
            partner = partners(len(x), self.pairing, x.device)
            target = mixed_targets(y, partner, lam, self.num_classes, self.label_smoothing)
            return Mixed(x, target, True, (lam, layer, partner))
        if self.timm_mixer is not None:  # timm mixes in place, so it gets a copy
            self.timm_mixer.mixup_alpha = alpha
            return Mixed(*self.timm_mixer(x.clone(), y), True)
        lam, use_cutmix = draw_lambda(alpha, self.cutmix_alpha, self.prob, self.switch_prob)
        if lam == 1.0:
            return Mixed(x, self.clean_targets(y), False)
        partner = partners(len(x), self.pairing, x.device)
        if use_cutmix:
            from timm.data.mixup import cutmix_bbox_and_lam  # imported when used (about 2 s)

            box, lam = cutmix_bbox_and_lam(x.shape, lam, correct_lam=True)
            x = cutmix_inputs(x, partner, box)  # an empty box (lambda corrected to 1) leaves it clean
        else:
            x = mix_inputs(x, partner, lam)
        return Mixed(x, mixed_targets(y, partner, lam, self.num_classes, self.label_smoothing), bool(lam < 1.0))
