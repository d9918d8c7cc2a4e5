"""The measures behind the paper's two effects, as plain functions of a model and its batches.

- Gradient interference: the Mixup gradient's component orthogonal to the clean gradient, at fixed
  lambdas, on one batch or accumulated over a dataset.
- Activation revival: the share of zero (saturated) activations, and units dead on every sample.
- BENR: the noise of an epoch's path through parameter space (sum of step lengths / net change).
- ATD: how far the penultimate features of fixed inputs move between epochs.

Nothing here touches `.grad`, the optimizer, batch-norm running statistics or a random stream that
training uses: callers get numbers, training goes on as if nothing was measured.
"""

from __future__ import annotations

import contextlib
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch
from scipy.special import betainc
from torch import Tensor, nn

from enlighten.console import log
from enlighten.strategies.base import soft_cross_entropy
from enlighten.strategies.mixing import centred_box, cutmix_inputs, manifold_forward, mix_inputs, mixed_targets

# --------------------------------------------------------------------------------------------------
# Parameter groups
# --------------------------------------------------------------------------------------------------


def parameter_groups(model: nn.Module) -> dict[str, list[int]]:
    """Indices into `list(model.parameters())` per group: each top-level child, with containers of
    blocks (`stages`, `blocks`) split into their members (stem, stages.0, ..., head; for a timm ViT
    patch_embed, blocks.0, ..., norm, head). Parameters owned by the model itself form `embed`."""
    index = {id(p): i for i, p in enumerate(model.parameters())}
    groups: dict[str, list[int]] = defaultdict(list)
    for _, p in model.named_parameters(recurse=False):
        groups["embed"].append(index[id(p)])
    for name, child in model.named_children():
        members = (
            list(child.named_children())
            if isinstance(child, (nn.Sequential, nn.ModuleList)) and name in ("stages", "blocks", "layers")
            else [(None, child)]
        )
        for sub, module in members:
            key = name if sub is None else f"{name}.{sub}"
            for p in module.parameters():
                groups[key].append(index[id(p)])
    return {k: v for k, v in groups.items() if v}


@torch.no_grad()
def group_norms(tensors: Sequence[Tensor], groups: dict[str, list[int]], key: str) -> dict[str, Tensor]:
    """`key`, the L2 norm of all of `tensors` (one per parameter), and `key/<group>` per parameter group
    (`parameter_groups`), as 0-d float64 tensors: the monitor reads them with the epoch's rows."""
    norms = {g: torch.stack([tensors[i].double().norm() for i in idx]).norm() for g, idx in groups.items()}
    return {key: torch.stack(list(norms.values())).norm(), **{f"{key}/{g}": n for g, n in norms.items()}}


def per_sample_gradients(
    model: nn.Module, x: Tensor, y: Tensor, loss: Callable | None = None, vectorized: bool = True
) -> list[Tensor]:
    """Each sample's gradient of its own loss (`loss(logits, target)`, default the cross-entropy with hard
    labels), one tensor [n, *p.shape] per parameter in `model.parameters()` order; no `.grad`, no buffer
    written. Vectorized by torch.func (vmap of grad); a model whose operations vmap cannot batch falls
    back to one backward pass per sample (`vectorized=False` forces it). Call it in eval mode: a
    batch-norm layer in train mode has no statistics of one sample."""
    from torch.func import functional_call, grad, vmap

    loss = loss or (lambda logits, target: torch.nn.functional.cross_entropy(logits.float(), target))
    names = [n for n, _ in model.named_parameters()]
    if vectorized:
        params = {n: p.detach() for n, p in model.named_parameters()}
        buffers = dict(model.named_buffers())

        def sample_loss(weights: dict, xi: Tensor, yi: Tensor) -> Tensor:
            return loss(functional_call(model, (weights, buffers), (xi.unsqueeze(0),)), yi.unsqueeze(0))

        try:
            per_sample = vmap(grad(sample_loss), in_dims=(None, 0, 0))(params, x, y)
            return [per_sample[n] for n in names]
        except (RuntimeError, NotImplementedError) as e:
            if "vmap" not in str(e) and "atching rule" not in str(e):
                raise  # not vmap's refusal (out of memory, a bug): never hidden behind the slow path
            if not _said_per_sample_loop:
                _said_per_sample_loop.append(type(model).__name__)
                log.info(
                    f"diagnostics: vmap cannot batch {type(model).__name__} ({str(e).splitlines()[0][:120]}); "
                    f"per-sample gradients take one backward pass per sample."
                )
    params = list(model.parameters())
    trainable = [p for p in params if p.requires_grad]
    rows = []
    with torch.enable_grad():
        for i in range(len(x)):
            grads = torch.autograd.grad(loss(model(x[i : i + 1]), y[i : i + 1]), trainable, allow_unused=True)
            rows.append({id(p): g for p, g in zip(trainable, grads) if g is not None})
    return [torch.stack([r.get(id(p), torch.zeros_like(p)) for r in rows]) for p in params]


_said_per_sample_loop: list[str] = []  # the fallback is said once per process


# --------------------------------------------------------------------------------------------------
# Gradient interference
# --------------------------------------------------------------------------------------------------

INTERFERENCE = ("cos", "r_perp_clean", "r_perp_mix", "norm_ratio")
# The value of each measure at lambda 0 (and 1): the mixed batch is then the clean batch reordered, so
# the Mixup gradient is the clean gradient. The quadrature uses these as its end points.
AT_LAMBDA_0 = {
    "cos": 1.0,
    "r_perp_clean": 0.0,
    "r_perp_mix": 0.0,
    "norm_ratio": 1.0,
    "perp_sq": 0.0,
    "r_perp_clean_debiased": 0.0,
    "perp_sq_unbiased": 0.0,
}


def at_lambda_0(measure: str) -> float:
    """The value of `measure` (`cos`, or a per-group `cos/stem`) at lambda 0."""
    return AT_LAMBDA_0[measure.split("/")[0]]


@contextlib.contextmanager
def in_mode(model: nn.Module, training: bool) -> Iterator[None]:
    """The model in train (`training`) or eval mode inside, and in the mode it was in on exit."""
    was_training = model.training
    model.train(training)
    try:
        yield
    finally:
        model.train(was_training)


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


def beta_quadrature(nodes: Sequence[float], alpha: float) -> list[float]:
    """Weights [w_0, w_1, ..., w_K] such that E[f(lambda)] = w_0 f(0) + sum_k w_k f(nodes[k-1]) for
    lambda ~ Beta(alpha, alpha), exactly when f is symmetric (f(l) = f(1 - l)), linear between 0 and
    the nodes (increasing, in (0, 0.5]) and constant from the last node to 0.5.

    Built from the Beta distribution's CDF I_t(alpha, alpha) and its partial first moment
    0.5 I_t(alpha + 1, alpha) on each interval; the mass of [0.5, 1] mirrors that of [0, 0.5].
    """
    points = [0.0, *nodes]
    weights = [0.0] * len(points)

    def mass(t: float) -> float:
        return float(betainc(alpha, alpha, t))

    def moment(t: float) -> float:
        return 0.5 * float(betainc(alpha + 1.0, alpha, t))

    for k in range(len(points) - 1):
        a, b = points[k], points[k + 1]
        p, m = mass(b) - mass(a), moment(b) - moment(a)
        weights[k] += (b * p - m) / (b - a)
        weights[k + 1] += (m - a * p) / (b - a)
    weights[-1] += mass(0.5) - mass(points[-1])
    return [2.0 * w for w in weights]


@dataclass(frozen=True)
class Variant:
    """One Mixup gradient to measure: the pairing, the kind of mixing (`mixup`, `cutmix`,
    `manifold`), lambda and, for Manifold Mixup, the layer mixed (0: the input, i: after stage i)."""

    pairing: str
    kind: str
    lam: float
    layer: int = 0


def gradients(model: nn.Module, x: Tensor, target: Tensor, forward: Callable | None = None) -> list[Tensor]:
    """d(mean soft cross-entropy)/d(params), without touching `.grad`; zeros for unused parameters."""
    params = list(model.parameters())
    logits = forward(model, x) if forward is not None else model(x)
    loss = soft_cross_entropy(logits, target).mean()
    trainable = [p for p in params if p.requires_grad]
    grads = iter(torch.autograd.grad(loss, trainable, allow_unused=True))
    out = []
    for p in params:
        g = next(grads) if p.requires_grad else None
        out.append(torch.zeros_like(p) if g is None else g.detach())
    return out


def clean_gradients(model: nn.Module, x: Tensor, y: Tensor, num_classes: int, label_smoothing: float) -> list[Tensor]:
    """The clean gradient with the targets training uses (label-smoothed as the mixed ones are)."""
    return gradients(model, x, mixed_targets(y, None, 1.0, num_classes, label_smoothing))


def mixed_gradients(
    model: nn.Module, x: Tensor, y: Tensor, partner: Tensor, v: Variant, num_classes: int, label_smoothing: float
) -> list[Tensor]:
    """The Mixup gradient of one batch for variant `v`, mixed by the functions training mixes with.
    CutMix takes a centred box of area about 1 - lambda (its lambda corrected to the box's area)."""
    if v.kind == "mixup":
        return gradients(
            model, mix_inputs(x, partner, v.lam), mixed_targets(y, partner, v.lam, num_classes, label_smoothing)
        )
    if v.kind == "cutmix":
        box, lam = centred_box(x.shape, v.lam)
        return gradients(
            model, cutmix_inputs(x, partner, box), mixed_targets(y, partner, lam, num_classes, label_smoothing)
        )
    if v.kind == "manifold":
        target = mixed_targets(y, partner, v.lam, num_classes, label_smoothing)
        return gradients(model, x, target, forward=lambda m, h: manifold_forward(m, h, partner, v.lam, v.layer))
    raise ValueError(f"unknown mixing kind {v.kind!r}")


class SplitSums:
    """Per-chunk gradients summed in four parts (chunk k in part k mod 4): four independent estimates
    of the expected gradient, whose inner products across parts are unbiased (a plain squared norm of
    a mean adds the sampling variance: a floor of about 1/n). Holds four parameter-sized sums."""

    PARTS = 4

    def __init__(self) -> None:
        self.sums: list[list[Tensor] | None] = [None] * self.PARTS
        self.counts = [0] * self.PARTS

    def add(self, chunk: int, grads: list[Tensor]) -> None:
        part = chunk % self.PARTS
        if self.sums[part] is None:
            self.sums[part] = [g.float().clone() for g in grads]
        else:
            torch._foreach_add_(self.sums[part], [g.float() for g in grads])
        self.counts[part] += 1

    def filled(self) -> list[tuple[list[Tensor], int]]:
        return [(s, n) for s, n in zip(self.sums, self.counts) if n]


def _dots(a: list[Tensor], b: list[Tensor]) -> Tensor:
    """Inner products per parameter tensor, in float64: [number of parameter tensors]."""
    return torch.stack([(x.double() * y.double()).sum() for x, y in zip(a, b)])


class PartDots:
    """Inner products (per parameter tensor) between the part means of two `SplitSums`, computed from
    the sums without allocating the means: `full()` for the means over all chunks, `across()` for
    pairs of different parts (unbiased)."""

    def __init__(self, a: SplitSums, b: SplitSums, symmetric: bool = False) -> None:
        pa, pb = a.filled(), b.filled()
        self.counts = [n for _, n in pa]
        self.d: dict[tuple[int, int], Tensor] = {}
        for i, (sa, na) in enumerate(pa):
            for j, (sb, nb) in enumerate(pb):
                self.d[i, j] = self.d[j, i] if symmetric and j < i else _dots(sa, sb) / (na * nb)

    @property
    def parts(self) -> int:
        return len(self.counts)

    def full(self) -> Tensor:
        n = sum(self.counts)
        return sum(self.counts[i] * self.counts[j] / n**2 * d for (i, j), d in self.d.items())

    def across(self) -> Tensor:
        """The mean over ordered pairs of different parts, summed over parameters (needs 2 parts)."""
        pairs = [d.sum() for (i, j), d in self.d.items() if i != j]
        return sum(pairs) / len(pairs)


def _ratios(mm: Tensor, mc: Tensor, cc: Tensor) -> dict[str, Tensor]:
    """cos, |g_perp|/|g_clean|, |g_perp|/|g_mix|, |g_mix|/|g_clean| and |g_perp|^2 from the three
    inner products; g_perp = g_mix - (<g_mix, g_clean> / |g_clean|^2) g_clean."""
    tiny = 1e-300
    perp = (mm - mc * mc / cc.clamp_min(tiny)).clamp_min(0.0)
    return {
        "cos": mc / (mm.sqrt() * cc.sqrt()).clamp_min(tiny),
        "r_perp_clean": perp.sqrt() / cc.sqrt().clamp_min(tiny),
        "r_perp_mix": perp.sqrt() / mm.sqrt().clamp_min(tiny),
        "norm_ratio": mm.sqrt() / cc.sqrt().clamp_min(tiny),
        "perp_sq": perp,
    }


def _debiased(mm: PartDots, mc: PartDots, cc: PartDots) -> dict[str, Tensor]:
    """|g_perp|^2 of the expected gradients M and C, without the sampling noise, from four parts:
    |M|^2, |C|^2 as means of inner products of different parts, <M, C>^2 as the mean of
    <m_a, c_b> <m_c, c_d> over distinct parts a, b, c, d (each unbiased), then
    perp_sq_unbiased = |M|^2 - <M, C>^2 / |C|^2: only the division by the estimate of |C|^2 is not
    unbiased, a second-order error while the clean gradient is coherent. It can be negative;
    r_perp_clean_debiased = sqrt(max(0, perp_sq_unbiased) / |C|^2). NaN where |C|^2's estimate is
    not positive. No branch on a value: no host read."""
    cross = {k: d.sum() for k, d in mc.d.items()}
    mc_sq = sum(cross[a, b] * cross[c, d] for a, b, c, d in itertools.permutations(range(mc.parts), 4)) / 24
    mm_u, cc_u = mm.across(), cc.across()
    nan = torch.full_like(cc_u, float("nan"))
    perp = torch.where(cc_u > 0, mm_u - mc_sq / cc_u, nan)
    return {
        "perp_sq_unbiased": perp,
        "r_perp_clean_debiased": torch.where(cc_u > 0, (perp.clamp_min(0.0) / cc_u).sqrt(), nan),
    }


def _compare(mixed: SplitSums, clean: SplitSums, cc: PartDots, groups: dict[str, Tensor] | None) -> dict[str, Tensor]:
    mm, mc = PartDots(mixed, mixed, symmetric=True), PartDots(mixed, clean)
    mm_full, mc_full, cc_full = mm.full(), mc.full(), cc.full()
    out = _ratios(mm_full.sum(), mc_full.sum(), cc_full.sum())
    for name, idx in (groups or {}).items():  # idx: indices on the device (no copy from the host)
        for key, value in _ratios(mm_full[idx].sum(), mc_full[idx].sum(), cc_full[idx].sum()).items():
            if key != "perp_sq":
                out[f"{key}/{name}"] = value
    if mm.parts == SplitSums.PARTS:
        out.update(_debiased(mm, mc, cc))
    return out


@contextlib.contextmanager
def same_random_draws(model: nn.Module) -> Iterator[Callable[[], None]]:
    """Fork torch's random streams (training's are untouched) and yield `reset()`, which rewinds them:
    calling it before every forward gives the clean and each mixed pass the same dropout and
    drop-path masks, so that they differ only by the mixing."""
    device = next(model.parameters()).device
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        cpu = torch.get_rng_state()
        cuda = torch.cuda.get_rng_state(device) if devices else None

        def reset() -> None:
            torch.set_rng_state(cpu)
            if cuda is not None:
                torch.cuda.set_rng_state(cuda, device)

        yield reset


def interference(
    model: nn.Module,
    chunks: Callable[[], Iterable[tuple[Tensor, Tensor, dict[str, Tensor]]]],
    variants: Sequence[Variant],
    num_classes: int,
    label_smoothing: float = 0.0,
    groups: dict[str, Tensor] | None = None,
) -> tuple[dict[str, Tensor], dict[Variant, dict[str, Tensor]]]:
    """The clean gradient and each variant's Mixup gradient, accumulated over the batches `chunks()`
    yields (x, y, partners by pairing) at the current parameters, compared.

    One chunk is a probe batch; many are a dataset (chunks of the training batch size; from four
    chunks on, also estimates without the sampling noise, see `_debiased`). Gradients are taken in
    training mode (the batch statistics training sees, per chunk), in fp32; batch-norm buffers and
    the random streams are restored. Returns the clean gradient's squared norm (plain and unbiased)
    and, per variant, cos, r_perp_clean, r_perp_mix, norm_ratio and perp_sq (per parameter group too
    when `groups` is given: indices into the parameters, on their device), plus perp_sq_unbiased and
    r_perp_clean_debiased with four or more chunks. Values are 0-d tensors on the model's device
    (see `read_values`).
    """
    was_training = model.training
    model.train()
    try:
        with preserved_buffers(model), same_random_draws(model) as reset:
            clean = SplitSums()
            for i, (x, y, _) in enumerate(chunks()):
                reset()
                clean.add(i, clean_gradients(model, x, y, num_classes, label_smoothing))
            cc = PartDots(clean, clean, symmetric=True)
            results = {}
            for v in variants:  # one variant at a time: 8 parameter-sized sums in memory, 4 clean and 4 mixed
                mixed = SplitSums()
                for i, (x, y, pairs) in enumerate(chunks()):
                    reset()
                    mixed.add(i, mixed_gradients(model, x, y, pairs[v.pairing], v, num_classes, label_smoothing))
                results[v] = _compare(mixed, clean, cc, groups)
    finally:
        model.train(was_training)
    clean_stats = {"clean_sq": cc.full().sum()}
    if cc.parts == SplitSums.PARTS:
        clean_stats["clean_sq_unbiased"] = cc.across()
    return clean_stats, results


def read_values(rows: list[dict]) -> list[dict]:
    """Replace every 0-d tensor in `rows` (in place) by its value, with one read from the device: the
    measures queue their work on the device and are read once, at the epoch's end."""
    slots = [(row, key) for row in rows for key, value in row.items() if isinstance(value, Tensor)]
    if not slots:
        return rows
    values = torch.stack([row[key].detach().double().reshape(()) for row, key in slots]).tolist()
    for (row, key), value in zip(slots, values):
        row[key] = value
    return rows


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
            # units last (conv maps: channels, a free view of channels_last maps; vectors, tokens: the
            # last dimension), then one count of zeros per unit gives both the total and the dead units
            units = a.movedim(1, -1) if a.ndim == 4 else a
            zero = (units <= 0) if pre else (units == 0)
            per_unit = zero.reshape(-1, zero.shape[-1]).sum(0)
            k = self._calls.get(name, 0)
            self._calls[name] = k + 1
            site = name if k == 0 else f"{name}.{k}"
            self.zeros[site] = self.zeros.get(site, 0) + per_unit.sum()
            self.total[site] = self.total.get(site, 0) + zero.numel()
            alive = per_unit < zero.numel() // zero.shape[-1]  # some element of the unit was not zero
            self.alive[site] = alive if site not in self.alive else self.alive[site] | alive

        return hook

    def new_forward(self) -> None:
        self._calls = {}

    def close(self) -> None:
        for h in self.handles:
            h.remove()


@torch.no_grad()
def activation_stats(
    model: nn.Module,
    batches: list[Tensor],
    prefix: str = "diag/zero_act",
    train_mode: bool = False,
    per_site: bool = True,
) -> dict[str, Tensor]:
    """Share of zero activations (overall and, with `per_site`, per site) and of dead units, as 0-d
    tensors. In eval mode by default; `train_mode` uses each batch's own batch-norm statistics (as
    training sees them) and restores the running statistics afterwards."""
    was_training = model.training
    model.train(train_mode)
    rec = ActivationRecorder(model)
    try:
        with preserved_buffers(model) if train_mode else contextlib.nullcontext():
            for x in batches:
                rec.new_forward()
                model(x)
    finally:
        rec.close()
        model.train(was_training)
    if not rec.total:
        return {}
    sites = list(rec.total)
    # Divisions by Python numbers: no tensor is copied from the host (which would wait for a GPU).
    shares = torch.stack([torch.as_tensor(rec.zeros[s]).double() / rec.total[s] for s in sites])
    zeros = sum(torch.as_tensor(rec.zeros[s]).double() for s in sites)
    dead = sum((~rec.alive[s]).sum().double() for s in sites)
    out = {
        prefix: zeros / sum(rec.total.values()),
        prefix.replace("zero_act", "dead_units"): dead / sum(rec.alive[s].numel() for s in sites),
    }
    if per_site:
        out.update({f"{prefix}/{s}": shares[i] for i, s in enumerate(sites)})
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
        net = torch.linalg.vector_norm(
            torch.stack(torch._foreach_norm(torch._foreach_sub(current, self.start))).double()
        )
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
