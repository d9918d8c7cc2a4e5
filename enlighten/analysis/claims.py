"""The paper's four claims (../shared/PAPER.md) tested on the claims sweeps (conf/experiment/claims/).

    python scripts/claims.py               # the sweeps, then this report (docs/claims.md)

Every test takes one number per seed, so the seeds are the independent replicates: a statistic is
computed within each seed (a mean over cells, a least-squares slope over cells), then a t-test over
the seeds gives the mean, its 95% CI and p. Runs of different cells that share a seed share their
initial weights, so pooling cells as if independent would overstate the evidence. The p-values of
the whole report are corrected together (Holm). A verdict follows from the test's direction:

- supported: Holm-corrected p < 0.05 in the paper's direction;
- contradicted: Holm-corrected p < 0.05 in the opposite direction;
- inconclusive at this scale: neither; the minimum detectable effect (80% power) says how large an
  effect could have gone unseen.

Claim (d) asks whether two things match, so its test is the other way round: each seed's detector
run against that seed's run at the fixed pause length that is best on the other seeds; supported
when a one-sided non-inferiority test (the detector not worse by EQUIVALENCE_MARGIN points or more)
is significant after Holm, contradicted when the whole 95% CI lies below -EQUIVALENCE_MARGIN.
A test the runs cannot support (a factor with one level, no pairs) is listed as not tested.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from enlighten.analysis.figures import band, save
from enlighten.analysis.runs import lookup, pairs, read_rows
from enlighten.analysis.stats import TestResult, holm, non_inferiority, one_sample, slopes

EXPERIMENTS = ("claims/interference", "claims/training", "claims/pause_grid", "claims/detectors")
PAIRINGS = ("permutation", "flip")
BASE_ARM, PAUSE_ARM, LOW_ARM, BOOST_ARM, VANILLA = "mixup_a1", "pause_a1", "mixup_a0.2", "boost_a0.2_to_1", "vanilla"
EQUIVALENCE_MARGIN = 0.5  # points: the paper's pause-length ablation moved accuracy by less than this
LEVEL = 0.05


@dataclass
class Test:
    """One test of the report: what it compares, in which unit, the direction the paper predicts
    (+1, -1, or 0 for a comparison the paper makes no claim about) and the result."""

    claim: str
    name: str
    unit: str
    expected: int
    result: TestResult
    equivalence: bool = False  # claim (d): "matches" rather than "differs"

    @property
    def verdict(self) -> str:
        r, significant = self.result, self.result.p_holm < LEVEL
        if not math.isfinite(r.p_holm):
            return "not tested"
        if self.equivalence:
            if significant:
                return "supported"
            return "contradicted" if r.ci_high < -EQUIVALENCE_MARGIN else "inconclusive at this scale"
        if self.expected == 0:
            return "differs" if significant else "no difference detected"
        if significant:
            return "supported" if np.sign(r.effect) == self.expected else "contradicted"
        return "inconclusive at this scale"


@dataclass
class Report:
    tests: list[Test] = field(default_factory=list)
    sections: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    figures: dict[str, str] = field(default_factory=dict)  # claim -> figure file name
    prefix: str = "claims"  # figure files: <prefix>_<what>.png


def untested() -> TestResult:
    """The placeholder of a test the runs could not support (a factor with one level, no pairs)."""
    return TestResult(0, math.nan, math.nan, math.nan, math.nan, math.nan)


def completed(runs: list[dict], name: str) -> list[dict]:
    return [r for r in runs if r.get("status") == "completed" and lookup(r, "name") == name]


def seed_of(run: dict) -> int:
    return int(lookup(run, "seed"))


def fmt(x: float, digits: int = 2, sign: bool = True) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def fmt_p(p: float) -> str:
    if p is None or not math.isfinite(p):
        return "-"
    return f"{p:.4f}" if p >= 1e-4 else f"{p:.0e}"


def mean_sd(values, digits: int = 3) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.{digits}f} ± {sd:.{digits}f}"


def per_seed_test(values_by_seed: dict[int, float]) -> TestResult:
    return one_sample([values_by_seed[s] for s in sorted(values_by_seed)])


def per_seed_slopes(points: list[tuple[int, float, dict[str, float]]]) -> dict[str, dict[int, float]]:
    """points: (seed, y, {regressor: value}). Least-squares slopes within each seed."""
    by_seed: dict[int, list] = defaultdict(list)
    for seed, y, x in points:
        by_seed[seed].append((y, x))
    out: dict[str, dict[int, float]] = defaultdict(dict)
    for seed, rows in by_seed.items():
        names = rows[0][1].keys()
        coef = slopes([y for y, _ in rows], {n: [x[n] for _, x in rows] for n in names})
        for name, value in (coef or {}).items():  # None: this seed's cells cannot separate the factors
            out[name][seed] = value
    return out


# ------------------------------------------------------------------------------------------- (a)
def claim_a(runs: list[dict], report: Report, plt=None, out_dir: Path | None = None) -> None:
    """(a) The interference ratio r falls as the training set grows (theory: about N^-1/2) and as
    the model grows: r over the whole training subset at initialization, both pairings."""
    keys = [f"init/data/{p}/r_perp_clean" for p in PAIRINGS] + ["init/data/num_samples"]
    done = [r for r in completed(runs, "claims/interference") if all((r.get(k) or 0) > 0 for k in keys)]
    lines = report.sections["a"]
    if not done:
        lines.append("No completed run of `claims/interference` with the dataset-scope measurements.")
        report.tests.append(Test("a", "interference against size and width", "log-log slope", -1, untested()))
        return
    widths = sorted({lookup(r, "model.width") for r in done})
    sizes = sorted({r["init/data/num_samples"] for r in done})
    lines += ["Gradient interference `r_perp_clean` (|g_perp| / |g_clean|, the expectation over lambda ~ Beta(alpha, "
              "alpha)) of the training subset at initialization (in whole chunks of the training batch: N is the subset "
              "rounded down), mean ± sd over seeds:", "",
              "| pairing | width | " + " | ".join(f"N = {n:,}" for n in sizes) + " |",
              "|---|---|" + "---|" * len(sizes)]
    for pairing in PAIRINGS:
        key = f"init/data/{pairing}/r_perp_clean"
        for w in widths:
            cells = [mean_sd([r[key] for r in done if lookup(r, "model.width") == w and r["init/data/num_samples"] == n])
                     for n in sizes]
            lines.append(f"| {pairing} | {w} | " + " | ".join(cells) + " |")
        points = [(seed_of(r), math.log(r[key]), {"log N": math.log(r["init/data/num_samples"]),
                                                  "log width": math.log(lookup(r, "model.width"))}) for r in done]
        fitted = per_seed_slopes(points)
        for regressor in ("log N", "log width"):
            report.tests.append(Test("a", f"{pairing} pairing: slope of log r on {regressor}", "log-log slope", -1,
                                     per_seed_test(fitted[regressor]) if regressor in fitted else untested()))
    lines += ["", "Slopes: within each seed, least squares of log r on log N and log width together; the t-test "
              "is over the seeds' slopes. The theory's slope on log N is -1/2:"]
    for t in report.tests:
        if t.claim == "a" and t.name.endswith("log N") and math.isfinite(t.result.ci_low):
            inside = t.result.ci_low <= -0.5 <= t.result.ci_high
            lines.append(f"- {t.name.split(':')[0]}: {fmt(t.result.effect, 3)} [{fmt(t.result.ci_low, 3)}, "
                         f"{fmt(t.result.ci_high, 3)}]; -1/2 is {'inside' if inside else 'outside'} the 95% CI.")
    if plt is not None and out_dir is not None:
        fig, axes = plt.subplots(1, len(PAIRINGS), figsize=(5 * len(PAIRINGS), 4), sharey=True, squeeze=False)
        for ax, pairing in zip(axes[0], PAIRINGS):
            key = f"init/data/{pairing}/r_perp_clean"
            for w in widths:
                ys = [[r[key] for r in done if lookup(r, "model.width") == w and r["init/data/num_samples"] == n]
                      for n in sizes]
                means = [statistics.fmean(y) for y in ys]
                sds = [statistics.stdev(y) if len(y) > 1 else 0.0 for y in ys]
                ax.errorbar(sizes, means, yerr=sds, marker="o", capsize=3, label=f"width {w}")
            anchor = statistics.fmean(r[key] for r in done if r["init/data/num_samples"] == sizes[0])
            ax.plot(sizes, [anchor * (n / sizes[0]) ** -0.5 for n in sizes], "k--", label="slope -1/2")
            ax.set(xscale="log", yscale="log", xlabel="training images N", title=f"{pairing} pairing")
            ax.legend(fontsize=8)
        axes[0][0].set_ylabel("r_perp_clean at initialization")
        report.figures["a"] = save(fig, out_dir, f"{report.prefix}_interference")


# ------------------------------------------------------------------------------------------- (b)
def zero_act_rows(run: dict) -> dict[int, float]:
    """{step: diag/zero_act} of the run's probe rows after step 0 (event rows aside)."""
    return {row["step"]: row["diag/zero_act"] for row in read_rows(run, "diagnostics.jsonl")
            if "event" not in row and row.get("step", 0) > 0 and row.get("diag/zero_act") is not None}


def claim_b(runs: list[dict], report: Report, plt=None, out_dir: Path | None = None) -> None:
    """(b) Mixup lowers the share of zero activations during the ENP, more with a larger alpha."""
    train = completed(runs, "claims/training")
    lines = report.sections["b"]
    arms = {a: [r for r in train if lookup(r, "arm") == a] for a in (VANILLA, LOW_ARM, BASE_ARM)}
    if not all(arms.values()):
        lines.append("The training sweep lacks one of the arms vanilla, mixup_a0.2 and mixup_a1.")
        report.tests.append(Test("b", "zero activations: Mixup against vanilla", "points", -1, untested()))
        return
    low = dict((id(v), m) for m, v in pairs(arms[LOW_ARM], arms[VANILLA], ("arm",)))
    high = dict((id(v), m) for m, v in pairs(arms[BASE_ARM], arms[VANILLA], ("arm",)))
    diffs: dict[str, dict[int, list[float]]] = {k: defaultdict(list) for k in ("low", "high", "high-low")}
    cell_rows: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    skipped = 0
    for v in arms[VANILLA]:
        if id(v) not in low or id(v) not in high:
            skipped += 1
            continue
        end = v.get("enp_end_step")
        if end is None:
            skipped += 1
            continue
        series = {"vanilla": zero_act_rows(v), "low": zero_act_rows(low[id(v)]), "high": zero_act_rows(high[id(v)])}
        steps = sorted(s for s in series["vanilla"] if s <= end and all(s in x for x in series.values()))
        if not steps:
            skipped += 1
            continue
        window = {k: 100 * statistics.fmean(x[s] for s in steps) for k, x in series.items()}
        seed = seed_of(v)
        diffs["low"][seed].append(window["low"] - window["vanilla"])
        diffs["high"][seed].append(window["high"] - window["vanilla"])
        diffs["high-low"][seed].append(window["high"] - window["low"])
        cell = (lookup(v, "dataset.fraction"), lookup(v, "model.width"))
        for k, value in window.items():
            cell_rows[cell][k].append(value)
        cell_rows[cell]["end"].append(end)
    per_seed = {k: {s: statistics.fmean(v) for s, v in d.items()} for k, d in diffs.items()}
    unit = "points of zero share"
    report.tests += [
        Test("b", "Mixup alpha 1 minus vanilla, zero-activation share over the vanilla run's ENP", unit, -1,
             per_seed_test(per_seed["high"])),
        Test("b", "Mixup alpha 0.2 minus vanilla, same window", unit, -1, per_seed_test(per_seed["low"])),
        Test("b", "Mixup alpha 1 minus Mixup alpha 0.2 (a larger alpha lowers it more)", unit, -1,
             per_seed_test(per_seed["high-low"])),
    ]
    lines += ["Share of post-ReLU activations equal to 0 on the clean probe (`diag/zero_act`, %), averaged over the "
              "probe rows from step 1 to the step where the *vanilla* run of the same cell and seed left the ENP "
              "(the same steps for the three arms), mean ± sd over seeds. Per seed, the differences are averaged "
              "over the cells; the t-test is over the seeds." + (f" {skipped} vanilla run(s) without both Mixup "
                                                                 f"partners, an ENP end or rows were left out." if skipped else ""), "",
              "| fraction | width | vanilla ENP end (step) | vanilla | Mixup alpha 0.2 | Mixup alpha 1 |", "|---|---|---|---|---|---|"]
    for cell in sorted(cell_rows):
        c = cell_rows[cell]
        lines.append(f"| {cell[0]} | {cell[1]} | {mean_sd(c['end'], 0)} | {mean_sd(c['vanilla'], 1)} | "
                     f"{mean_sd(c['low'], 1)} | {mean_sd(c['high'], 1)} |")
    if plt is not None and out_dir is not None:
        fraction = min(lookup(r, "dataset.fraction") for r in train)
        widths = sorted({lookup(r, "model.width") for r in train})
        fig, axes = plt.subplots(1, len(widths), figsize=(4.5 * len(widths), 3.8), sharey=True, squeeze=False)
        for ax, w in zip(axes[0], widths):
            for arm, label in ((VANILLA, "vanilla"), (LOW_ARM, "Mixup alpha 0.2"), (BASE_ARM, "Mixup alpha 1")):
                members = [r for r in arms[arm] if lookup(r, "dataset.fraction") == fraction and lookup(r, "model.width") == w]
                band(ax, [zero_act_rows(r) for r in members], label, scale=100)
            ends = [r["enp_end_step"] for r in arms[VANILLA] if lookup(r, "dataset.fraction") == fraction
                    and lookup(r, "model.width") == w and r.get("enp_end_step") is not None]
            if ends:
                ax.axvline(statistics.fmean(ends), color="k", ls=":", label="vanilla ENP end")
            ax.set(xscale="log", xlabel="step", title=f"fraction {fraction}, width {w}")
            ax.legend(fontsize=8)
        axes[0][0].set_ylabel("zero activations (%)")
        report.figures["b"] = save(fig, out_dir, f"{report.prefix}_activations")


# ------------------------------------------------------------------------------------------- (c)
def gains(members: list[dict], baseline: list[dict]) -> list[tuple[int, float, float, float]]:
    """(seed, fraction, width, member minus baseline final accuracy in points) for each pair."""
    return [(seed_of(m), lookup(m, "dataset.fraction"), lookup(m, "model.width"),
             100 * (m["final_test_acc"] - b["final_test_acc"])) for m, b in pairs(members, baseline, ("arm",))]


def claim_c(runs: list[dict], report: Report, plt=None, out_dir: Path | None = None) -> None:
    """(c) Mixup Pause beats Mixup from the first step at small scale, and the gain shrinks as the
    dataset or the model grows. Alpha Boost against Mixup at its base alpha goes with it (no claim
    at this scale: the paper proposes it for large settings that underfit)."""
    train = completed(runs, "claims/training")
    lines = report.sections["c"]
    arm = lambda a: [r for r in train if lookup(r, "arm") == a]  # noqa: E731
    pause = gains(arm(PAUSE_ARM), arm(BASE_ARM))
    if not pause:
        lines.append("The training sweep lacks pause_a1 or mixup_a1 runs that pair.")
        report.tests.append(Test("c", "Mixup Pause against Mixup", "points", +1, untested()))
        return
    smallest = min(f for _, f, _, _ in pause)
    small: dict[int, list[float]] = defaultdict(list)
    for seed, f, _, g in pause:
        if f == smallest:
            small[seed].append(g)
    small_gain = per_seed_test({s: statistics.fmean(v) for s, v in small.items()})
    report.tests.append(Test("c", f"Mixup Pause minus Mixup (alpha 1), final test accuracy at the smallest size "
                                  f"(fraction {smallest}), mean over widths", "points", +1, small_gain))
    # "The gain shrinks": a slope towards zero, so its sign is the opposite of the small-scale gain's
    # (a loss at small scale that grows with scale does not count as a shrinking gain).
    towards_zero = +1 if small_gain.effect < 0 else -1
    fitted = per_seed_slopes([(s, g, {"log fraction": math.log(f), "log width": math.log(w)}) for s, f, w, g in pause])
    for regressor in ("log fraction", "log width"):
        report.tests.append(Test("c", f"slope of the Mixup Pause gain on {regressor} (towards zero: "
                                      f"{'negative' if towards_zero < 0 else 'positive'})",
                                 f"points per unit of {regressor}", towards_zero,
                                 per_seed_test(fitted[regressor]) if regressor in fitted else untested()))
    boost = gains(arm(BOOST_ARM), arm(LOW_ARM))
    if boost:
        by_seed: dict[int, list[float]] = defaultdict(list)
        for seed, _, _, g in boost:
            by_seed[seed].append(g)
        report.tests.append(Test("c", "Alpha Boost (0.2, 1 in the ENP) minus Mixup alpha 0.2, mean over all cells "
                                      "(no claim at this scale)", "points", 0,
                                 per_seed_test({s: statistics.fmean(v) for s, v in by_seed.items()})))
    lines += ["Final test accuracy (%) per cell, mean ± sd over seeds, and the paired gains (same cell and seed) with "
              "95% CIs over the seeds:", "",
              "| fraction | width | vanilla | Mixup 0.2 | Mixup 1 | Pause (1) | Boost (0.2, 1) | Pause - Mixup 1 | "
              "Boost - Mixup 0.2 |", "|---|---|---|---|---|---|---|---|---|"]
    cells = sorted({(f, w) for _, f, w, _ in pause})
    mixup_cost = gains(arm(BASE_ARM), arm(VANILLA))
    cell_ci = {}
    for f, w in cells:
        def acc(a):
            return mean_sd([100 * r["final_test_acc"] for r in arm(a) if lookup(r, "dataset.fraction") == f
                            and lookup(r, "model.width") == w], 2)

        def ci(g):
            t = one_sample([x for _, gf, gw, x in g if (gf, gw) == (f, w)])
            return t, f"{fmt(t.effect)} [{fmt(t.ci_low)}, {fmt(t.ci_high)}]"

        cell_ci[(f, w)], pause_text = ci(pause)
        lines.append(f"| {f} | {w} | {acc(VANILLA)} | {acc(LOW_ARM)} | {acc(BASE_ARM)} | {acc(PAUSE_ARM)} | "
                     f"{acc(BOOST_ARM)} | {pause_text} | {ci(boost)[1] if boost else '-'} |")
    lines += ["", "The per-cell CIs are descriptive (not in the corrected family); the tests above are over the "
              "seeds' means and slopes.", "", "Mixup at alpha 1 against vanilla training, final test accuracy, mean "
              "paired difference over sizes and seeds (descriptive), per width: " + ", ".join(
                  f"{w}: {fmt(statistics.fmean(g for _, _, gw, g in mixup_cost if gw == w))} points"
                  for w in sorted({w for _, w in cells}))
              + ". Mixup Pause trains without mixing for the ENP, so part of a gain over Mixup is less mixing."]
    if plt is not None and out_dir is not None:
        fig, ax = plt.subplots(figsize=(6, 4))
        widths = sorted({w for _, w in cells})
        for i, w in enumerate(widths):
            fs = [f for f, ww in cells if ww == w]
            t = [cell_ci[(f, w)] for f in fs]
            x = [f * (1 + 0.04 * (i - 1)) for f in fs]  # a small offset so the bars do not overlap
            ax.errorbar(x, [r.effect for r in t], yerr=[[r.effect - r.ci_low if math.isfinite(r.ci_low) else 0 for r in t],
                        [r.ci_high - r.effect if math.isfinite(r.ci_high) else 0 for r in t]],
                        marker="o", capsize=3, label=f"width {w}")
        ax.axhline(0, color="k", lw=0.8)
        ax.set(xscale="log", xlabel="dataset fraction", ylabel="Mixup Pause - Mixup (points, 95% CI)",
               title="Mixup Pause gain")
        ax.legend(fontsize=8)
        report.figures["c"] = save(fig, out_dir, f"{report.prefix}_pause_gain")


# ------------------------------------------------------------------------------------------- (d)
def claim_d(runs: list[dict], report: Report, plt=None, out_dir: Path | None = None) -> None:
    """(d) The ENP end detected at 50% clean training accuracy (and the chance-adjusted detector)
    matches the best fixed pause length of a grid."""
    grid_runs = completed(runs, "claims/pause_grid")
    lines = report.sections["d"]
    if not grid_runs:
        lines.append("No completed run of `claims/pause_grid`.")
        report.tests.append(Test("d", "detectors against the fixed pause lengths", "points", 0, untested(), True))
        return
    cell = (lookup(grid_runs[0], "dataset.fraction"), lookup(grid_runs[0], "model.width"))
    at_cell = lambda rs: [r for r in rs if (lookup(r, "dataset.fraction"), lookup(r, "model.width")) == cell]  # noqa: E731
    train = at_cell(completed(runs, "claims/training"))
    detectors = {"50% accuracy": [r for r in train if lookup(r, "arm") == PAUSE_ARM],
                 "chance-adjusted": at_cell(completed(runs, "claims/detectors"))}
    grid: dict[float, list[dict]] = defaultdict(list)  # share of the steps -> runs
    for r in at_cell(grid_runs):
        grid[lookup(r, "phase.fraction")].append(r)
    length = {f: math.ceil(f * lookup(rs[0], "trainer.max_steps")) for f, rs in grid.items()}
    mixup = [r for r in train if lookup(r, "arm") == BASE_ARM]
    vanilla = [r for r in train if lookup(r, "arm") == VANILLA]
    acc = lambda r: 100 * r["final_test_acc"]  # noqa: E731

    def best(leave_out: int | None = None) -> float:
        """The grid point with the best mean accuracy over the seeds, `leave_out` aside."""
        means = {f: statistics.fmean(acc(r) for r in rs if seed_of(r) != leave_out)
                 for f, rs in grid.items() if any(seed_of(r) != leave_out for r in rs)}
        return max(means, key=means.get)

    keys = ("experiment", "name", "phase", "arm")  # what differs between a detector's run and a grid run
    lines += [f"At fraction {cell[0]}, width {cell[1]}: Mixup Pause (alpha 1) with the pause fixed at a share of the "
              f"steps, and with the pause ended by each detector; length 0 is Mixup from the first step, shown for "
              f"reference (not a candidate length, as in the paper's grid). Final test accuracy (%), mean ± sd over "
              f"seeds:", "", "| pause | steps | runs | final test acc |", "|---|---|---|---|"]
    if mixup:
        lines.append(f"| none (Mixup) | 0 | {len(mixup)} | {mean_sd([acc(r) for r in mixup], 2)} |")
    for f in sorted(grid):
        mark = " (best over all seeds)" if f == best() else ""
        lines.append(f"| fixed, {f:g} of the steps{mark} | {length[f]} | {len(grid[f])} | "
                     f"{mean_sd([acc(r) for r in grid[f]], 2)} |")
    if vanilla:
        lines.append(f"| no mixing at all (vanilla) | all | {len(vanilla)} | {mean_sd([acc(r) for r in vanilla], 2)} |")
    for name, rs in detectors.items():
        ended = [r for r in rs if r.get("enp_end_step") is not None]
        ends = [r["enp_end_step"] for r in ended]
        steps = f"{statistics.fmean(ends):.0f} ({min(ends)}-{max(ends)})" if ends else "never ended"
        lines.append(f"| {name} detector | {steps} | {len(rs)} ({len(ended)} ended) | {mean_sd([acc(r) for r in rs], 2)} |")
        # Each seed's detector run against the grid point that is best on the *other* seeds: choosing the
        # best length on the runs it is compared with would favour it (and make "contradicted" easy).
        matched = [p for m in ended for p in pairs([m], [r for r in grid[best(seed_of(m))] if seed_of(r) == seed_of(m)],
                                                    keys)]
        result = (non_inferiority([acc(m) for m, _ in matched], [acc(b) for _, b in matched], EQUIVALENCE_MARGIN)
                  if matched else untested())
        report.tests.append(Test("d", f"{name} detector's pause minus the best fixed pause (chosen on the other "
                                      f"seeds; p one-sided, non-inferiority by {EQUIVALENCE_MARGIN})", "points", 0,
                                 result, equivalence=True))
    lines += ["", f"Each seed's detector run is compared with that seed's run at the fixed length that is best on the "
              f"other seeds. Supported: the detector is not worse by {EQUIVALENCE_MARGIN} points or more (one-sided "
              f"non-inferiority test, Holm-corrected); contradicted: the whole 95% CI is below -{EQUIVALENCE_MARGIN}. "
              f"Runs whose ENP never ended are left out of the test."]
    if best() == max(grid):
        lines += ["", f"**The best fixed length is the longest in the grid** ({length[max(grid)]} steps): accuracy was "
                      f"still rising with the pause's length, so the grid does not bracket a best pause and a detector "
                      f"that ends the ENP earlier cannot match it. Here the claim's premise, that mixing helps once "
                      f"the ENP is over, does not hold"
                  + (f" (vanilla training, never mixing: {mean_sd([acc(r) for r in vanilla], 2)})." if vanilla else ".")]
    if plt is not None and out_dir is not None:
        fig, ax = plt.subplots(figsize=(6, 4))
        points = ([(0, mixup)] if mixup else []) + [(length[f], grid[f]) for f in sorted(grid)]
        accs = [[acc(r) for r in rs] for _, rs in points]
        ax.errorbar([x for x, _ in points], [statistics.fmean(a) for a in accs],
                    yerr=[statistics.stdev(a) if len(a) > 1 else 0 for a in accs],
                    marker="o", capsize=3, color="k", label="fixed pause (0: Mixup), mean ± sd")
        for (name, rs), marker in zip(detectors.items(), ("s", "^")):
            ends = [r["enp_end_step"] for r in rs if r.get("enp_end_step") is not None]
            if ends:
                a = [acc(r) for r in rs if r.get("enp_end_step") is not None]
                ax.errorbar([statistics.fmean(ends)], [statistics.fmean(a)],
                            xerr=[[statistics.fmean(ends) - min(ends)], [max(ends) - statistics.fmean(ends)]],
                            yerr=[statistics.stdev(a) if len(a) > 1 else 0], marker=marker, capsize=3, ls="none",
                            label=f"{name} detector (range of ENP ends)")
        ax.set_xscale("symlog", linthresh=10)
        ax.set(xlabel="pause length (steps)", ylabel="final test accuracy (%)",
               title=f"pause length, fraction {cell[0]}, width {cell[1]}")
        ax.legend(fontsize=8)
        report.figures["d"] = save(fig, out_dir, f"{report.prefix}_pause_grid")
    learning_curves(train, cell, report, plt, out_dir)


def learning_curves(train: list[dict], cell, report: Report, plt, out_dir: Path | None) -> None:
    """Clean training accuracy (the per-epoch probe) against step, per arm, with seed bands and each
    arm's mean ENP end."""
    if plt is None or out_dir is None or not train:
        return
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for arm in (VANILLA, LOW_ARM, BASE_ARM, PAUSE_ARM, BOOST_ARM):
        members = [r for r in train if lookup(r, "arm") == arm]
        curves = [{row["step"]: row["train_acc"] for row in read_rows(r, "metrics.jsonl")} for r in members]
        band(ax, curves, arm, scale=100)
        ends = [r["enp_end_step"] for r in members if r.get("enp_end_step") is not None]
        if ends:
            ax.axvline(statistics.fmean(ends), color=ax.lines[-1].get_color() if ax.lines else "k", ls=":", lw=1)
    ax.set(xlabel="step", ylabel="clean training accuracy (%)",
           title=f"learning curves, fraction {cell[0]}, width {cell[1]} (dotted: mean ENP end)")
    ax.legend(fontsize=8)
    report.figures["curves"] = save(fig, out_dir, f"{report.prefix}_learning_curves")


# ------------------------------------------------------------------------------------ the report
def detector_table(runs: list[dict]) -> list[str]:
    """Where the detectors fired: per sweep, cell and arm, how many runs left the ENP and at which step."""
    cells: dict[tuple, list[dict]] = defaultdict(list)
    for r in runs:
        if r.get("status") == "completed" and lookup(r, "name") in EXPERIMENTS[1:]:
            cells[(lookup(r, "name"), r.get("choices", {}).get("phase"),
                   lookup(r, "dataset.fraction"), lookup(r, "model.width"), lookup(r, "arm"))].append(r)
    lines = ["| sweep | detector | fraction | width | arm | ENP ended | end step: mean (min-max) | clean train acc there |",
             "|---|---|---|---|---|---|---|---|"]
    never = 0
    for key in sorted(cells, key=str):
        rs = cells[key]
        ends = [r["enp_end_step"] for r in rs if r.get("enp_end_step") is not None]
        never += len(rs) - len(ends)
        where = f"{statistics.fmean(ends):.0f} ({min(ends)}-{max(ends)})" if ends else "-"
        acc = mean_sd([r.get("enp_end_train_acc") for r in rs if r.get("enp_end_step") is not None], 2)
        lines.append(f"| {key[0].split('/')[-1]} | {key[1]} | {key[2]} | {key[3]} | {key[4]} | {len(ends)}/{len(rs)} | "
                     f"{where} | {acc} |")
    total = sum(len(rs) for rs in cells.values())
    where = f"{total} runs of the training, pause-grid and detectors sweeps (claims/interference trains one step)"
    return [f"The ENP ended in all but {never} of the {where}." if never else f"The ENP ended in all {where}.", ""] + lines


CLAIM_TITLES = {
    "a": "(a) Interference falls as the training set and the model grow",
    "b": "(b) Mixup lowers the share of zero activations during the ENP, more with a larger alpha",
    "c": "(c) Mixup Pause beats Mixup at small scale, and the gain shrinks with scale",
    "d": "(d) The detected ENP end matches the best fixed pause length",
}


def claim_verdict(tests: list[Test]) -> str:
    all_verdicts = [t.verdict for t in tests if t.expected != 0 or t.equivalence]
    verdicts = [v for v in all_verdicts if v != "not tested"]
    untested_note = f" ({len(all_verdicts) - len(verdicts)} of {len(all_verdicts)} tests not run)" \
        if len(verdicts) < len(all_verdicts) else ""
    if not verdicts:
        return "not tested"
    if all(v == "supported" for v in verdicts):
        verdict = "supported"
    elif any(v == "contradicted" for v in verdicts):
        verdict = "mixed" if any(v == "supported" for v in verdicts) else "contradicted"
    else:
        verdict = "partly supported" if any(v == "supported" for v in verdicts) else "inconclusive at this scale"
    return verdict + untested_note


def analyse(runs: list[dict], out_dir: Path | None = None, prefix: str = "claims") -> Report:
    """All four claims on the runs (duplicates already refused); figures into out_dir as
    <prefix>_<what>.png (none without out_dir)."""
    plt = None
    if out_dir is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    report = Report(prefix=prefix)
    for claim in (claim_a, claim_b, claim_c, claim_d):
        claim(runs, report, plt, out_dir)
    for test, p in zip(report.tests, holm([t.result.p for t in report.tests])):
        test.result.p_holm = p
    return report


def render(report: Report, runs: list[dict], header: list[str]) -> str:
    """The markdown report: the header (command, commit, date, machine), the verdicts, then one
    section per claim with its tables, tests and figure."""
    out = list(header) + ["", "## Verdicts", "",
                          "| claim | verdict | test | effect [95% CI] | p | p (Holm) | min. detectable | seeds |",
                          "|---|---|---|---|---|---|---|---|"]
    for claim in "abcd":
        tests = [t for t in report.tests if t.claim == claim]
        for i, t in enumerate(tests):
            r = t.result
            out.append(f"| {claim if i == 0 else ''} | {claim_verdict(tests) if i == 0 else ''} | {t.name} ({t.unit}): "
                       f"{t.verdict} | {fmt(r.effect, 3)} [{fmt(r.ci_low, 3)}, {fmt(r.ci_high, 3)}] | "
                       f"{fmt_p(r.p)} | {fmt_p(r.p_holm)} | {fmt(r.mde, 3, False)} | {r.n} |")
        if not tests:
            out.append(f"| {claim} | not tested | - | - | - | - | - | - |")
    out += ["", f"{len([t for t in report.tests if math.isfinite(t.result.p)])} tests, Holm-corrected together. "
            "The minimum detectable effect is the mean a t-test over these seeds would find with 80% power at 5% "
            "(two-sided, uncorrected, against 0), given the observed spread. Every seed trains on the same nested, "
            "class-balanced subsets (`dataset.fraction_seed` 0): the seeds vary the initial weights, the batch order "
            "and the mixing, not the subset, so the CIs hold for these subsets."]
    near = [t for t in report.tests if t.expected and not t.equivalence and t.verdict.startswith("inconclusive")
            and t.result.p < LEVEL]
    if near:
        out += ["", "Significant before the correction only (uncorrected p < 0.05):"]
        out += [f"- ({t.claim}) {t.name}: {fmt(t.result.effect, 3)}, p = {fmt_p(t.result.p)}, "
                f"{'the paper' if np.sign(t.result.effect) == t.expected else 'opposite to the paper'}'s direction."
                for t in near]
    for claim in "abcd":
        out += ["", f"## {CLAIM_TITLES[claim]}", "", *report.sections.get(claim, [])]
        if claim in report.figures:
            out += ["", f"![{claim}]({report.figures[claim]})"]
        if claim == "d" and "curves" in report.figures:
            out += ["", f"![learning curves]({report.figures['curves']})"]
    out += ["", "## Where the detectors fired", "", *detector_table(runs)]
    failed = [r for r in runs if r.get("status") != "completed"]
    if failed:
        out += ["", "## Runs not in the analysis", ""] + [f"- {r.get('status')}: {r['_dir']} ({r.get('error')})"
                                                        for r in failed]
    return "\n".join(out) + "\n"
