"""Gradient interference, the paper's harmful effect, as a measure: on the probe at the monitor's
cadence, and over the whole training subset (the dataset scope) at `dataset_steps` and where the ENP
ends. The mathematics is in `enlighten.diagnostics.measures`; what is measured and how is in
docs/diagnostics.md.

The measurement mixes as training mixes: the kind (input or manifold), the pairing, CutMix's alpha
and share, and label smoothing are read from the strategy's own mixer (`strategy.mixer`, built from
`mix.*`); alpha is the strategy's at that step, or `alpha` while the strategy does not mix (vanilla,
High-Loss Removal, a paused Mixup), so the effect is measured whatever the strategy does.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import torch
from torch import Tensor

from enlighten.console import log
from enlighten.diagnostics.base import DATASET_STREAM, Measure, Probe, stream_generator
from enlighten.diagnostics.measures import (
    INTERFERENCE,
    Variant,
    at_lambda_0,
    beta_quadrature,
    interference,
    parameter_groups,
)
from enlighten.phase.base import Phase
from enlighten.strategies.mixing import PAIRINGS, centred_box, check_manifold, check_pairing, partners

# Measures the dataset scope reports per pairing, at each lambda and by quadrature.
DATASET_MEASURES = (*INTERFERENCE, "perp_sq", "perp_sq_unbiased", "r_perp_clean_debiased")


def point_name(step: int) -> str:
    return "init" if step == 0 else f"step{step}"


class MixKind:
    """One kind of mixing training uses, its alpha, and the share of mixed steps that use it."""

    def __init__(self, name: str, alpha: float, weight: float) -> None:
        self.name, self.alpha, self.weight = name, alpha, weight


class Interference(Measure):
    """Gradient interference at each of `lambdas` and its Beta(alpha, alpha) expectation, on the probe
    (`diag/...` in the probe rows; `probe=false`: none); with `dataset_steps` or `dataset_at_enp_end`,
    accumulated over the training subset in chunks of `dataset_chunk_size` for each of `dataset_pairings` (rows with
    `event: dataset`, and `<point>/data/...` in summary.json)."""

    enp_means = ("diag/cos", "diag/r_perp_clean")

    def __init__(
        self,
        alpha: float = 1.0,
        lambdas: Sequence[float] = (0.1, 0.3, 0.5),
        probe: bool = True,
        dataset_chunk_size: int = 128,
        dataset_steps: Sequence[int] = (),
        dataset_at_enp_end: bool = False,
        dataset_pairings: Sequence[str] = PAIRINGS,
    ) -> None:
        alpha = float(alpha)
        if not (math.isfinite(alpha) and alpha >= 0):
            raise ValueError(f"diagnostics.measures.interference.alpha must be >= 0, got {alpha}.")
        if dataset_chunk_size < 1:
            raise ValueError(
                f"diagnostics.measures.interference.dataset_chunk_size must be >= 1, got {dataset_chunk_size}."
            )
        self.lambdas = [float(lam) for lam in lambdas]
        for lam in self.lambdas:
            if not (math.isfinite(lam) and 0.0 < lam <= 0.5):
                raise ValueError(f"diagnostics.measures.interference.lambdas must be in (0, 0.5], got {lam}.")
        if not self.lambdas or any(b <= a for a, b in zip(self.lambdas, self.lambdas[1:])):
            raise ValueError(
                f"diagnostics.measures.interference.lambdas must be increasing values in (0, 0.5], got "
                f"{list(lambdas)}: lambda and 1 - lambda mix the same pairs (exactly with flip pairing, in "
                f"distribution with permutation), so 0.7 is 0.3."
            )
        for p in dataset_pairings:
            check_pairing(p, "each of diagnostics.measures.interference.dataset_pairings")
        self.dataset_steps = sorted({int(s) for s in dataset_steps})
        if any(s < 0 for s in self.dataset_steps):
            raise ValueError(
                f"diagnostics.measures.interference.dataset_steps must be steps >= 0 (0: at initialization), "
                f"got {list(dataset_steps)}."
            )
        self.alpha, self.on_probe, self.chunk_size = alpha, probe, dataset_chunk_size
        self.dataset_at_enp_end, self.dataset_pairings = dataset_at_enp_end, list(dataset_pairings)
        self.dataset_rows: list[dict] = []  # read in place by the monitor at each epoch's end
        self.earlier_summary: dict = {}  # the dataset-scope values of before a resume

    @property
    def dataset_scope(self) -> bool:
        return bool(self.dataset_steps) or self.dataset_at_enp_end

    def check(self, strategy) -> None:
        mixer = strategy.mixer
        if not (self.on_probe or self.dataset_scope):
            return  # measures nothing: nothing to check
        if self.alpha == 0 and mixer.cutmix_alpha == 0:
            raise ValueError(
                "diagnostics.measures.interference.alpha (mix.alpha) and mix.cutmix_alpha are both 0: interference "
                "needs a Mixup to measure. Set diagnostics.measures.interference.alpha=1.0, or turn the measure "
                "off with diagnostics.measures.interference=null."
            )
        if mixer.kind == "manifold" and self.alpha == 0:
            raise ValueError(
                "mix.kind=manifold needs diagnostics.measures.interference.alpha (mix.alpha) > 0: CutMix does not "
                "apply to hidden states."
            )

    def setup(self, probe: Probe) -> None:
        super().setup(probe)
        self.mixer = probe.strategy.mixer
        self.num_classes = probe.data.num_classes
        if not probe.can_mix:
            if self.on_probe or self.dataset_scope:
                log.info(
                    f"diagnostics: {probe.data.name} gives token ids, which cannot be mixed: gradient "
                    f"interference (probe and dataset scope) is not measured."
                )
            return
        if self.mixer.kind == "manifold":
            check_manifold(probe.model)
        device = next(probe.model.parameters()).device
        self.groups = {name: torch.tensor(idx, device=device) for name, idx in parameter_groups(probe.model).items()}

    # -------------------------------------------------------------------------------- how it mixes
    def _kinds(self, phase: Phase) -> list[MixKind]:
        """The kinds of mixing a step trained under `phase` uses, with their alphas and shares of the
        mixed steps (the strategy's plan for that phase: what training used, not a step off)."""
        planned = self.probe.strategy.plan(phase).alpha
        alpha = planned if planned else self.alpha  # None or 0: the strategy does not Mixup here
        cutmix_alpha, switch_prob = self.mixer.cutmix_alpha, self.mixer.switch_prob
        if self.mixer.kind == "manifold":
            return [MixKind("manifold", alpha, 1.0)]
        if alpha > 0 and cutmix_alpha > 0:
            return [MixKind("mixup", alpha, 1.0 - switch_prob), MixKind("cutmix", cutmix_alpha, switch_prob)]
        return [MixKind("mixup", alpha, 1.0)] if alpha > 0 else [MixKind("cutmix", cutmix_alpha, 1.0)]

    def _variants(self, pairings: list[str], kinds: list[MixKind]) -> list[Variant]:
        layers = range(len(self.probe.model.stages)) if self.mixer.kind == "manifold" else [0]
        return [
            Variant(p, k.name, lam, layer) for p in pairings for k in kinds for lam in self.lambdas for layer in layers
        ]

    def _nodes(self, kind: str) -> dict[float, float]:
        """Each measured lambda -> the lambda its mixing really has. For CutMix, the box's pixel area
        (a 28x28 box cannot have every area), folded into (0, 0.5]; 0 (the box covers the image) is
        the end point, not a node."""
        if kind != "cutmix":
            return {lam: lam for lam in self.lambdas}
        effective = {lam: centred_box(self.probe.x.shape, lam)[1] for lam in self.lambdas}
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
        """How a row was measured: the alphas of its expectation and the kinds."""
        out = {
            f"{prefix}alpha": next((k.alpha for k in kinds if k.name != "cutmix"), None),
            f"{prefix}mix_kind": "+".join(k.name for k in kinds),
        }
        if any(k.name == "cutmix" for k in kinds):
            out[f"{prefix}cutmix_alpha"] = self.mixer.cutmix_alpha
        return out

    # ------------------------------------------------------------------------------------- the probe
    def row(self, phase: Phase) -> dict:
        if not (self.on_probe and self.probe.can_mix):
            return {}
        kinds, pairing = self._kinds(phase), self.mixer.pairing
        chunk = [(self.probe.x, self.probe.y, self.probe.partners)]
        _, results = interference(
            self.probe.model,
            lambda: chunk,
            self._variants([pairing], kinds),
            self.num_classes,
            self.mixer.label_smoothing,
            self.groups,
        )
        per_group = [f"{m}/{g}" for m in INTERFERENCE for g in self.groups]  # per group: the expectation only
        return {
            **self._alphas("diag/", kinds),
            "diag/pairing": pairing,
            **self._combine("diag/", pairing, kinds, results, [*INTERFERENCE, *per_group], INTERFERENCE),
        }

    # ------------------------------------------------------------------------------ the dataset scope
    def own_rows(self, step: int, epoch: int, phase: Phase, enp_end: bool) -> list[dict]:
        due = self.dataset_at_enp_end if enp_end else step in self.dataset_steps
        if not (due and self.probe.can_mix):
            return []
        row = self.measure_dataset(step, epoch, "enp_end" if enp_end else point_name(step), phase)
        self.dataset_rows.append(row)
        return [row]

    def _dataset_chunks(self):
        """The training subset in a fixed order, in chunks of `dataset_chunk_size` (the last partial
        chunk dropped, as training drops it), un-augmented, with fixed pairs per chunk: every
        measurement of the run sees the same chunks and pairs. Order and pairs are drawn on the CPU
        and moved to the device once per measurement."""
        g = stream_generator(self.probe.seed, DATASET_STREAM)
        data, size, device = self.probe.data, self.chunk_size, self.probe.x.device
        n = data.num_train // size * size
        order = torch.randperm(data.num_train, generator=g)[:n]
        perms = torch.stack([torch.randperm(size, generator=g) for _ in range(n // size)]).to(device)
        flip = partners(size, "flip", device)

        def chunks():
            for i, (x, y) in enumerate(data.eval_batches("train", size, order)):
                yield x, y, {"permutation": perms[i], "flip": flip}

        return chunks

    def measure_dataset(self, step: int, epoch: int, point: str, phase: Phase) -> dict:
        """Interference over the whole training subset, for every pairing of `dataset_pairings` (a row
        for diagnostics.jsonl; its values go to the summary once read)."""
        kinds = self._kinds(phase)
        variants = self._variants(self.dataset_pairings, kinds)
        start = time.perf_counter()
        clean, results = interference(
            self.probe.model, self._dataset_chunks(), variants, self.num_classes, self.mixer.label_smoothing
        )
        if self.probe.x.is_cuda:  # one wait per dataset measurement, so that its time is real
            torch.cuda.synchronize(self.probe.x.device)
        row: dict = {
            "step": step,
            "epoch": epoch,
            "event": "dataset",
            "point": point,
            "data/num_samples": self.probe.data.num_train // self.chunk_size * self.chunk_size,
            "data/chunk_size": self.chunk_size,
            **self._alphas("data/", kinds),
            "data/clean_sq": clean["clean_sq"],
            "data/clean_sq_unbiased": clean.get("clean_sq_unbiased"),
        }
        for p in self.dataset_pairings:
            row.update(self._combine(f"data/{p}/", p, kinds, results, DATASET_MEASURES))
        row["data/seconds"] = time.perf_counter() - start
        return row

    def summary(self) -> dict:
        """The dataset-scope values by point (`init/data/...`); the monitor has read the rows by now."""
        out = dict(self.earlier_summary)
        for row in self.dataset_rows:
            out.update({f"{row['point']}/{k}": v for k, v in row.items() if k.startswith("data/")})
        return out

    def state_dict(self) -> dict:
        return {"dataset_summary": self.summary()}

    def load_state_dict(self, state: dict) -> None:
        self.earlier_summary, self.dataset_rows = dict(state.get("dataset_summary", {})), []
