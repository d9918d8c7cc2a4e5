"""How a batch is mixed: each sample's partner (the pairing), and Mixup, CutMix and Manifold Mixup at a
given lambda (and the one other change a strategy makes to a batch's images: the blur of a deficit).
Training (the Mixup strategies) and the diagnostics both mix through these functions,
so a measurement mixes exactly as training does.

Pairings (`mix.pairing`):

- `permutation`: sample i is mixed with sample perm(i), a fresh random permutation per step (the
  original Mixup implementation, Zhang et al. 2018). Each pair appears once.
- `flip`: sample i is mixed with sample B-1-i (timm's batch mode). Every pair appears twice, once at
  lambda and once at 1 - lambda. In the paper's model (a linear layer with a sigmoid, at
  initialization) the x_i + x_j parts of the two mirrored samples cancel exactly, so the Mixup
  gradient is only a reweighting of the clean per-pair gradients: the interference the paper
  describes cannot appear. Kept because it is what timm (and so the DeiT recipes) trains with.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

PAIRINGS = ("permutation", "flip")


def check_pairing(pairing: str, key: str = "mix.pairing") -> None:
    if pairing not in PAIRINGS:
        raise ValueError(f"{key} must be one of {list(PAIRINGS)}, got {pairing!r}.")


def partners(batch_size: int, pairing: str, device: torch.device, generator: torch.Generator | None = None) -> Tensor:
    """The index of each sample's partner. `permutation` draws from `generator` (a CPU generator, then
    moved) or, without one, from torch's default generator of `device` (no host sync; seeded by the
    run and saved in its checkpoints)."""
    if pairing == "flip":
        return torch.arange(batch_size - 1, -1, -1, device=device)
    if generator is None:
        return torch.randperm(batch_size, device=device)
    return torch.randperm(batch_size, generator=generator).to(device)


def draw_lambda(
    mixup_alpha: float, cutmix_alpha: float, prob: float = 1.0, switch_prob: float = 0.5
) -> tuple[float, bool]:
    """(lambda, use_cutmix) for one batch from numpy's global generator, drawn in timm's order (its
    batch mode), so `flip` pairing reproduces timm's Mixup bitwise. lambda 1 means: do not mix."""
    if np.random.rand() >= prob:
        return 1.0, False
    if mixup_alpha > 0 and cutmix_alpha > 0:
        use_cutmix = bool(np.random.rand() < switch_prob)
        alpha = cutmix_alpha if use_cutmix else mixup_alpha
        return float(np.random.beta(alpha, alpha)), use_cutmix
    if mixup_alpha > 0:
        return float(np.random.beta(mixup_alpha, mixup_alpha)), False
    return float(np.random.beta(cutmix_alpha, cutmix_alpha)), True


def mix_inputs(x: Tensor, partner: Tensor, lam: float) -> Tensor:
    """lam * x + (1 - lam) * x[partner], out of place (timm's arithmetic, in its order)."""
    return x.mul(lam).add_(x[partner].mul_(1.0 - lam))


def cutmix_inputs(x: Tensor, partner: Tensor, box: tuple[int, int, int, int]) -> Tensor:
    """x with the box (top, bottom, left, right) of the last two dimensions taken from the partner."""
    top, bottom, left, right = box
    out = x.clone()
    out[..., top:bottom, left:right] = x[partner][..., top:bottom, left:right]
    return out


def centred_box(shape: tuple[int, ...], lam: float) -> tuple[tuple[int, int, int, int], float]:
    """A CutMix box of area about 1 - lam in the middle of the image, and the lambda its pixel area
    gives (timm corrects lambda the same way). Training places the box at random; a measurement
    centres it, so its position adds no noise."""
    height, width = shape[-2], shape[-1]
    cut = float(np.sqrt(1.0 - lam))
    h, w = int(round(height * cut)), int(round(width * cut))
    top, left = (height - h) // 2, (width - w) // 2
    return (top, top + h, left, left + w), 1.0 - h * w / float(height * width)


def one_hot(y: Tensor, num_classes: int, on_value: float = 1.0, off_value: float = 0.0) -> Tensor:
    """Rows of `off_value` with `on_value` at each label (timm's `one_hot`, bitwise; ours, because
    importing timm loads its whole model zoo and torch._dynamo: about 2 s per process)."""
    labels = y.long().view(-1, 1)  # a sequence's tokens are rows too
    return torch.full((len(labels), num_classes), off_value, device=y.device).scatter_(1, labels, on_value)


def mixed_targets(
    y: Tensor, partner: Tensor | None, lam: float, num_classes: int, label_smoothing: float = 0.0
) -> Tensor:
    """Soft targets lam * onehot(y) + (1 - lam) * onehot(y[partner]), label-smoothed as timm's
    `mixup_target` smooths them (partner None: the clean targets)."""
    off = label_smoothing / num_classes
    y1 = one_hot(y, num_classes, on_value=1.0 - label_smoothing + off, off_value=off)
    if partner is None:
        return y1
    return y1 * lam + y1[partner] * (1.0 - lam)


def manifold_forward(model: nn.Module, x: Tensor, partner: Tensor, lam: float, layer: int) -> Tensor:
    """Manifold Mixup (Verma et al. 2019): the hidden states at `layer` (0: the input, i: the output of
    stage i) mixed with their partners', through a model with `stem`, `stages` and `forward_head`."""
    mix = lambda h: h.mul(lam).add_(h[partner], alpha=1.0 - lam)  # noqa: E731
    h = model.stem(mix(x) if layer == 0 else x)
    for i, stage in enumerate(model.stages, start=1):
        h = stage(h)
        if i == layer:
            h = mix(h)
    return model.forward_head(h)


def check_manifold(model: nn.Module | None) -> None:
    if not (hasattr(model, "stem") and hasattr(model, "stages")):
        raise ValueError(
            f"mix.kind=manifold mixes hidden states between stages, but {type(model).__name__} has no "
            f"stem/stages: use resnet18, preactresnet18, preactresnet50, cnn or mlp, or mix.kind=input."
        )


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Images [B, C, H, W] blurred by a Gaussian of `sigma` pixels: torchvision's separable kernel,
    reflected at the borders, of radius 3 sigma (at most the image's size less one, as reflection
    needs). Linear with weights summing to 1, so blurring normalized images is blurring the images,
    then normalizing."""
    from torchvision.transforms.v2.functional import gaussian_blur as blur  # imported only where a deficit blurs

    radius = max(1, min(math.ceil(3 * sigma), x.shape[-1] - 1, x.shape[-2] - 1))
    return blur(x, [2 * radius + 1] * 2, [sigma, sigma])
