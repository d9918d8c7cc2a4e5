"""The measures behind the paper's two effects, as plain functions of a model and a batch.

- Gradient interference: the Mixup gradient's component orthogonal to the clean gradient.
- Activation revival: the share of zero (saturated) activations, and units dead on every sample.
- BENR: the noise of an epoch's path through parameter space (sum of step lengths / net change).
- ATD: how far the penultimate features of fixed inputs move between epochs.

Nothing here touches `.grad`, the optimizer, batch-norm running statistics or a random stream that
training uses: callers get numbers, training goes on as if nothing was measured.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from typing import Iterator

import torch
import torch.nn.functional as F
from timm.data.mixup import mixup_target
from torch import Tensor, nn

from enlighten.strategies.base import soft_cross_entropy

# --------------------------------------------------------------------------------------------------
# Parameter groups
# --------------------------------------------------------------------------------------------------


def parameter_groups(model: nn.Module) -> dict[str, list[int]]:
    """Indices into `list(model.parameters())` per group: each top-level child, with containers of
    blocks (`stages`, `blocks`) split into their members (stem, stages.0, ..., head; for a timm ViT
    patch_embed, blocks.0, ..., norm, head). Parameters owned by the model itself form `embed`."""
    index = {id(p): i for i, p in enumerate(model.parameters())}
    groups: dict[str, list[int]] = defaultdict(list)
    for name, p in model.named_parameters(recurse=False):
        groups["embed"].append(index[id(p)])
    for name, child in model.named_children():
        members = list(child.named_children()) if isinstance(child, (nn.Sequential, nn.ModuleList)) and name in (
            "stages", "blocks", "layers") else [(None, child)]
        for sub, module in members:
            key = name if sub is None else f"{name}.{sub}"
            for p in module.parameters():
                groups[key].append(index[id(p)])
    return {k: v for k, v in groups.items() if v}


# --------------------------------------------------------------------------------------------------
# Gradient interference
# --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def preserved_buffers(model: nn.Module) -> Iterator[None]:
    """Restore every buffer (batch-norm running statistics, counters) on exit."""
    saved = [b.detach().clone() for b in model.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, s in zip(model.buffers(), saved):
                b.copy_(s)


def mix_batch(x: Tensor, y: Tensor, lam: float, num_classes: int, label_smoothing: float = 0.0) -> tuple[Tensor, Tensor]:
    """Input Mixup with the reversed batch (timm's pairing and targets) at a given lambda, out of place."""
    return lam * x + (1 - lam) * x.flip(0), mixup_target(y, num_classes, lam, label_smoothing)


def gradients(model: nn.Module, x: Tensor, target: Tensor) -> list[Tensor]:
    """d(mean loss)/d(params) for hard (long) or soft (float) targets, without touching `.grad`."""
    params = [p for p in model.parameters()]
    logits = model(x)
    if target.dtype == torch.long:
        loss = F.cross_entropy(logits.float(), target)
    else:
        loss = soft_cross_entropy(logits, target).mean()
    grads = torch.autograd.grad(loss, [p for p in params if p.requires_grad], allow_unused=True)
    it = iter(grads)
    return [(next(it) if p.requires_grad else None) for p in params]


def interference(g_mix: list[Tensor], g_clean: list[Tensor], groups: dict[str, list[int]]) -> dict[str, float]:
    """cos, |g_perp|/|g_clean|, |g_perp|/|g_mix| and |g_mix|/|g_clean|, overall and per group.

    g_perp = g_mix - (<g_mix, g_clean> / |g_clean|^2) g_clean, the part of the Mixup gradient that
    does not move along the clean gradient.
    """

    def stats(idx: list[int]) -> tuple[Tensor, Tensor, Tensor]:
        pairs = [(g_mix[i], g_clean[i]) for i in idx if g_mix[i] is not None and g_clean[i] is not None]
        dot = sum((a.double() * b.double()).sum() for a, b in pairs)
        mm = sum(a.double().pow(2).sum() for a, _ in pairs)
        cc = sum(b.double().pow(2).sum() for _, b in pairs)
        return torch.as_tensor(dot), torch.as_tensor(mm), torch.as_tensor(cc)

    out: dict[str, Tensor] = {}
    all_idx = list(range(len(g_mix)))
    for name, idx in [("", all_idx), *groups.items()]:
        dot, mm, cc = stats(idx)
        perp2 = (mm - dot * dot / cc.clamp_min(1e-300)).clamp_min(0.0)
        suffix = f"/{name}" if name else ""
        out[f"diag/cos{suffix}"] = dot / (mm.sqrt() * cc.sqrt()).clamp_min(1e-300)
        out[f"diag/r_perp_clean{suffix}"] = perp2.sqrt() / cc.sqrt().clamp_min(1e-300)
        out[f"diag/r_perp_mix{suffix}"] = perp2.sqrt() / mm.sqrt().clamp_min(1e-300)
        out[f"diag/norm_ratio{suffix}"] = mm.sqrt() / cc.sqrt().clamp_min(1e-300)
    values = torch.stack(list(out.values())).tolist()  # one sync for all
    return dict(zip(out.keys(), values))


def gradient_interference(
    model: nn.Module, x: Tensor, y: Tensor, lam: float, num_classes: int, label_smoothing: float = 0.0
) -> dict[str, float]:
    """Clean and Mixup gradients of one probe batch at the current parameters, compared.

    Runs in training mode (the gradients training would see) and restores batch-norm statistics.
    """
    was_training = model.training
    model.train()
    with preserved_buffers(model):
        g_clean = gradients(model, x, y)
        x_mix, t_mix = mix_batch(x, y, lam, num_classes, label_smoothing)
        g_mix = gradients(model, x_mix, t_mix)
    model.train(was_training)
    return interference(g_mix, g_clean, parameter_groups(model))


# --------------------------------------------------------------------------------------------------
# Activation revival
# --------------------------------------------------------------------------------------------------


class ActivationRecorder:
    """Forward hooks on every ReLU (zero outputs) and GELU (pre-activations <= 0).

    Per activation site (a module; a module called twice in one forward is two sites, `name` and
    `name.1`) it counts zero elements and, per unit (channel of a conv map, feature of a vector, last
    dimension of a token sequence), whether the unit was zero on every element it produced.
    """

    def __init__(self, model: nn.Module) -> None:
        self.handles = []
        self.zeros: dict[str, Tensor] = {}
        self.total: dict[str, int] = {}
        self.alive: dict[str, Tensor] = {}
        self._calls: dict[str, int] = {}
        for name, module in model.named_modules():
            if isinstance(module, nn.ReLU):
                self.handles.append(module.register_forward_hook(self._hook(name, pre=False)))
            elif isinstance(module, nn.GELU):
                self.handles.append(module.register_forward_hook(self._hook(name, pre=True)))

    def _hook(self, name: str, pre: bool):
        def hook(module, inputs, output):
            a = inputs[0] if pre else output
            zero = (a <= 0) if pre else (a == 0)
            k = self._calls.get(name, 0)
            self._calls[name] = k + 1
            site = name if k == 0 else f"{name}.{k}"
            unit_dim = 1 if a.ndim == 4 else a.ndim - 1  # conv maps: channels; vectors and tokens: last
            reduce = [d for d in range(a.ndim) if d != unit_dim]
            self.zeros[site] = self.zeros.get(site, 0) + zero.sum()
            self.total[site] = self.total.get(site, 0) + zero.numel()
            alive = (~zero).any(dim=reduce) if reduce else ~zero
            self.alive[site] = alive if site not in self.alive else self.alive[site] | alive

        return hook

    def new_forward(self) -> None:
        self._calls = {}

    def close(self) -> None:
        for h in self.handles:
            h.remove()


@torch.no_grad()
def activation_stats(model: nn.Module, batches: list[Tensor], prefix: str = "diag/zero_act") -> dict[str, float]:
    """Share of zero activations (overall and per site) and of dead units, in eval mode."""
    was_training = model.training
    model.eval()
    rec = ActivationRecorder(model)
    try:
        for x in batches:
            rec.new_forward()
            model(x)
    finally:
        rec.close()
        model.train(was_training)
    if not rec.total:
        return {}
    sites = list(rec.total)
    zeros = torch.stack([torch.as_tensor(rec.zeros[s], dtype=torch.float64) for s in sites]).cpu()
    dead = torch.stack([(~rec.alive[s]).sum().double() for s in sites]).cpu()
    units = [rec.alive[s].numel() for s in sites]
    totals = [rec.total[s] for s in sites]
    dead_name = prefix.replace("zero_act", "dead_units")
    out = {prefix: zeros.sum().item() / sum(totals), dead_name: dead.sum().item() / sum(units)}
    for s, z, t in zip(sites, zeros.tolist(), totals):
        out[f"{prefix}/{s}"] = z / t
    return out


# --------------------------------------------------------------------------------------------------
# Trajectories: BENR and ATD
# --------------------------------------------------------------------------------------------------


class BatchEpochNormRatio:
    """BENR = sum over an epoch's steps of |update| / |total change over the epoch|, streaming.

    Keeps two parameter copies (the previous step's and the epoch start's), no history; the step
    lengths accumulate on the device, read once per epoch.
    """

    def __init__(self, params: list[Tensor]) -> None:
        self.params = [p for p in params]
        self.prev = [p.detach().clone() for p in self.params]
        self.start = [p.detach().clone() for p in self.params]
        self.path = torch.zeros((), dtype=torch.float64, device=self.params[0].device)

    @torch.no_grad()
    def step(self) -> None:
        current = [p.detach() for p in self.params]
        diffs = torch._foreach_sub(current, self.prev)
        self.path += torch.linalg.vector_norm(torch.stack(torch._foreach_norm(diffs)).double())
        torch._foreach_copy_(self.prev, current)

    @torch.no_grad()
    def end_epoch(self) -> float | None:
        current = [p.detach() for p in self.params]
        net = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(torch._foreach_sub(current, self.start))).double())
        path = self.path.item()
        net = net.item()
        torch._foreach_copy_(self.start, current)
        self.path.zero_()
        return path / net if net > 0 else None


def penultimate_features(model: nn.Module, x: Tensor) -> Tensor:
    """Pooled penultimate-layer features (timm's `forward_head(..., pre_logits=True)`)."""
    return model.forward_head(model.forward_features(x), pre_logits=True)


def trajectory_distance(previous: Tensor, current: Tensor) -> dict[str, float]:
    """ATD: per-sample L2 distance between two epochs' features; mean and variance over samples."""
    d = torch.linalg.vector_norm((current.float() - previous.float()).flatten(1), dim=1)
    return {"diag/atd_mean": d.mean().item(), "diag/atd_var": d.var(unbiased=False).item()}
