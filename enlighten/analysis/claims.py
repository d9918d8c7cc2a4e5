"""The paper's four claims tested under the analysis plan of docs/claims.md (stage 2).

    report = analyse(runs, design, out_dir)      # the tests, per claim, and the figures
    text = render(report, runs, header)          # docs/results/claims.md

Every test takes one number per seed (a paired difference averaged over cells, or a least-squares
slope over cells within the seed), so the seeds are the independent replicates; a t-test over the
seeds gives the effect, its 95% CI and p. Holm's correction runs within each claim. A test is
supported when its Holm-corrected p < 0.05 in the paper's direction, fixed in the plan; contradicted
when the same holds the other way; inconclusive otherwise. A claim is supported only when every test
it ran is (intersection-union). The minimum detectable effect is computed at the Bonferroni level of
the claim's family, the strictest step of Holm's. Runs whose ENP never ended are left out of every
test that needs an ENP end, with their pair. Selections (claim (d)'s best pause length, the premise
cells) read the validation split; the test set gives only the final numbers.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from enlighten.analysis.claims_plan import DOSE, EARLY, LEVEL, LOW, MIXUP, PAUSE, TRAINING, VANILLA, Design
from enlighten.analysis.figures import band, save
from enlighten.analysis.runs import lookup, pairs, read_rows
from enlighten.analysis.stats import TestResult, holm, minimum_detectable_effect, non_inferiority, one_sample, slopes

EXPERIMENTS = (
    "claims/training",
    "claims/interference",
    "claims/interference_mlp",
    "claims/interference_enp",
    "claims/pause_grid",
    "claims/detectors",
)
PAIRINGS = ("permutation", "flip")
THEORY_SLOPE = -0.5
PAPER = {  # the paper's quantitative statements, beside each verdict (../shared/PAPER.md)
    "a": "interference ~ N^-1/2 (slope -1/2 on log N); smaller for larger models",
    "b": "a larger alpha lowers the zero share more during the ENP (no size given)",
    "c": "Pause gains +0.10 (CIFAR-10) to +1.57 points (ViT-S / Tiny-ImageNet)",
    "d": "pause-length effects under 0.5 points; the best ENP length near 50% training accuracy",
}
# What the analysis reads of each run's rows (scripts/claims.py keeps these in the data file).
ROWS = {
    "diagnostics.jsonl": ("step", "event", "diag/zero_act", "diag/zero_act_train"),
    "metrics.jsonl": ("step", "train_acc"),
    "detector.jsonl": ("step", "train_acc"),
}


def wants_rows(run: dict, name: str) -> bool:
    """Which runs' rows the analysis reads: the training sweep's probe rows of the arms claim (b)
    compares, and every training run's learning curves (metrics and detector rows)."""
    if lookup(run, "name") != TRAINING:
        return False
    return name != "diagnostics.jsonl" or lookup(run, "arm") in (VANILLA, LOW, MIXUP)


@dataclass
class Test:
    """One test: what it compares, in which unit, the direction the plan fixed (+1 or -1), the result,
    and for a non-inferiority test its margin. `skip` says why a test was not run."""

    claim: str
    name: str
    unit: str
    expected: int
    result: TestResult
    margin: float | None = None  # a non-inferiority test (claim (d)): "not worse by margin or more"
    skip: str = ""
    family_size: int = 1

    @property
    def verdict(self) -> str:
        r = self.result
        if self.skip or not math.isfinite(r.p_holm):
            return f"not tested ({self.skip})" if self.skip else "not tested"
        significant = r.p_holm < LEVEL
        if self.margin is not None:
            if significant:
                return "supported"
            return "contradicted" if r.ci_high < -self.margin else "inconclusive"
        if significant:
            return "supported" if np.sign(r.effect) == self.expected else "contradicted"
        return "inconclusive"

    @property
    def mde(self) -> float:
        """At the Bonferroni level of the test's family: for a non-inferiority test, the smallest
        margin it meets with 80% power if the difference were 0 (one-sided)."""
        return minimum_detectable_effect(
            self.result.sd, self.result.n, LEVEL / self.family_size, sides=1 if self.margin is not None else 2
        )


@dataclass
class Report:
    tests: list[Test] = field(default_factory=list)
    sections: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    figures: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # claim -> figure files
    enp_share: dict[str, str] = field(default_factory=dict)  # claim -> the ENP's share of the run where it was tested
    prefix: str = "claims"


def untested() -> TestResult:
    return TestResult(0, math.nan, math.nan, math.nan, math.nan, math.nan)


def completed(runs: list[dict], name: str) -> list[dict]:
    return [r for r in runs if r.get("status") == "completed" and lookup(r, "name") == name]


def seed_of(run: dict) -> int:
    return int(lookup(run, "seed"))


def cell_of(run: dict) -> tuple[float, float]:
    return lookup(run, "dataset.fraction"), lookup(run, "model.width")


def fired(run: dict) -> bool:
    return run.get("enp_end_step") is not None


def fmt(x, digits: int = 2, sign: bool = True) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def fmt_p(p: float) -> str:
    if p is None or not math.isfinite(p):
        return "-"
    return f"{p:.4f}" if p >= 1e-4 else f"{p:.0e}"


def ci(t: TestResult, digits: int = 2) -> str:
    return f"{fmt(t.effect, digits)} [{fmt(t.ci_low, digits)}, {fmt(t.ci_high, digits)}]"


def mean_sd(values, digits: int = 2) -> str:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.{digits}f} ± {sd:.{digits}f}"


def by_seed_mean(values: list[tuple[int, tuple, float]]) -> dict[int, float]:
    """(seed, cell, value) -> {seed: the mean over the cells}, over the cells that at least 2 seeds have
    (a cell with fewer is not tested) and the seeds that have every one of them (a seed missing a cell,
    whose run was left out, is left out of the test: its mean would be over other cells)."""
    seeds_of: dict[tuple, set] = defaultdict(set)
    for seed, cell, _ in values:
        seeds_of[cell].add(seed)
    cells = {c for c, ss in seeds_of.items() if len(ss) >= 2}
    grouped: dict[int, dict[tuple, float]] = defaultdict(dict)
    for seed, cell, v in values:
        if cell in cells:
            grouped[seed][cell] = v
    return {s: statistics.fmean(by_cell.values()) for s, by_cell in sorted(grouped.items()) if set(by_cell) == cells}


def per_seed_test(values_by_seed: dict[int, float]) -> TestResult:
    return one_sample([values_by_seed[s] for s in sorted(values_by_seed)]) if values_by_seed else untested()


def per_seed_slopes(points: list[tuple[int, float, dict[str, float]]]) -> dict[str, dict[int, float]]:
    """points: (seed, y, {regressor: value}). Least-squares slopes within each seed, all regressors together."""
    rows: dict[int, list] = defaultdict(list)
    for seed, y, x in points:
        rows[seed].append((y, x))
    out: dict[str, dict[int, float]] = defaultdict(dict)
    for seed, seed_rows in sorted(rows.items()):
        names = seed_rows[0][1].keys()
        coef = slopes([y for y, _ in seed_rows], {n: [x[n] for _, x in seed_rows] for n in names})
        for name, value in (coef or {}).items():  # None: this seed's cells cannot separate the factors
            out[name][seed] = value
    return out


def differences(
    members: list[dict],
    baseline: list[dict],
    key: str = "final_test_acc",
    needs_enp: tuple[bool, bool] = (False, False),
) -> tuple[list[tuple[int, tuple, float]], set[str]]:
    """((seed, cell, member minus baseline in points) for each pair, the directories of the runs left out
    with their pairs because they need an ENP end (`needs_enp`: member, baseline) and have none)."""
    out, dropped = [], set()
    for m, b in pairs(members, baseline, ("arm",)):
        missing = [r["_dir"] for r, needs in ((m, needs_enp[0]), (b, needs_enp[1])) if needs and not fired(r)]
        if missing:
            dropped.update(missing)
            continue
        if m.get(key) is not None and b.get(key) is not None:
            out.append((seed_of(m), cell_of(m), 100 * (m[key] - b[key])))
    return out, dropped


def share_text(runs: list[dict]) -> str:
    """The ENP's share of the run over runs whose ENP ended: mean (min-max) of end step / total steps."""
    shares = [r["enp_end_step"] / r["steps"] for r in runs if fired(r) and r.get("steps")]
    if not shares:
        return "-"
    return f"{100 * statistics.fmean(shares):.1f}% ({100 * min(shares):.1f}-{100 * max(shares):.1f}%)"


def sizes_of(runs: list[dict]) -> dict[float, int]:
    """dataset.fraction -> training images (the runs' num_train)."""
    out: dict[float, int] = {}
    for r in runs:
        if r.get("num_train"):
            out.setdefault(lookup(r, "dataset.fraction"), int(r["num_train"]))
    return out


def cell_name(cell: tuple, sizes: dict[float, int]) -> str:
    f, w = cell
    return f"{sizes[f]:,}/{w}" if f in sizes else f"{f}/{w}"


# ------------------------------------------------------------------------------------------- (a)
def _interference_points(runs: list[dict], point: str, key: str) -> list[tuple[int, float, float, float]]:
    """(seed, N, width, value) of `point/data/permutation/key` where the value is positive."""
    out = []
    for r in runs:
        value, n = r.get(f"{point}/data/permutation/{key}"), r.get(f"{point}/data/num_samples")
        if value is not None and n and math.isfinite(value) and value > 0:
            out.append((seed_of(r), n, lookup(r, "model.width"), value))
    return out


def _noise_model(points: list[tuple[int, float, float, float]]) -> dict[float, TestResult]:
    """Per width: the systematic part r_sys^2 of r^2 = r_sys^2 + c / N, fitted within each seed by least
    squares over the sizes, then the mean over the seeds with its CI."""
    out = {}
    for w in sorted({p[2] for p in points}):
        intercepts = {}
        for seed in sorted({p[0] for p in points}):
            xs = [(1 / n, v * v) for s, n, ww, v in points if s == seed and ww == w]
            if len({x for x, _ in xs}) >= 2:
                slope, intercept = np.polyfit([x for x, _ in xs], [y for _, y in xs], 1)
                intercepts[seed] = float(intercept)
        out[w] = per_seed_test(intercepts)
    return out


def claim_a(runs: list[dict], report: Report, plt=None, out_dir: Path | None = None) -> None:
    """(a) Interference diminishes as the training set and the model grow: the debiased dataset-level r
    at initialization against N and width; the theory's rate on the plain r; secondary: along the ENP
    and without batch norm."""
    lines = report.sections["a"]
    done = completed(runs, "claims/interference")
    debiased = _interference_points(done, "init", "r_perp_clean_debiased")
    plain = _interference_points(done, "init", "r_perp_clean")
    left_out = len([r for r in done if r.get("init/data/num_samples")]) - len(debiased)
    fitted = per_seed_slopes(
        [(s, math.log(v), {"log N": math.log(n), "log width": math.log(w)}) for s, n, w, v in debiased]
    )
    for regressor, label in (("log N", "a1"), ("log width", "a2")):
        report.tests.append(
            Test(
                "a",
                f"{label}: slope of log debiased r on {regressor}",
                "log-log slope",
                -1,
                per_seed_test(fitted.get(regressor, {})),
                skip="" if fitted.get(regressor) else "one level, or no runs",
            )
        )
    report.enp_share["a"] = "at initialization"
    if not done:
        lines.append("No completed run of `claims/interference`.")
        return
    sizes = sorted({n for _, n, _, _ in plain})
    widths = sorted({w for _, _, w, _ in plain})
    lines += [
        "Dataset-level interference at initialization (Mixup alpha 1; the whole training subset in chunks of the "
        "training batch, so N is the subset rounded down to whole chunks), mean ± sd over seeds. `debiased` is the "
        "ratio of the *expected* gradients (the sampling noise removed; the primary outcome), `plain` the ratio as "
        "measured:",
        "",
        "| pairing | measure | width | " + " | ".join(f"N = {n:,.0f}" for n in sizes) + " |",
        "|---|---|---|" + "---|" * len(sizes),
    ]
    for pairing in PAIRINGS:
        for measure, key in (("debiased", "r_perp_clean_debiased"), ("plain", "r_perp_clean")):
            full = f"init/data/{pairing}/{key}"
            for w in widths:
                cells = [
                    mean_sd(
                        [
                            r.get(full)
                            for r in done
                            if lookup(r, "model.width") == w and r.get("init/data/num_samples") == n
                        ],
                        3,
                    )
                    for n in sizes
                ]
                lines.append(f"| {pairing} | {measure} | {w} | " + " | ".join(cells) + " |")
    if left_out:
        lines += [
            "",
            f"{left_out} run(s) had no positive debiased r (its estimate of |g_perp|^2 below 0: no logarithm) "
            f"and are left out of a1 and a2.",
        ]
    every_r = [
        (
            seed_of(r),
            r["init/data/num_samples"],
            lookup(r, "model.width"),
            r["init/data/permutation/r_perp_clean_debiased"],
        )
        for r in done
        if r.get("init/data/num_samples")
        and r.get("init/data/permutation/r_perp_clean_debiased") is not None
        and math.isfinite(r["init/data/permutation/r_perp_clean_debiased"])
    ]
    linear = per_seed_test(
        per_seed_slopes([(s, v, {"log N": math.log(n), "log width": math.log(w)}) for s, n, w, v in every_r]).get(
            "log N", {}
        )
    )
    lines += [
        "",
        f"Sensitivity (no logarithm, every run, a non-positive estimate counted as 0): the debiased r's slope on "
        f"log N is {ci(linear, 4)} per unit of log N (the same fit in r rather than log r).",
    ]
    # The theory's rate, on the plain r (the debiased r has no sampling noise to average out).
    plain_slopes = per_seed_slopes(
        [(s, math.log(v), {"log N": math.log(n), "log width": math.log(w)}) for s, n, w, v in plain]
    ).get("log N", {})
    rate = per_seed_test(plain_slopes)
    against = per_seed_test({s: v - THEORY_SLOPE for s, v in plain_slopes.items()})
    lines += [
        "",
        f"**The theory's rate** (not in the family): the plain r's slope on log N is {ci(rate, 3)}; against the "
        f"theory's {THEORY_SLOPE}, the difference is {ci(against, 3)} (t-test over seeds, p = {fmt_p(against.p)}).",
    ]
    noise = _noise_model(plain)
    lines += [
        "",
        "**The noise model** r^2 = r_sys^2 + c / N (within each seed and width, least squares over the sizes): "
        "the systematic part r_sys^2, mean over seeds [95% CI], and r_sys; the theory puts it at 0:",
        "",
    ]
    lines += [f"- width {w}: r_sys^2 = {ci(t, 4)}, r_sys = {math.sqrt(max(t.effect, 0)):.3f}" for w, t in noise.items()]
    # Secondary: along the ENP (2 sizes) and without batch norm.
    enp = completed(runs, "claims/interference_enp")
    if enp:
        lines += [
            "",
            "**Along Mixup's training** (`claims/interference_enp`, width 0.5; secondary): the debiased r at "
            "initialization, steps 10 and 30, and the ENP end, mean ± sd over seeds, and its slope on log N "
            "within each seed (two sizes), mean [95% CI]:",
            "",
            "| point | "
            + " | ".join(
                f"N = {n:,.0f}"
                for n in sorted({r.get("init/data/num_samples") for r in enp if r.get("init/data/num_samples")})
            )
            + " | slope on log N |",
            "|---|" + "---|" * (1 + len({r.get("init/data/num_samples") for r in enp})),
        ]
        ns = sorted({r.get("init/data/num_samples") for r in enp if r.get("init/data/num_samples")})
        for point in ("init", "step10", "step30", "enp_end"):
            pts = _interference_points(enp, point, "r_perp_clean_debiased")
            cols = [
                mean_sd(
                    [
                        r.get(f"{point}/data/permutation/r_perp_clean_debiased")
                        for r in enp
                        if r.get(f"{point}/data/num_samples") == size
                    ],
                    3,
                )
                for size in ns
            ]
            slope = per_seed_test(
                per_seed_slopes([(s, math.log(v), {"log N": math.log(n)}) for s, n, _, v in pts]).get("log N", {})
            )
            lines.append(f"| {point} | " + " | ".join(cols) + f" | {ci(slope, 3)} |")
        lines += [
            "",
            f"The ENP ended at step {mean_sd([r.get('enp_end_step') for r in enp], 0)} in these runs "
            f"({sum(fired(r) for r in enp)} of {len(enp)}).",
        ]
    mlp = completed(runs, "claims/interference_mlp")
    if mlp:
        pts = _interference_points(mlp, "init", "r_perp_clean_debiased")
        slope = per_seed_test(
            per_seed_slopes([(s, math.log(v), {"log N": math.log(n)}) for s, n, _, v in pts]).get("log N", {})
        )
        ns = sorted({n for _, n, _, _ in pts})
        lines += [
            "",
            "**Without batch norm** (`claims/interference_mlp`, an MLP of 2 x 512 units; secondary): the debiased "
            "r at initialization, "
            + ", ".join(f"N = {n:,.0f}: {mean_sd([v for _, nn, _, v in pts if nn == n], 3)}" for n in ns)
            + f"; slope on log N {ci(slope, 3)}.",
        ]
    if plt is not None and out_dir is not None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
        for ax, (label, pts) in zip(axes, (("debiased r (primary)", debiased), ("plain r", plain))):
            for w in widths:
                xs = sorted({n for _, n, ww, _ in pts if ww == w})
                ys = [[v for _, n, ww, v in pts if ww == w and n == x] for x in xs]
                ax.errorbar(
                    xs,
                    [statistics.fmean(y) for y in ys],
                    yerr=[statistics.stdev(y) if len(y) > 1 else 0 for y in ys],
                    marker="o",
                    capsize=3,
                    label=f"cnn width {w}",
                )
            if mlp and label.startswith("debiased"):
                mp = _interference_points(mlp, "init", "r_perp_clean_debiased")
                xs = sorted({n for _, n, _, _ in mp})
                ax.plot(
                    xs,
                    [statistics.fmean(v for _, nn, _, v in mp if nn == n) for n in xs],
                    "s--",
                    color="gray",
                    label="mlp (no batch norm)",
                )
            if pts:
                x0 = min(n for _, n, _, _ in pts)
                anchor = statistics.fmean(v for _, n, _, v in pts if n == x0)
                ax.plot(sizes, [anchor * (n / x0) ** THEORY_SLOPE for n in sizes], "k:", label="slope -1/2 (theory)")
            ax.set(xscale="log", yscale="log", xlabel="training images N", title=f"{label}, permutation pairing")
            ax.legend(fontsize=8)
        axes[0].set_ylabel("|g_perp| / |g_clean| at initialization")
        report.figures["a"].append(save(fig, out_dir, f"{report.prefix}_interference"))


# ------------------------------------------------------------------------------------------- (b)
def probe_rows(run: dict, key: str = "diag/zero_act") -> dict[int, float]:
    """{step: key} of the run's probe rows (event rows aside)."""
    return {
        row["step"]: row[key]
        for row in read_rows(run, "diagnostics.jsonl")
        if "event" not in row and row.get(key) is not None
    }


def enp_end_row(run: dict, key: str = "diag/zero_act") -> float | None:
    return next((row.get(key) for row in read_rows(run, "diagnostics.jsonl") if row.get("event") == "enp_end"), None)


def claim_b(runs: list[dict], report: Report, plt=None, out_dir: Path | None = None, cells=None) -> None:
    """(b) Mixup lowers the share of zero activations during the ENP, more with a larger alpha."""
    lines = report.sections["b"]
    train = [r for r in completed(runs, TRAINING) if cells is None or cell_of(r) in cells]
    arm = {a: [r for r in train if lookup(r, "arm") == a] for a in (VANILLA, LOW, MIXUP)}
    low = {id(v): m for m, v in pairs(arm[LOW], arm[VANILLA], ("arm",))}
    high = {id(v): m for m, v in pairs(arm[MIXUP], arm[VANILLA], ("arm",))}
    windows = ("ENP (primary)", "after the ENP", "matched progress (each run's ENP end)", "ENP, train mode")
    diffs = {w: {k: [] for k in ("high", "low", "high-low")} for w in windows}
    table: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    skipped = 0
    for v in arm[VANILLA]:
        if id(v) not in low or id(v) not in high or not fired(v):
            skipped += 1
            continue
        end, runs3 = v["enp_end_step"], {"vanilla": v, "low": low[id(v)], "high": high[id(v)]}
        values: dict[str, dict[str, float]] = {}
        for window in windows:
            key = "diag/zero_act_train" if window.endswith("train mode") else "diag/zero_act"
            if window.startswith("matched"):
                got = {k: enp_end_row(r) for k, r in runs3.items()}
                if any(x is None for x in got.values()):
                    continue
                values[window] = {k: 100 * x for k, x in got.items()}
                continue
            series = {k: probe_rows(r, key) for k, r in runs3.items()}
            inside = (lambda s: 10 <= s <= end) if window.startswith("ENP") else (lambda s: s > end)
            steps = [s for s in sorted(series["vanilla"]) if inside(s) and all(s in x for x in series.values())]
            if steps:
                values[window] = {k: 100 * statistics.fmean(x[s] for s in steps) for k, x in series.items()}
        if windows[0] not in values:
            skipped += 1
            continue
        seed = seed_of(v)
        for window, w in values.items():
            diffs[window]["high"].append((seed, cell_of(v), w["high"] - w["vanilla"]))
            diffs[window]["low"].append((seed, cell_of(v), w["low"] - w["vanilla"]))
            diffs[window]["high-low"].append((seed, cell_of(v), w["high"] - w["low"]))
        for k, x in values[windows[0]].items():
            table[cell_of(v)][k].append(x)
        table[cell_of(v)]["end"].append(end)
    unit = "points of zero share"
    primary = {k: per_seed_test(by_seed_mean(d)) for k, d in diffs[windows[0]].items()}
    for label, key, name in (
        ("b1", "high", "Mixup 1 minus vanilla"),
        ("b2", "low", "Mixup 0.2 minus vanilla"),
        ("b3", "high-low", "Mixup 1 minus Mixup 0.2"),
    ):
        report.tests.append(
            Test(
                "b",
                f"{label}: {name}, zero share in the ENP (steps 10 to vanilla's ENP end)",
                unit,
                -1,
                primary[key],
                skip="" if diffs[windows[0]][key] else "no runs",
            )
        )
    report.enp_share["b"] = share_text(arm[VANILLA])
    sizes = sizes_of(train)
    lines += [
        "Share of post-ReLU activations equal to 0 on the clean 64-image probe (`diag/zero_act`, eval mode, %), "
        "averaged over the probe rows from step 10 to the step where the *vanilla* run of the same cell and seed "
        "left the ENP (the same steps for the three arms), mean ± sd over seeds:"
        + (
            f" ({skipped} vanilla run(s) without both Mixup partners, an ENP end or rows in the window were left out)"
            if skipped
            else ""
        ),
        "",
        "| images/width | vanilla ENP end (step) | vanilla | Mixup 0.2 | Mixup 1 |",
        "|---|---|---|---|---|",
    ]
    for cell in sorted(table):
        c = table[cell]
        lines.append(
            f"| {cell_name(cell, sizes)} | {mean_sd(c['end'], 0)} | {mean_sd(c['vanilla'], 1)} | "
            f"{mean_sd(c['low'], 1)} | {mean_sd(c['high'], 1)} |"
        )
    lines += [
        "",
        "Every window, the differences averaged over the cells within each seed, mean [95% CI] over the seeds "
        "(the first row is b1-b3; the others are secondary, outside the family):",
        "",
        "| window | Mixup 1 - vanilla | Mixup 0.2 - vanilla | Mixup 1 - Mixup 0.2 | seeds |",
        "|---|---|---|---|---|",
    ]
    for window in windows:
        t = {k: per_seed_test(by_seed_mean(d)) for k, d in diffs[window].items()}
        lines.append(f"| {window} | {ci(t['high'])} | {ci(t['low'])} | {ci(t['high-low'])} | {t['high'].n} |")
    if plt is not None and out_dir is not None and train:
        fraction = min(f for f, _ in table) if table else min(lookup(r, "dataset.fraction") for r in train)
        widths = sorted({w for f, w in table if f == fraction}) or sorted({lookup(r, "model.width") for r in train})
        fig, axes = plt.subplots(1, len(widths), figsize=(4.5 * len(widths), 3.8), sharey=True, squeeze=False)
        for ax, w in zip(axes[0], widths):
            for a, label in ((VANILLA, "vanilla"), (LOW, "Mixup alpha 0.2"), (MIXUP, "Mixup alpha 1")):
                members = [r for r in arm[a] if cell_of(r) == (fraction, w)]
                band(ax, [probe_rows(r) for r in members], label, scale=100)
            ends = [r["enp_end_step"] for r in arm[VANILLA] if cell_of(r) == (fraction, w) and fired(r)]
            if ends:
                ax.axvline(statistics.fmean(ends), color="k", ls=":", label="vanilla ENP end")
            ax.set(xscale="symlog", xlabel="step", title=f"{cell_name((fraction, w), sizes)} (images/width)")
            ax.legend(fontsize=8)
        axes[0][0].set_ylabel("zero activations, eval mode (%)")
        report.figures["b"].append(save(fig, out_dir, f"{report.prefix}_activations"))


# ------------------------------------------------------------------------------------------- (c)
def claim_c(runs: list[dict], report: Report, plt=None, out_dir: Path | None = None, premise=None) -> None:
    """(c) Mixup Pause beats Mixup at small scale, and the gain shrinks as the dataset or the model grows:
    in the premise cells (where Mixup beats vanilla on validation, fixed by stage 1)."""
    lines = report.sections["c"]
    train = completed(runs, TRAINING)
    premise = sorted(premise if premise is not None else {cell_of(r) for r in train})
    arm = lambda a: [r for r in train if lookup(r, "arm") == a and cell_of(r) in premise]  # noqa: E731
    sizes = sizes_of(train)
    comparisons = [
        ("c1", "Pause minus Mixup 1", MIXUP, (True, False)),
        ("c2", "Pause minus the dose-matched control (the ENP-specific part)", DOSE, (True, True)),
        ("c3", "Pause minus vanilla", VANILLA, (True, False)),
    ]
    gains, dropped = {}, {}
    for label, name, baseline, needs in comparisons:
        gains[label], dropped[label] = differences(arm(PAUSE), arm(baseline), needs_enp=needs)
        report.tests.append(
            Test(
                "c",
                f"{label}: {name}, final test accuracy, mean over the premise cells",
                "points",
                +1,
                per_seed_test(by_seed_mean(gains[label])),
                skip="" if premise and gains[label] else ("no premise cell" if not premise else "no pairs"),
            )
        )
    complete = set(by_seed_mean(gains["c1"]))  # the seeds with every premise cell (as c1 uses them)
    fitted = per_seed_slopes(
        [(s, g, {"log N": math.log(c[0]), "log width": math.log(c[1])}) for s, c, g in gains["c1"] if s in complete]
    )
    for label, regressor in (("c4", "log N"), ("c5", "log width")):
        report.tests.append(
            Test(
                "c",
                f"{label}: slope of the Pause - Mixup gain on {regressor} (the gain shrinks)",
                f"points per unit of {regressor}",
                -1,
                per_seed_test(fitted.get(regressor, {})),
                skip="" if fitted.get(regressor) else "one level among the premise cells",
            )
        )
    report.enp_share["c"] = share_text(arm(PAUSE))
    left_out = len(set().union(*dropped.values()))
    lines += [
        "Premise cells (Mixup 1 beats vanilla on the validation split in stage 1, CI above 0): "
        + (", ".join(cell_name(c, sizes) for c in premise) or "none")
        + " (images/width)."
        + (
            f" {left_out} Pause or dose-matched run(s) never left the ENP: they and their pairs are left out."
            if left_out
            else ""
        ),
        "",
        "Final test accuracy (%) per cell, mean ± sd over seeds (all cells; the tests read the premise cells), "
        "and the paired differences (same cell and seed) with 95% CIs. The premise column also gives Mixup 1 minus "
        "vanilla on the validation split over every seed, with the number of seeds (the premise recomputed; the "
        "tests keep stage 1's premise cells):",
        "",
        "| images/width | premise | vanilla | Mixup 0.2 | Mixup 1 | Pause | dose-matched | early | Pause - Mixup 1 "
        "| Pause - dose-matched | Early - vanilla |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    every = lambda a: [r for r in train if lookup(r, "arm") == a]  # noqa: E731
    per_cell = {label: differences(every(PAUSE), every(b), needs_enp=n)[0] for label, _, b, n in comparisons}
    per_cell["early"] = differences(every(EARLY), every(VANILLA), needs_enp=(True, False))[0]
    recomputed = {}  # the premise on every seed's validation accuracy (the tests keep stage 1's premise cells)
    for cell in sorted({cell_of(r) for r in train}):
        recomputed[cell] = one_sample(
            [g for _, c, g in differences(every(MIXUP), every(VANILLA), "final_val_acc")[0] if c == cell]
        )
    cell_ci = {}
    for cell in sorted({cell_of(r) for r in train}):

        def acc(a):
            return mean_sd(
                [
                    100 * r["final_test_acc"]
                    for r in every(a)
                    if cell_of(r) == cell and r.get("final_test_acc") is not None
                ]
            )

        def gain(label):
            return one_sample([g for _, c, g in per_cell[label] if c == cell])

        cell_ci[cell] = {k: gain(k) for k in ("c1", "c2", "early")}
        again = recomputed[cell]
        lines.append(
            f"| {cell_name(cell, sizes)} | {'yes' if cell in premise else 'no'} ({ci(again)}, {again.n}) | "
            f"{acc(VANILLA)} | {acc(LOW)} | "
            f"{acc(MIXUP)} | {acc(PAUSE)} | {acc(DOSE)} | {acc(EARLY)} | {ci(cell_ci[cell]['c1'])} | "
            f"{ci(cell_ci[cell]['c2'])} | {ci(cell_ci[cell]['early'])} |"
        )
    lines += [
        "",
        "Per-cell CIs are descriptive. c4 and c5 are tested only when c1 is supported (a gain that is not there "
        "cannot shrink). Early minus vanilla is the effect of mixing in the ENP alone on an otherwise un-mixed run.",
    ]
    if plt is not None and out_dir is not None and cell_ci:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
        for ax, (key, title) in zip(axes, (("c1", "Pause - Mixup 1"), ("c2", "Pause - dose-matched"))):
            widths = sorted({w for _, w in cell_ci})
            for i, w in enumerate(widths):
                fs = [
                    f for f in sorted(f for f, ww in cell_ci if ww == w) if math.isfinite(cell_ci[(f, w)][key].effect)
                ]
                t = [cell_ci[(f, w)][key] for f in fs]
                x = [sizes.get(f, f) * (1 + 0.05 * (i - 1)) for f in fs]
                if fs:
                    ax.errorbar(
                        x,
                        [r.effect for r in t],
                        yerr=[
                            [r.effect - r.ci_low if math.isfinite(r.ci_low) else 0 for r in t],
                            [r.ci_high - r.effect if math.isfinite(r.ci_high) else 0 for r in t],
                        ],
                        marker="o",
                        capsize=3,
                        label=f"width {w}",
                    )
            ax.axhline(0, color="k", lw=0.8)
            ax.set(xlabel="training images", title=f"{title} (final test accuracy, 95% CI)")
            if ax.lines[1:]:  # a point to draw besides the zero line
                ax.set_xscale("log")
                ax.legend(fontsize=8)
        axes[0].set_ylabel("points")
        report.figures["c"].append(save(fig, out_dir, f"{report.prefix}_pause_gain"))


# ------------------------------------------------------------------------------------------- (d)
DETECTORS = {"50% accuracy": (TRAINING, "accuracy"), "chance-adjusted": ("claims/detectors", "chance_adjusted")}


def claim_d(runs: list[dict], report: Report, plt=None, out_dir: Path | None = None) -> None:
    """(d) The detected ENP end matches the best fixed pause length, chosen on the validation split with
    one seed left out, with a margin of half the best pause's gain over Mixup."""
    lines = report.sections["d"]
    grid_runs = completed(runs, "claims/pause_grid")
    train = completed(runs, TRAINING)
    sizes = sizes_of(runs)
    if not grid_runs:
        lines.append("No completed run of `claims/pause_grid`.")
        report.tests.append(
            Test("d", "detectors against the fixed pause lengths", "points", 0, untested(), margin=0.0, skip="no runs")
        )
        return
    shares = []
    for cell in sorted({cell_of(r) for r in grid_runs}):
        at = lambda rs: [r for r in rs if cell_of(r) == cell]  # noqa: E731
        grid: dict[int, list[dict]] = defaultdict(list)  # pause length (steps) -> runs
        for r in at(grid_runs):  # a fixed pause ends where the ENP does (phase=fraction)
            grid[r.get("enp_end_step") or math.ceil(lookup(r, "phase.fraction") * r["steps"])].append(r)
        mixup = [r for r in at(train) if lookup(r, "arm") == MIXUP]
        vanilla = [r for r in at(train) if lookup(r, "arm") == VANILLA]
        val = lambda r: 100 * r["final_val_acc"]  # noqa: E731
        test = lambda r: 100 * r["final_test_acc"]  # noqa: E731
        val_at = {(n, seed_of(r)): val(r) for n, rs in grid.items() for r in rs}

        def best(leave_out: int | None = None) -> int | None:
            """The length with the best mean validation accuracy over the seeds, `leave_out` aside."""
            means = {
                n: statistics.fmean(val(r) for r in rs if seed_of(r) != leave_out)
                for n, rs in grid.items()
                if any(seed_of(r) != leave_out for r in rs)
            }
            return max(means, key=means.get) if means else None

        def loso(reference: list[dict]) -> TestResult:
            """Per seed: its validation accuracy at the length best on the *other* seeds, minus the
            reference run's (Mixup's, vanilla's) of that seed: an unbiased gain of choosing a length."""
            ref = {seed_of(r): val(r) for r in reference}
            return one_sample(
                [val_at[(b, s)] - ref[s] for s in sorted(ref) if (b := best(s)) is not None and (b, s) in val_at]
            )

        top = best()
        seeds = sorted({seed_of(r) for rs in grid.values() for r in rs})
        gain, over_vanilla = loso(mixup), loso(vanilla)
        margin = gain.effect / 2 if math.isfinite(gain.effect) else math.nan
        flags = []
        if not (math.isfinite(gain.ci_low) and gain.ci_low > 0):
            flags.append(f"the best fixed pause does not beat Mixup on validation (gain {ci(gain)})")
        if vanilla and not over_vanilla.effect > 0:
            flags.append(f"vanilla is at least as good as the best fixed pause on validation ({ci(over_vanilla)})")
        if top == max(grid):
            flags.append("the best length is the grid's longest")
        name = cell_name(cell, sizes)
        lines += [
            f"**{name} (images/width).** Mixup Pause with the pause fixed at each length, Mixup 1 (length 0), "
            f"vanilla (never mixing) and the detectors' pauses; final accuracy (%), mean ± sd over seeds:",
            "",
            "| pause | steps | runs | validation | test |",
            "|---|---|---|---|---|",
            f"| none (Mixup 1) | 0 | {len(mixup)} | {mean_sd([val(r) for r in mixup])} "
            f"| {mean_sd([test(r) for r in mixup])} |",
        ]
        for n in sorted(grid):
            mark = " (best on validation)" if n == top else ""
            lines.append(
                f"| fixed{mark} | {n} | {len(grid[n])} | {mean_sd([val(r) for r in grid[n]])} | "
                f"{mean_sd([test(r) for r in grid[n]])} |"
            )
        if vanilla:
            lines.append(
                f"| vanilla | all | {len(vanilla)} | {mean_sd([val(r) for r in vanilla])} | "
                f"{mean_sd([test(r) for r in vanilla])} |"
            )
        detected_ends = []
        for det, (experiment, choice) in DETECTORS.items():
            rs = [
                r
                for r in at(completed(runs, experiment))
                if lookup(r, "arm") == PAUSE and r.get("choices", {}).get("phase") == choice
            ]
            ended = [r for r in rs if fired(r)]
            ends = [r["enp_end_step"] for r in ended]
            detected_ends += ends
            shares += [r["enp_end_step"] / r["steps"] for r in ended]
            where = f"{statistics.fmean(ends):.0f} ({min(ends)}-{max(ends)})" if ends else "never ended"
            lines.append(
                f"| {det} detector | {where} | {len(rs)} ({len(ended)} ended) | {mean_sd([val(r) for r in rs])} | "
                f"{mean_sd([test(r) for r in rs])} |"
            )
            keys = ("experiment", "name", "phase", "arm")
            matched = [
                p
                for m in ended
                for p in pairs([m], [g for g in grid.get(best(seed_of(m)), []) if seed_of(g) == seed_of(m)], keys)
            ]
            if len(matched) < len(ended):
                lines.append(
                    f"| ({det}: {len(ended) - len(matched)} run(s) without a grid run of their seed at the "
                    f"length chosen for it, left out) | | | | |"
                )
            result = (
                non_inferiority([test(m) for m, _ in matched], [test(b) for _, b in matched], margin)
                if matched and math.isfinite(margin) and margin > 0
                else untested()
            )
            skip = (
                ("premise fails: " + "; ".join(flags))
                if flags
                else ("" if matched else "no detector run left the ENP" if not ended else "no pairs")
            )
            report.tests.append(
                Test(
                    "d",
                    f"{det} detector minus the best fixed pause at {name} (non-inferiority, "
                    f"margin {fmt(margin, 2, False)})",
                    "points",
                    +1,
                    result,
                    margin=margin,
                    skip=skip,
                )
            )
        ratio = f"{top / statistics.fmean(detected_ends):.1f}x the mean detected end" if detected_ends else "-"
        lines += [
            "",
            f"Best fixed length on validation: {top} steps ({ratio}). Chosen for each seed on the *other* seeds' "
            f"validation accuracy ({len(seeds)} seeds), the best pause gains {ci(gain)} points over Mixup 1 on "
            f"that seed's validation accuracy (mean [95% CI] over seeds) and {ci(over_vanilla)} over vanilla, so "
            f"the margin is {fmt(margin, 2, False)} points. Each seed's detector run is compared with that seed's "
            f"run at its chosen length, on the test set."
            + (f" **Premise flag**: {'; '.join(flags)}." if flags else ""),
            "",
        ]
        if plt is not None and out_dir is not None:
            fig, ax = plt.subplots(figsize=(6, 4))
            xs = [0] + sorted(grid)
            for which, fn, style in (("validation", val, "o-"), ("test", test, "s--")):
                ys = [[fn(r) for r in mixup]] + [[fn(r) for r in grid[n]] for n in sorted(grid)]
                ok = [(x, y) for x, y in zip(xs, ys) if y]
                ax.errorbar(
                    [x for x, _ in ok],
                    [statistics.fmean(y) for _, y in ok],
                    yerr=[statistics.stdev(y) if len(y) > 1 else 0 for _, y in ok],
                    fmt=style,
                    capsize=3,
                    label=f"fixed pause ({which}; 0: Mixup 1)",
                )
            if detected_ends:
                ax.axvspan(min(detected_ends), max(detected_ends), color="C2", alpha=0.2, label="detected ENP ends")
            if vanilla:
                ax.axhline(
                    statistics.fmean(val(r) for r in vanilla), color="gray", ls=":", label="vanilla (validation)"
                )
            ax.set_xscale("symlog", linthresh=10)
            ax.set(
                xlabel="pause length (steps)",
                ylabel="final accuracy (%)",
                title=f"pause length at {name} (images/width)",
            )
            ax.legend(fontsize=7)
            report.figures["d"].append(save(fig, out_dir, f"{report.prefix}_pause_grid_{sizes.get(cell[0], cell[0])}"))
            learning_curves(
                at(train), name, report, plt, out_dir, f"{report.prefix}_learning_curves_{sizes.get(cell[0], cell[0])}"
            )
    report.enp_share["d"] = (
        f"{100 * statistics.fmean(shares):.1f}% ({100 * min(shares):.1f}-{100 * max(shares):.1f}%)" if shares else "-"
    )


def learning_curves(train: list[dict], name: str, report: Report, plt, out_dir: Path, stem: str) -> None:
    """Clean training accuracy against step per arm, with seed bands and each arm's mean ENP end: the
    detector's probe by step while it measured, then the per-epoch probe."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for a in (VANILLA, LOW, MIXUP, PAUSE, DOSE, EARLY):
        members = [r for r in train if lookup(r, "arm") == a]
        curves = [
            {
                **{row["step"]: row["train_acc"] for row in read_rows(r, "metrics.jsonl")},
                **{row["step"]: row["train_acc"] for row in read_rows(r, "detector.jsonl") if "train_acc" in row},
            }
            for r in members
        ]
        band(ax, curves, a, scale=100, every_run=False)
        ends = [r["enp_end_step"] for r in members if fired(r)]
        if ends and ax.lines:
            ax.axvline(statistics.fmean(ends), color=ax.lines[-1].get_color(), ls=":", lw=1)
    ax.set(
        xscale="symlog",
        xlabel="step",
        ylabel="clean training accuracy (%)",
        title=f"learning curves at {name} (dotted: mean ENP end)",
    )
    if ax.lines:
        ax.legend(fontsize=8)
    report.figures["d"].append(save(fig, out_dir, stem))


# ------------------------------------------------------------------------------------ the report
CLAIM_TITLES = {
    "a": "(a) Interference diminishes as the training set and the model grow",
    "b": "(b) Mixup lowers the share of zero activations during the ENP, more with a larger alpha",
    "c": "(c) Mixup Pause beats Mixup at small scale, and the gain shrinks with scale",
    "d": "(d) The detected ENP end matches the best fixed pause length",
}


def finish(report: Report) -> None:
    """Holm within each claim over the tests that ran (c4 and c5 included, as planned, also when the
    gate then leaves them untested: conservative for c1), each test's family size, and the gate."""
    for claim in "abcd":
        family = [t for t in report.tests if t.claim == claim]
        ran = [t for t in family if not t.skip and math.isfinite(t.result.p)]
        for t, p in zip(family, holm([t.result.p if t in ran else math.nan for t in family])):
            t.result.p_holm, t.family_size = p, max(1, len(ran))
    c1 = next((t for t in report.tests if t.name.startswith("c1")), None)
    if c1 is not None and c1.verdict != "supported":
        for t in report.tests:
            if t.name.startswith(("c4", "c5")) and not t.skip:
                t.skip = "c1 not supported: no gain to shrink"


def claim_verdict(tests: list[Test]) -> str:
    """Intersection-union: supported only when every test of the claim ran and is supported; "supported
    where tested" when those that ran are and some did not run."""
    ran = [t.verdict for t in tests if not t.verdict.startswith("not tested")]
    note = f" ({len(tests) - len(ran)} of {len(tests)} tests not run)" if len(ran) < len(tests) else ""
    if not ran:
        return "not tested"
    if all(v == "supported" for v in ran):
        verdict = "supported" if not note else "supported where tested"
    elif "contradicted" in ran:
        verdict = "mixed" if "supported" in ran else "contradicted"
    else:
        verdict = "partly supported" if "supported" in ran else "inconclusive"
    return verdict + note


def analyse(
    runs: list[dict], design: Design | None = None, out_dir: Path | None = None, prefix: str = "claims"
) -> Report:
    """The four claims on the runs (duplicates already refused) under stage 1's `design` (its cells and
    premise cells; without one, every cell); figures into out_dir as <prefix>_<what>.png."""
    plt = None
    if out_dir is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    report = Report(prefix=prefix)
    cells = set(design.cells) if design else None
    claim_a(runs, report, plt, out_dir)
    claim_b(runs, report, plt, out_dir, cells=cells)
    claim_c(runs, report, plt, out_dir, premise=[tuple(c) for c in design.premise_cells] if design else None)
    claim_d(runs, report, plt, out_dir)
    finish(report)
    if plt is not None:
        plt.close("all")
    return report


def detector_table(runs: list[dict]) -> list[str]:
    """Where the detectors fired: per sweep, detector, cell and arm, how many runs left the ENP and where."""
    cells: dict[tuple, list[dict]] = defaultdict(list)
    for r in runs:
        if r.get("status") == "completed" and lookup(r, "name") in (
            TRAINING,
            "claims/detectors",
            "claims/interference_enp",
        ):
            cells[(lookup(r, "name"), r.get("choices", {}).get("phase"), *cell_of(r), lookup(r, "arm"))].append(r)
    sizes = sizes_of(runs)
    lines = [
        "| sweep | detector | images/width | arm | ENP ended | end step: mean (min-max) | share of the run | "
        "clean train acc there |",
        "|---|---|---|---|---|---|---|---|",
    ]
    never = 0
    for key in sorted(cells, key=str):
        rs = cells[key]
        ends = [r["enp_end_step"] for r in rs if fired(r)]
        never += len(rs) - len(ends)
        where = f"{statistics.fmean(ends):.0f} ({min(ends)}-{max(ends)})" if ends else "-"
        acc = mean_sd(
            [100 * r["enp_end_train_acc"] for r in rs if fired(r) and r.get("enp_end_train_acc") is not None], 1
        )
        lines.append(
            f"| {key[0].split('/')[-1]} | {key[1]} | {cell_name(key[2:4], sizes)} | {key[4]} | {len(ends)}/{len(rs)} "
            f"| {where} | {share_text(rs)} | {acc} |"
        )
    total = sum(len(rs) for rs in cells.values())
    head = (
        f"The ENP ended in all but {never} of the {total} runs with a detector."
        if never
        else f"The ENP ended in all {total} runs with a detector."
    )
    return [head, ""] + lines


def render(
    report: Report, runs: list[dict], header: list[str], deviations: list[str] = (), footer: list[str] = ()
) -> str:
    """The markdown report: the header, the verdicts, the deviations from the plan, one section per
    claim, where the detectors fired, and the runs left out."""
    out = list(header) + [
        "",
        "## Verdicts",
        "",
        "| claim | verdict | ENP share | the paper | test | effect [95% CI] | p | p (Holm, within the "
        "claim) | min. detectable | seeds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for claim in "abcd":
        tests = [t for t in report.tests if t.claim == claim]
        for i, t in enumerate(tests):
            r = t.result
            first = (
                (claim, claim_verdict(tests), report.enp_share.get(claim, "-"), PAPER[claim]) if i == 0 else ("",) * 4
            )
            out.append(
                f"| {' | '.join(first)} | {t.name} ({t.unit}): **{t.verdict}** | "
                f"{ci(r, 3)} | {fmt_p(r.p)} | {fmt_p(r.p_holm)} | {fmt(t.mde, 3, False)} | {r.n} |"
            )
    out += [
        "",
        "Holm's correction runs within each claim; a claim is supported only when all its tests ran and are "
        'supported (intersection-union; "supported where tested" when those that ran are and others did not run). '
        "The minimum detectable effect is the mean a t-test over these seeds finds with 80% "
        "power at the Bonferroni level 0.05/m of the claim's m tests, given the observed spread; for (d) it is "
        "the smallest non-inferiority margin the design meets with 80% power (one-sided). The ENP share is the "
        "ENP's end step over the run's steps (mean, min-max) in the runs the claim's tests use.",
    ]
    if deviations:
        out += ["", "## Deviations from the plan", "", *deviations]
    for claim in "abcd":
        section = list(report.sections.get(claim, []))
        while section and not section[-1]:
            section.pop()
        out += ["", f"## {CLAIM_TITLES[claim]}", "", *section]
        out += (
            ["", *(f"![{claim}]({name})" for name in report.figures.get(claim, []))]
            if report.figures.get(claim)
            else []
        )
    out += ["", "## Where the detectors fired", "", *detector_table(runs)]
    failed = [r for r in runs if r.get("status") != "completed"]
    if failed:
        out += ["", "## Runs not in the analysis", ""] + [
            f"- {r.get('status')}: {r['_dir']} ({r.get('error')})" for r in failed
        ]
    if footer:
        out += ["", *footer]
    return "\n".join(out) + "\n"
