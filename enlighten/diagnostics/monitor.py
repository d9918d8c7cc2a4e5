"""When and on what the measures run during training (`diagnostics=default`; `diagnostics=off`).

The loop calls these hooks; the monitor never changes training (gradients through
`torch.autograd.grad`, batch-norm statistics restored, its own random generators, torch's forked):

    rows = monitor.start(phase)                     # before the first step: the rows of step 0
    rows = monitor.after_step(step, phase)          # every step: BENR's path; rows on the cadence
    rows = monitor.at_enp_end(step, epoch, phase)   # where the ENP ends (`phase`: the next step's)
    rows = monitor.read(rows)                       # at the epoch's end: values read in one go
    cols = monitor.end_epoch(epoch)                 # per-epoch columns for metrics.jsonl
    monitor.summary()                               # ENP means and dataset-scope values for summary.json

Measurements queue their work on the device and return 0-d tensors; the loop reads a whole epoch's
rows once (`read`), so measuring adds no host-device sync inside the epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Optional

import numpy as np
import torch
from torch import Tensor, nn

from enlighten.console import log
from enlighten.diagnostics.measures import (
    INTERFERENCE,
    BatchEpochNormRatio,
    Variant,
    activation_stats,
    at_lambda_0,
    beta_quadrature,
    interference,
    parameter_groups,
    penultimate_features,
    read_values,
    trajectory_distance,
)
from enlighten.diagnostics.stiffness import stiffness
from enlighten.phase.base import Phase
from enlighten.strategies.mixing import PAIRINGS, centred_box, check_manifold, check_pairing, mix_inputs, partners

ENP_MEAN_KEYS = ("diag/cos", "diag/r_perp_clean", "diag/zero_act")
# Measures the dataset scope reports per pairing, at each lambda and by quadrature.
DATASET_MEASURES = (*INTERFERENCE, "perp_sq", "perp_sq_unbiased", "r_perp_clean_debiased")
# Independent random streams drawn from the run's seed (a probe seeded with s + 1 would repeat the
# dataset order of seed s).
PROBE_STREAM, DATASET_STREAM = 0, 1


def stream_generator(seed: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, stream]).generate_state(1)[0]))


def on_grid(step: int) -> bool:
    """The step grid every run shares: 0 (initialization) and 1, 2, 5 x 10^k (1, 2, 5, 10, 20, 50,
    100, ...), dense early where the ENP is, a few rows per decade after."""
    if step == 0:
        return True
    while step % 10 == 0:
        step //= 10
    return step in (1, 2, 5)


def point_name(step: int) -> str:
    return "init" if step == 0 else f"step{step}"


def _finite(name: str, value: float, low: float, high: float = math.inf, low_open: bool = True) -> float:
    """A float setting in (low, high] (or [low, high] when not `low_open`), NaN refused."""
    value = float(value)
    ok = math.isfinite(value) and (value > low if low_open else value >= low) and value <= high
    if not ok:
        bound = (
            f"{'(' if low_open else '['}{low:g}, {high:g}]"
            if math.isfinite(high)
            else f"{'>' if low_open else '>='} {low:g}"
        )
        raise ValueError(f"diagnostics.{name} must be {'in ' if math.isfinite(high) else ''}{bound}, got {value}.")
    return value


class MixKind:
    """One kind of mixing training uses, its alpha, and the share of mixed steps that use it."""

    def __init__(self, name: str, alpha: float, weight: float) -> None:
        self.name, self.alpha, self.weight = name, alpha, weight


class Diagnostics:
    """The paper's measures during training (docs/diagnostics.md), on the probe (a fixed batch of
    `probe_size` training samples) and optionally on the whole training subset (the dataset scope).

    Probe rows go to diagnostics.jsonl at the steps of the shared grid (`on_grid`), every
    `enp_every_steps` steps during the ENP and every `every_steps` steps after it, at the ENP end,
    and at initialization (step 0): gradient interference at each of `lambdas` and their Beta(alpha,
    alpha) expectation, and activation statistics. The dataset scope (`dataset_steps`,
    `dataset_at_enp_end`) accumulates the gradients over the training subset for each of
    `dataset_pairings`. The per-epoch columns (activations at the epoch's end, BENR, ATD) go to
    metrics.jsonl.

    The measurement mixes as training mixes: `kind`, `pairing`, `cutmix_alpha`, `switch_prob` and
    `label_smoothing` follow `mix.*`; alpha is the strategy's at that step, or `alpha` while the
    strategy does not mix (vanilla, High-Loss Removal, a paused Mixup), so the effect is measured
    whatever the strategy does.
    """

    def __init__(
        self,
        alpha: float = 1.0,
        cutmix_alpha: float = 0.0,
        switch_prob: float = 0.5,
        kind: str = "input",
        pairing: str = "permutation",
        label_smoothing: float = 0.0,
        lambdas: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5),
        every_steps: int = 1000,
        enp_every_steps: int = 50,
        probe_size: int = 64,
        seed: int = 0,
        dataset_chunk_size: int = 128,
        dataset_steps: Sequence[int] = (),
        dataset_at_enp_end: bool = False,
        dataset_pairings: Sequence[str] = PAIRINGS,
        interference: bool = True,
        activations: bool = True,
        benr: bool = True,
        atd: bool = True,
        stiffness: bool = False,
        stiffness_samples: int = 16,
    ) -> None:
        for name, value in (
            ("every_steps", every_steps),
            ("enp_every_steps", enp_every_steps),
            ("dataset_chunk_size", dataset_chunk_size),
            ("stiffness_samples", stiffness_samples),
        ):
            if value < 1:
                raise ValueError(f"diagnostics.{name} must be >= 1, got {value}.")
        if probe_size < 2:
            raise ValueError(f"diagnostics.probe_size must be >= 2, got {probe_size}.")
        if seed < 0:
            raise ValueError(f"diagnostics.seed must be >= 0, got {seed}.")
        self.alpha = _finite("alpha", alpha, 0.0, low_open=False)
        self.cutmix_alpha = _finite("cutmix_alpha", cutmix_alpha, 0.0, low_open=False)
        if interference and self.alpha == 0 and self.cutmix_alpha == 0:
            raise ValueError(
                "diagnostics.alpha (mix.alpha) and cutmix_alpha are both 0: interference needs a Mixup to "
                "measure. Set diagnostics.alpha=1.0, or diagnostics.interference=false."
            )
        self.switch_prob = _finite("switch_prob", switch_prob, 0.0, 1.0, low_open=False)
        self.label_smoothing = _finite("label_smoothing", label_smoothing, 0.0, 1.0, low_open=False)
        if kind not in ("input", "manifold"):
            raise ValueError(f"diagnostics.kind must be input or manifold, got {kind!r}.")
        if interference and kind == "manifold" and self.alpha == 0:
            raise ValueError(
                "diagnostics.kind=manifold needs diagnostics.alpha (mix.alpha) > 0: CutMix does not apply "
                "to hidden states."
            )
        self.lambdas = [_finite("lambdas", lam, 0.0, 0.5) for lam in lambdas]
        if not self.lambdas or any(b <= a for a, b in zip(self.lambdas, self.lambdas[1:])):
            raise ValueError(
                f"diagnostics.lambdas must be increasing values in (0, 0.5], got {list(lambdas)}: lambda and "
                "1 - lambda "
                f"mix the same pairs (exactly with flip pairing, in distribution with permutation), so 0.7 is 0.3."
            )
        check_pairing(pairing, "diagnostics.pairing")
        for p in dataset_pairings:
            check_pairing(p, "each of diagnostics.dataset_pairings")
        self.dataset_steps = sorted({int(s) for s in dataset_steps})
        if any(s < 0 for s in self.dataset_steps):
            raise ValueError(
                f"diagnostics.dataset_steps must be steps >= 0 (0: at initialization), got {list(dataset_steps)}."
            )
        self.kind, self.pairing, self.dataset_pairings = kind, pairing, list(dataset_pairings)
        self.every_steps, self.enp_every_steps = every_steps, enp_every_steps
        self.probe_size, self.seed, self.chunk_size = probe_size, seed, dataset_chunk_size
        self.dataset_at_enp_end = dataset_at_enp_end
        self.do_interference, self.do_activations = interference, activations
        self.do_benr, self.do_atd = benr, atd
        self.do_stiffness, self.stiffness_samples = stiffness, stiffness_samples
        self.enp_rows: list[dict] = []
        self.enp_ended = False
        self.dataset_summary: dict = {}
        self._pending_dataset: list[dict] = []  # dataset rows of this epoch, for the summary once read
        self.prev_features: Optional[Tensor] = None
        self.benr: Optional[BatchEpochNormRatio] = None

    # ------------------------------------------------------------------------------------------ setup
    def setup(self, model: nn.Module, data, strategy) -> None:
        self.model, self.data, self.strategy = model, data, strategy
        self.num_classes = data.num_classes
        # Token ids (language models) cannot be mixed and a sequence has no single class: interference,
        # stiffness and mixed-input activations are skipped there.
        self.can_mix = not data.tokens
        if not self.can_mix and (self.do_interference or self.do_stiffness or self.dataset_scope):
            log.info(
                f"diagnostics: {data.name} gives token ids, which cannot be mixed: gradient interference (probe "
                f"and dataset scope), stiffness and the activations of mixed inputs are not measured (clean "
                f"activations, BENR and ATD are)."
            )
        if self.can_mix and self.kind == "manifold":
            check_manifold(model)
        # The probe and its pairs are fixed for the run (drawn from the run's seed): rows at different
        # steps differ only by the weights.
        g = stream_generator(self.seed, PROBE_STREAM)
        n = min(self.probe_size - self.probe_size % 2, data.num_train)
        idx = torch.randperm(data.num_train, generator=g)[:n]
        self.x, self.y = next(iter(data.eval_batches("train", n, idx)))
        self.probe_partners = {p: partners(n, p, self.x.device, g) for p in PAIRINGS}
        device = next(model.parameters()).device
        self.groups = {name: torch.tensor(idx, device=device) for name, idx in parameter_groups(model).items()}
        if self.do_benr:
            self.benr = BatchEpochNormRatio(list(model.parameters()))

    @property
    def dataset_scope(self) -> bool:
        return bool(self.dataset_steps) or self.dataset_at_enp_end

    # ------------------------------------------------------------------------------------ interference
    def _kinds(self, phase: Phase) -> list[MixKind]:
        """The kinds of mixing a step trained under `phase` uses, with their alphas and shares of the
        mixed steps (the strategy's plan for that phase: what training used, not a step off)."""
        planned = self.strategy.plan(phase).alpha
        alpha = planned if planned else self.alpha  # None or 0: the strategy does not Mixup here
        if self.kind == "manifold":
            return [MixKind("manifold", alpha, 1.0)]
        if alpha > 0 and self.cutmix_alpha > 0:
            return [
                MixKind("mixup", alpha, 1.0 - self.switch_prob),
                MixKind("cutmix", self.cutmix_alpha, self.switch_prob),
            ]
        return [MixKind("mixup", alpha, 1.0)] if alpha > 0 else [MixKind("cutmix", self.cutmix_alpha, 1.0)]

    def _variants(self, pairings: list[str], kinds: list[MixKind]) -> list[Variant]:
        layers = range(len(self.model.stages)) if self.kind == "manifold" else [0]
        return [
            Variant(p, k.name, lam, layer) for p in pairings for k in kinds for lam in self.lambdas for layer in layers
        ]

    def _nodes(self, kind: str) -> dict[float, float]:
        """Each measured lambda -> the lambda its mixing really has. For CutMix, the box's pixel area
        (a 28x28 box cannot have every area), folded into (0, 0.5]; 0 (the box covers the image) is
        the end point, not a node."""
        if kind != "cutmix":
            return {lam: lam for lam in self.lambdas}
        effective = {lam: centred_box(self.x.shape, lam)[1] for lam in self.lambdas}
        return {lam: min(e, 1.0 - e) for lam, e in effective.items() if 0.0 < e < 1.0}

    def _combine(
        self,
        prefix: str,
        pairing: str,
        kinds: list[MixKind],
        results: dict,
        measures: Sequence[str],
        per_lambda: Sequence[str] | None = None,
    ) -> dict:
        """The `per_lambda` measures (default: all) at each lambda (Manifold Mixup: the mean over its
        layers; CutMix: at the lambda of its box, named so), and every measure's expectation over
        lambda by quadrature, weighted over the kinds (Mixup and CutMix by switch_prob)."""
        per_lambda = measures if per_lambda is None else per_lambda
        out: dict = {}
        expectation: dict[str, Tensor] = {}
        for k in kinds:
            kind_part = f"{k.name}/" if len(kinds) > 1 else ""
            nodes = self._nodes(k.name)
            for m in measures:
                at: dict[float, list[Tensor]] = {}
                for v, r in results.items():
                    if (v.pairing, v.kind) == (pairing, k.name) and v.lam in nodes and m in r:
                        at.setdefault(nodes[v.lam], []).append(r[m])
                if not at:
                    continue
                points = sorted(at)
                values = [torch.stack(at[t]).mean() for t in points]  # layers (and boxes of equal area) averaged
                if m in per_lambda:
                    out.update({f"{prefix}{kind_part}{m}@{t:.3g}": v for t, v in zip(points, values)})
                weights = beta_quadrature(points, k.alpha)
                value = weights[0] * at_lambda_0(m) + sum(w * v for w, v in zip(weights[1:], values))
                expectation[m] = expectation.get(m, 0.0) + k.weight * value
        return {**out, **{f"{prefix}{m}": v for m, v in expectation.items()}}

    def _alphas(self, prefix: str, kinds: list[MixKind]) -> dict:
        """How a row was measured: the alphas of its expectation, the pairing and the kinds."""
        out = {
            f"{prefix}alpha": next((k.alpha for k in kinds if k.name != "cutmix"), None),
            f"{prefix}mix_kind": "+".join(k.name for k in kinds),
        }
        if any(k.name == "cutmix" for k in kinds):
            out[f"{prefix}cutmix_alpha"] = self.cutmix_alpha
        return out

    def _probe_interference(self, phase: Phase) -> dict:
        kinds = self._kinds(phase)
        variants = self._variants([self.pairing], kinds)
        chunk = [(self.x, self.y, self.probe_partners)]
        _, results = interference(
            self.model, lambda: chunk, variants, self.num_classes, self.label_smoothing, self.groups
        )
        per_group = [f"{m}/{g}" for m in INTERFERENCE for g in self.groups]  # per group: the expectation only
        return self._combine("diag/", self.pairing, kinds, results, [*INTERFERENCE, *per_group], INTERFERENCE)

    def _dataset_chunks(self):
        """The training subset in a fixed order, in chunks of `dataset_chunk_size` (the last partial
        chunk dropped, as training drops it), un-augmented, with fixed pairs per chunk: every
        measurement of the run sees the same chunks and pairs. Order and pairs are drawn on the CPU
        and moved to the device once per measurement."""
        g = stream_generator(self.seed, DATASET_STREAM)
        size = self.chunk_size
        n = self.data.num_train // size * size
        order = torch.randperm(self.data.num_train, generator=g)[:n]
        perms = torch.stack([torch.randperm(size, generator=g) for _ in range(n // size)]).to(self.x.device)
        flip = partners(size, "flip", self.x.device)

        def chunks():
            for i, (x, y) in enumerate(self.data.eval_batches("train", size, order)):
                yield x, y, {"permutation": perms[i], "flip": flip}

        return chunks

    def measure_dataset(self, step: int, epoch: int, point: str, phase: Phase) -> dict:
        """The dataset scope: interference over the whole training subset, for every pairing of
        `dataset_pairings` (a row for diagnostics.jsonl; its values go to the summary once read)."""
        kinds = self._kinds(phase)
        variants = self._variants(self.dataset_pairings, kinds)
        start = time.perf_counter()
        clean, results = interference(
            self.model, self._dataset_chunks(), variants, self.num_classes, self.label_smoothing
        )
        if self.x.is_cuda:  # one wait per dataset measurement, so that its time is real
            torch.cuda.synchronize(self.x.device)
        row: dict = {
            "step": step,
            "epoch": epoch,
            "event": "dataset",
            "point": point,
            "data/num_samples": self.data.num_train // self.chunk_size * self.chunk_size,
            "data/chunk_size": self.chunk_size,
            **self._alphas("data/", kinds),
            "data/clean_sq": clean["clean_sq"],
            "data/clean_sq_unbiased": clean.get("clean_sq_unbiased"),
        }
        for p in self.dataset_pairings:
            row.update(self._combine(f"data/{p}/", p, kinds, results, DATASET_MEASURES))
        row["data/seconds"] = time.perf_counter() - start
        return row

    # ------------------------------------------------------------------------------------- activations
    def _activations(self) -> dict:
        clean = activation_stats(self.model, [self.x])
        train = activation_stats(self.model, [self.x], "diag/zero_act_train", train_mode=True, per_site=False)
        if not self.can_mix:
            return {**clean, **train}
        x_mix = mix_inputs(self.x, self.probe_partners[self.pairing], 0.5)
        return {**clean, **train, **activation_stats(self.model, [x_mix], "diag/zero_act_mix", per_site=False)}

    # ---------------------------------------------------------------------------------------- the rows
    def measure(self, phase: Phase) -> dict:
        row: dict = {}
        with torch.random.fork_rng(devices=[self.x.device] if self.x.is_cuda else []):
            if self.do_interference and self.can_mix:
                row.update({**self._alphas("diag/", self._kinds(phase)), "diag/pairing": self.pairing})
                row.update(self._probe_interference(phase))
            if self.do_activations:
                row.update(self._activations())
            if self.do_stiffness and self.can_mix:
                row.update(stiffness(self.model, self.x[: self.stiffness_samples], self.y[: self.stiffness_samples]))
        return row

    def _rows(self, step: int, phase: Phase) -> list[dict]:
        rows = []
        grid = on_grid(step)
        in_enp, epoch = phase.in_enp, phase.epoch
        if grid or step % (self.enp_every_steps if in_enp else self.every_steps) == 0:
            row = {"step": step, "epoch": epoch, "in_enp": in_enp, "grid": grid, **self.measure(phase)}
            rows.append(row)
            if in_enp:
                self.enp_rows.append(row)
        if step in self.dataset_steps and self.can_mix:
            rows.append(self._dataset(step, epoch, point_name(step), phase))
        return rows

    def _dataset(self, step: int, epoch: int, point: str, phase: Phase) -> dict:
        row = self.measure_dataset(step, epoch, point, phase)
        self._pending_dataset.append(row)
        return row

    def start(self, phase: Phase) -> list[dict]:
        """The rows of step 0 (at initialization, before the first step; `phase`: the first step's)."""
        return self._rows(0, phase)

    def after_step(self, step: int, phase: Phase) -> list[dict]:
        """`step`: the steps done; `phase`: the record the step just taken trained under."""
        if self.benr is not None:
            self.benr.step()
        return self._rows(step, phase)

    def at_enp_end(self, step: int, epoch: int, phase: Phase) -> list[dict]:
        """Where the ENP ended, at `step` of `epoch`: the probe measured as training goes on from here
        (`phase`: the next step's record)."""
        self.enp_ended = True
        rows = [{"step": step, "epoch": epoch, "event": "enp_end", **self.measure(phase)}]
        if self.dataset_at_enp_end and self.can_mix:
            rows.append(self._dataset(step, epoch, "enp_end", phase))
        return rows

    def read(self, rows: list[dict]) -> list[dict]:
        """The epoch's rows with their values read from the device (one read); dataset-scope values
        also go to the summary."""
        read_values([r for r in rows if r])
        for row in self._pending_dataset:
            self.dataset_summary.update({f"{row['point']}/{k}": v for k, v in row.items() if k.startswith("data/")})
        self._pending_dataset = []
        return [r for r in rows if r]

    @torch.no_grad()
    def end_epoch(self, epoch: int) -> dict:
        """This epoch's columns, each measured at the epoch's end: activations of the clean probe (eval
        and train mode) and of the mixed probe; BENR over the epoch; ATD since the previous epoch's end."""
        out: dict = {}
        if self.do_activations:
            with torch.random.fork_rng(devices=[self.x.device] if self.x.is_cuda else []):
                out.update(self._activations())
        if self.benr is not None:
            out["diag/benr"] = self.benr.end_epoch()
        if self.do_atd:
            was_training = self.model.training
            self.model.eval()
            features = penultimate_features(self.model, self.x).float()
            self.model.train(was_training)
            if self.prev_features is not None:
                out.update(trajectory_distance(self.prev_features, features))
            self.prev_features = features
        return read_values([out])[0]

    # ------------------------------------------------------------------------------------- persistence
    def state_dict(self) -> dict:
        """The ENP rows (read), whether the ENP ended, the dataset-scope values, the features ATD compares
        with (the probe and its pairs are drawn again from the seed) and, within an epoch, BENR's
        epoch-start weights and path length so far."""
        within_epoch = self.benr is not None and self.benr.path.item() > 0
        benr = {"start": [t.cpu() for t in self.benr.start], "path": self.benr.path.cpu()} if within_epoch else None
        return {
            "enp_rows": self.enp_rows,
            "enp_ended": self.enp_ended,
            "dataset_summary": self.dataset_summary,
            "prev_features": self.prev_features,
            "benr": benr,
        }

    def load_state_dict(self, state: dict) -> None:
        self.enp_rows = list(state["enp_rows"])
        self.enp_ended = state.get("enp_ended", False)
        self.dataset_summary = dict(state.get("dataset_summary", {}))
        prev = state["prev_features"]  # checkpoints load onto the CPU
        self.prev_features = None if prev is None else prev.to(self.x.device)
        if self.benr is not None:  # at an epoch's end BENR's two copies both equal the current weights
            self.benr = BatchEpochNormRatio(list(self.model.parameters()))
            if state.get("benr"):  # within an epoch: its start and the path so far
                torch._foreach_copy_(self.benr.start, [t.to(self.x.device) for t in state["benr"]["start"]])
                self.benr.path.copy_(state["benr"]["path"])

    def summary(self) -> dict:
        """Means over the probe rows measured during the ENP (null when the ENP never ended: a mean
        over a whole run is not an ENP mean), and the dataset-scope values by point."""
        out: dict = {}
        for key in ENP_MEAN_KEYS:
            values = [r[key] for r in self.enp_rows if r.get(key) is not None]
            out[f"enp_mean/{key}"] = float(np.mean(values)) if values and self.enp_ended else None
        return {**out, **self.dataset_summary}


class NoDiagnostics:
    """`diagnostics=off`: every hook does nothing."""

    def setup(self, model, data, strategy) -> None:
        pass

    def start(self, phase) -> list[dict]:
        return []

    def after_step(self, step: int, phase) -> list[dict]:
        return []

    def at_enp_end(self, step: int, epoch: int, phase) -> list[dict]:
        return []

    def read(self, rows: list[dict]) -> list[dict]:
        return rows

    def end_epoch(self, epoch: int) -> dict:
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def summary(self) -> dict:
        return {}
