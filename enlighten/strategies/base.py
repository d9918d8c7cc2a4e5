"""The strategy contract: what data each step sees, and which samples count in the loss.

A strategy is three parts, each a small object of its own module:

- a **mixer** (`enlighten.strategies.mixer`): how a batch is mixed at a given alpha (input Mixup,
  CutMix, Manifold Mixup; the pairing);
- a **sample weighting** (`enlighten.strategies.weighting`): how per-sample losses become the loss
  (the mean; or drop the highest, lowest or a random share);
- a **schedule** (`enlighten.strategies.schedules`, or a file of its own): from the phase record of
  the step, the `Plan`: mix or not, at which alpha, and whether the weighting applies.

The loop asks the strategy for each step's batch, which carries everything the step needs (the
strategy itself keeps no state between steps):

    batch = strategy.prepare(x, y, phase)         # the schedule's plan for `phase`; never in place
    logits = batch.forward(model, batch.x)        # model(x); Manifold Mixup mixes inside
    loss = batch.reduce(per_sample_loss)          # the weighting, if the plan applies it
    batch.report()                                # what the step did: alpha, mixed, samples dropped

`phase` (`enlighten.phase.base.Phase`) is immutable: a strategy may read where training stands
(step, epoch, the run's length, in the ENP, where the ENP ended) and may touch nothing else: not the
model's weights, the optimizer, the detector or the data order. A schedule is a pure function of the
phase, so what the diagnostics measure at a step is what that step trained with.

A new strategy is one schedule class and one YAML file (see the README's worked example). Targets are
always soft (probability vectors, label-smoothed as timm's `mixup_target` does), so every strategy
uses the same per-sample loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from enlighten.phase.base import Phase
from enlighten.strategies.mixer import Mixed, Mixer
from enlighten.strategies.mixing import gaussian_blur, manifold_forward
from enlighten.strategies.weighting import Mean


def soft_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Per-sample cross-entropy against soft targets; its batch mean is timm's SoftTargetCrossEntropy.

    Kept per sample (timm's module only returns the mean) so strategies can drop or weight samples.
    For sequence outputs (logits [B, T, V], targets [B * T, V] as timm's `mixup_target` makes them
    from labels [B, T]) a sample is a sequence: its loss is the mean over its T positions.
    """
    losses = torch.sum(-target.view(logits.shape) * F.log_softmax(logits.float(), dim=-1), dim=-1)
    return losses.flatten(1).mean(1) if losses.ndim > 1 else losses


@dataclass(frozen=True)
class Plan:
    """What one step does. `alpha`: the Mixup alpha to mix at, or None for no mixing at all (a mixer
    with `cutmix_alpha` > 0 also mixes at alpha 0, by CutMix). `weigh`: whether the sample weighting
    applies (otherwise every sample counts). The regularization of the step, which the loop applies:
    `weight_decay_scale` multiplies the optimizer's weight decay (optim.weight_decay); `augment` false trains
    on the un-augmented images (no crop, no flip: the data's draws are made all the same, so a schedule
    changes nothing else); `blur` > 0 blurs the step's images (Gaussian, that many pixels: a deficit)."""

    alpha: Optional[float] = None
    weigh: bool = True
    weight_decay_scale: float = 1.0
    augment: bool = True
    blur: float = 0.0


@dataclass(frozen=True)
class StepReport:
    """What a step did, for the epoch's metrics: the alpha its plan mixed at (0: none), whether its batch
    was mixed (with `mix.prob` < 1 a batch may come out clean, as in timm), and the samples left out
    of its loss (a Python int: no device sync)."""

    alpha: float = 0.0
    mixed: bool = False
    dropped: int = 0


@dataclass
class Batch:
    """One step's batch as the strategy prepared it: the inputs `x` and soft targets `target`, how to
    forward them (Manifold Mixup mixes hidden states inside), how per-sample losses become the loss,
    and, once reduced, what the step did."""

    x: Tensor
    target: Tensor
    plan: Plan
    mixed: bool
    weighting: Mean
    manifold: Optional[tuple[float, int, Tensor]] = None  # (lambda, layer, partners) to mix hidden states
    dropped: int = 0  # samples left out of the loss, set by `reduce`

    def forward(self, model: nn.Module, x: Tensor) -> Tensor:
        """The logits of `x` (this batch's inputs, perhaps in the model's memory layout)."""
        if self.manifold is None:
            return model(x)
        lam, layer, partner = self.manifold
        return manifold_forward(model, x, partner, lam, layer)

    def reduce(self, losses: Tensor) -> Tensor:
        if not self.plan.weigh:
            return losses.mean()
        loss, self.dropped = self.weighting.reduce(losses)
        return loss

    def report(self) -> StepReport:
        return StepReport(alpha=self.plan.alpha or 0.0, mixed=self.mixed, dropped=self.dropped)


class Schedule:
    """When to mix, at which alpha, and when the weighting applies, as a function of the phase. This
    base class mixes at `alpha` on every step and always applies the weighting. Subclasses override
    `plan`, and `alphas` when they mix at other values than `alpha`; a schedule that turns augmentation
    off sets `schedules_augmentation` (the loop then asks the plan before each batch is cut)."""

    schedules_augmentation = False

    def plan(self, phase: Phase, alpha: float) -> Plan:
        """The plan of the step trained under `phase`; `alpha` is the mixer's (`strategy.mixer.alpha`:
        `mix.alpha`, or 0 in the removal presets)."""
        return Plan(alpha=alpha)

    def alphas(self, alpha: float) -> tuple[float, ...]:
        """Every alpha this schedule may mix at (empty: it never mixes); checked before training."""
        return (alpha,)

    def check_input(self, input_shape: tuple) -> None:
        """Raise ValueError for inputs this schedule cannot train on (a sample's shape), before any step."""


class Strategy:
    """A mixer, a sample weighting and a schedule (see the module's docstring)."""

    def __init__(self, mixer: Mixer, weighting: Mean, schedule: Schedule) -> None:
        self.mixer, self.weighting, self.schedule = mixer, weighting, schedule

    def may_mix(self) -> bool:
        """Whether any step of the run can mix (a data or batch-size rule that only mixing needs)."""
        return any(self.mixer.mixes(a) for a in self.schedule.alphas(self.mixer.alpha))

    def uses_the_enp(self) -> bool:
        """Whether the first step's plan differs in the ENP and after it (with a detector that has no
        ENP, such a strategy trains as it would after the ENP from the first step)."""
        first = {"step": 0, "epoch": 0, "steps_per_epoch": 1, "total_steps": 1}
        return self._effect(Phase(**first, in_enp=True)) != self._effect(Phase(**first, in_enp=False))

    def _effect(self, phase: Phase) -> tuple:
        """What a plan does: the alpha it mixes at (None: no mixing), whether samples are dropped, and
        its regularization."""
        plan = self.plan(phase)
        mixes = plan.alpha is not None and self.mixer.mixes(plan.alpha)
        return (
            plan.alpha if mixes else None,
            plan.weigh and self.weighting.drops,
            plan.weight_decay_scale,
            plan.augment,
            plan.blur,
        )

    def check(self, batch_size: int) -> None:
        """Raise ValueError for a setting this strategy cannot train with (called before any work). The
        mixer's settings are checked only when the strategy can mix: vanilla accepts any `mix.*`."""
        if self.may_mix():
            self.mixer.check(batch_size)
        self.weighting.check(batch_size)

    def setup(self, num_classes: int, model: nn.Module | None = None, input_shape: tuple | None = None) -> None:
        """Called once the data and the model are known (`input_shape`: a sample's, [C, H, W] for images)."""
        self.mixer.setup(num_classes, model, mixes=self.may_mix())
        if input_shape is not None:
            self.schedule.check_input(tuple(input_shape))

    def plan(self, phase: Phase) -> Plan:
        return self.schedule.plan(phase, self.mixer.alpha)

    def prepare(self, x: Tensor, y: Tensor, phase: Phase) -> Batch:
        """The batch of the step trained under `phase`: mixed as its plan says (never in place)."""
        plan = self.plan(phase)
        if not plan.augment and not self.schedule.schedules_augmentation:
            raise ValueError(
                f"{type(self.schedule).__name__} planned a step without augmentation but does not set "
                f"`schedules_augmentation = True`, so the loop cut the batch augmented: set it on the class."
            )
        if plan.blur > 0:
            x = gaussian_blur(x, plan.blur)
        if plan.alpha is None or not self.mixer.mixes(plan.alpha):
            mixed = Mixed(x, self.mixer.clean_targets(y), False)
        else:
            mixed = self.mixer.mix(x, y, plan.alpha)
        return Batch(mixed.x, mixed.target, plan, mixed.mixed, self.weighting, mixed.manifold)
