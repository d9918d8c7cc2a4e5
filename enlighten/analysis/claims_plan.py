"""The claims' analysis plan as code (docs/claims.md): the arms, stage 1's regime map and the rules
that turn it into stage 2's design (cells, seeds, pause-grid cells), fixed before stage 2 ran.

    regime = regime_map(runs)                  # stage 1's runs (claims/training, three arms)
    design = choose_design(regime, rules)      # stage 2's cells, seeds and grid cells
    lines = render_regime(regime, design)      # docs/results/claims_regime.md

Every choice reads the validation split (`final_val_acc`), never the test set.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass, field

from enlighten.analysis.runs import lookup, pairs
from enlighten.analysis.stats import TestResult, minimum_detectable_effect, paired, seeds_needed

VANILLA, LOW, MIXUP, PAUSE, DOSE, EARLY = "vanilla", "mixup_a0.2", "mixup_a1", "pause_a1", "dosematched_a1", "early_a1"
REGIME_ARMS = (VANILLA, LOW, MIXUP)
STAGE2_ARMS = (PAUSE, DOSE, EARLY)
LEVEL = 0.05
TRAINING = "claims/training"


@dataclass(frozen=True)
class Rules:
    """The numbers stage 1's rules use (docs/claims.md, "Stage 1")."""

    target_mde: float = 0.2  # points: the smallest paired difference stage 2 must detect with 80% power
    family_size: int = 5  # claim (c)'s family: the worst-case Holm level is LEVEL / family_size
    seeds: tuple[int, int] = (5, 10)  # the fewest and the most seeds stage 2 may use
    budget_hours: float = 6.0  # the most stage 2 may cost on `jobs` runs side by side for all 9 cells
    jobs: int = 2
    grid_lengths: int = 7  # claims/pause_grid's pause lengths
    grid_width: float = 0.5
    interference_seeds: int = 5
    interference_fractions: tuple[float, ...] = (0.0125, 0.0375, 0.125, 0.375)
    interference_widths: tuple[float, ...] = (0.25, 0.5, 1.0)
    enp_interference_runs: int = 10  # claims/interference_enp: 2 sizes x 5 seeds
    dataset_passes: int = 11  # gradient passes of one dataset-level measurement (1 clean + 2 pairings x 5 lambdas)


@dataclass
class Cell:
    """One (size, width) cell of stage 1: what Mixup does there against vanilla, and the ENP."""

    fraction: float
    width: float
    num_train: int
    mixup_vs_vanilla_val: TestResult  # alpha 1 minus vanilla, validation accuracy (points)
    low_vs_vanilla_val: TestResult  # alpha 0.2 minus vanilla
    mixup_vs_low_val: TestResult  # alpha 1 minus alpha 0.2
    mixup_vs_vanilla_test: TestResult
    low_vs_vanilla_test: TestResult
    enp_end: dict  # arm -> mean ENP end step (None where no run's ENP ended)
    never_fired: int  # runs of the cell whose ENP did not end
    total_steps: int
    seconds: float  # mean wall time of a run of the cell
    samples_per_s: float  # training throughput of the cell's runs, evaluation included

    @property
    def premise(self) -> bool:
        """Mixup alpha 1 beats vanilla on the validation split, the 95% CI above 0."""
        return math.isfinite(self.mixup_vs_vanilla_val.ci_low) and self.mixup_vs_vanilla_val.ci_low > 0

    @property
    def enp_share(self) -> float | None:
        ends = [e for e in self.enp_end.values() if e is not None]
        return statistics.fmean(ends) / self.total_steps if ends else None


@dataclass
class Design:
    """Stage 2's design, as stage 1's rules chose it."""

    cells: list[tuple[float, float]]
    seeds: int
    grid_fractions: list[float]
    premise_cells: list[tuple[float, float]]
    sd: float  # the largest paired sd of stage 1 over stage 2's cells (points of validation accuracy)
    mde: float  # the minimum detectable effect with `seeds` at the worst-case Holm level
    cost_hours: float  # the estimated cost of stage 2 on `jobs` runs side by side
    cost_all_cells_hours: float
    notes: list[str] = field(default_factory=list)
    plan_commit: str = "unknown"  # the commit of docs/claims.md when stage 1's rules were applied

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Design:
        data = dict(data)
        data["cells"] = [tuple(c) for c in data["cells"]]
        data["premise_cells"] = [tuple(c) for c in data["premise_cells"]]
        return cls(**data)


def points(run: dict, key: str) -> float:
    return 100.0 * run[key]


def _paired_points(members: list[dict], baseline: list[dict], key: str) -> TestResult:
    matched = pairs(
        [m for m in members if m.get(key) is not None], [b for b in baseline if b.get(key) is not None], ("arm",)
    )
    return paired([points(m, key) for m, _ in matched], [points(b, key) for _, b in matched])


def regime_map(runs: list[dict]) -> list[Cell]:
    """Stage 1's cells from the completed claims/training runs of vanilla and Mixup at alphas 0.2 and 1."""
    done = [
        r
        for r in runs
        if r.get("status") == "completed" and lookup(r, "name") == TRAINING and lookup(r, "arm") in REGIME_ARMS
    ]
    by_cell: dict[tuple, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in done:
        by_cell[(lookup(r, "dataset.fraction"), lookup(r, "model.width"))][lookup(r, "arm")].append(r)
    cells = []
    for (f, w), arms in sorted(by_cell.items()):
        if not all(arms.get(a) for a in REGIME_ARMS):  # a cell the sweep has not reached yet
            continue
        members = [r for rs in arms.values() for r in rs]
        ends = {
            a: (
                statistics.fmean(e)
                if (e := [r["enp_end_step"] for r in rs if r.get("enp_end_step") is not None])
                else None
            )
            for a, rs in arms.items()
        }
        steps = statistics.fmean(r["steps"] for r in members)
        batch = lookup(members[0], "trainer.batch_size") or 1
        cells.append(
            Cell(
                fraction=f,
                width=w,
                num_train=int(members[0].get("num_train") or 0),
                mixup_vs_vanilla_val=_paired_points(arms[MIXUP], arms[VANILLA], "final_val_acc"),
                low_vs_vanilla_val=_paired_points(arms[LOW], arms[VANILLA], "final_val_acc"),
                mixup_vs_low_val=_paired_points(arms[MIXUP], arms[LOW], "final_val_acc"),
                mixup_vs_vanilla_test=_paired_points(arms[MIXUP], arms[VANILLA], "final_test_acc"),
                low_vs_vanilla_test=_paired_points(arms[LOW], arms[VANILLA], "final_test_acc"),
                enp_end=ends,
                never_fired=sum(r.get("enp_end_step") is None for r in members),
                total_steps=int(lookup(members[0], "trainer.max_steps") or steps),
                seconds=statistics.fmean(r["wall_time_s"] for r in members),
                samples_per_s=statistics.fmean(r["steps"] * batch / r["wall_time_s"] for r in members),
            )
        )
    return cells


def stage2_hours(
    cells: list[Cell], chosen: list[tuple[float, float]], seeds: int, grid: list[float], rules: Rules, done_seeds: int
) -> float:
    """Stage 2's cost estimated from stage 1's wall times: the three new arms at every seed and the
    three stage-1 arms at the seeds stage 1 did not run, in the chosen cells; the pause grid and the
    chance-adjusted detector at the grid cells (a run there costs what one of stage 1's did); the
    dataset-level interference (`dataset_passes` passes over N at the cell's training throughput)."""
    at = {(c.fraction, c.width): c for c in cells}
    seconds = sum(at[k].seconds for k in chosen) * (
        len(STAGE2_ARMS) * seeds + len(REGIME_ARMS) * max(0, seeds - done_seeds)
    )
    seconds += (
        sum(at[(f, rules.grid_width)].seconds for f in grid if (f, rules.grid_width) in at)
        * (rules.grid_lengths + 1)
        * seeds
    )
    full = max(c.num_train / c.fraction for c in cells if c.fraction and c.num_train)  # the pool the fractions share
    speed = {w: statistics.fmean(c.samples_per_s for c in cells if c.width == w) for w in {c.width for c in cells}}
    for w in rules.interference_widths:
        for f in rules.interference_fractions:
            seconds += rules.interference_seeds * (
                rules.dataset_passes * f * full / speed.get(w, min(speed.values())) + 5
            )
    ref = [c for c in cells if c.width == rules.grid_width] or cells
    seconds += rules.enp_interference_runs * (
        statistics.fmean(c.seconds for c in ref)
        + 4 * rules.dataset_passes * max(c.num_train for c in ref) / speed[ref[0].width]
    )
    return seconds / rules.jobs / 3600


def choose_design(cells: list[Cell], rules: Rules = Rules(), done_seeds: int | None = None) -> Design:
    """Stage 2's cells, seeds and pause-grid cells by the plan's rules (docs/claims.md, "Stage 1")."""
    if not cells:
        raise ValueError("no stage-1 cell has vanilla and Mixup runs: run the regime stage first")
    done_seeds = done_seeds if done_seeds is not None else min(c.mixup_vs_vanilla_val.n for c in cells)
    premise = [(c.fraction, c.width) for c in cells if c.premise]
    notes = []

    def plan(chosen: list[tuple[float, float]]) -> tuple[int, float, float]:
        sd = max(
            (
                t.sd
                for c in cells
                if (c.fraction, c.width) in chosen
                for t in (c.mixup_vs_vanilla_val, c.mixup_vs_low_val)
                if math.isfinite(t.sd)
            ),
            default=math.inf,
        )
        n = (
            seeds_needed(sd, rules.target_mde, LEVEL / rules.family_size, rules.seeds[0], rules.seeds[1])
            or rules.seeds[1]
        )
        return n, sd, minimum_detectable_effect(sd, n, LEVEL / rules.family_size)

    everything = [(c.fraction, c.width) for c in cells]
    sizes = sorted({f for f, _ in everything})
    premise_sizes = sorted({f for f, w in premise if w == rules.grid_width})
    if len(premise_sizes) >= 2:
        grid = [premise_sizes[0], premise_sizes[-1]]
    elif len(premise_sizes) == 1:
        larger = [f for f in sizes if f > premise_sizes[0]]
        grid = [premise_sizes[0]] + larger[:1]
    else:
        grid = [sizes[0], sizes[-1]] if len(sizes) > 1 else sizes
        notes.append(
            f"No premise cell at width {rules.grid_width}: the pause grid runs at the smallest and the largest "
            f"size, where claim (d)'s premise is expected to fail."
        )
    n, sd, mde = plan(everything)
    cost_all = stage2_hours(cells, everything, n, grid, rules, done_seeds)
    chosen = everything
    if cost_all > rules.budget_hours:
        chosen = [(f, w) for f, w in everything if w < 1.0]
        n, sd, mde = plan(chosen)
        notes.append(
            f"All {len(everything)} cells would cost about {cost_all:.1f} hours (over {rules.budget_hours:g}): "
            "stage 2 runs the "
            f"widths below 1."
        )
    if mde > rules.target_mde:
        notes.append(
            f"{rules.seeds[1]} seeds reach a minimum detectable effect of {mde:.2f} points, above the target "
            f"{rules.target_mde} (the rule's cap)."
        )
    return Design(
        cells=chosen,
        seeds=n,
        grid_fractions=grid,
        premise_cells=premise,
        sd=sd,
        mde=mde,
        cost_hours=stage2_hours(cells, chosen, n, grid, rules, done_seeds),
        cost_all_cells_hours=cost_all,
        notes=notes,
    )


def _ci(t: TestResult) -> str:
    if not math.isfinite(t.effect):
        return "-"
    if not math.isfinite(t.ci_low):
        return f"{t.effect:+.2f}"
    return f"{t.effect:+.2f} [{t.ci_low:+.2f}, {t.ci_high:+.2f}]"


def render_regime(cells: list[Cell], design: Design, rules: Rules = Rules()) -> list[str]:
    """Stage 1's map and the choices its rules made, as markdown lines."""
    lines = [
        "Per cell, paired by seed (mean over the seeds and 95% CI, in points): Mixup minus vanilla on the "
        "**validation** "
        "split (what the rules read) and on the test set (for the record; nothing is chosen on it); the mean ENP "
        "end step per arm (vanilla / Mixup 0.2 / Mixup 1) and the ENP's share of the run; the mean wall time of a "
        "run (one thread).",
        "",
        "| images | width | premise | Mixup 1 - vanilla (val) | Mixup 0.2 - vanilla (val) | Mixup 1 - Mixup 0.2 (val) "
        "| Mixup 1 - vanilla (test) | Mixup 0.2 - vanilla (test) | ENP end (steps) | ENP share | s / run |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        ends = " / ".join("-" if c.enp_end.get(a) is None else f"{c.enp_end[a]:.0f}" for a in REGIME_ARMS)
        share = "-" if c.enp_share is None else f"{100 * c.enp_share:.1f}%"
        fired = f" ({c.never_fired} never ended)" if c.never_fired else ""
        lines.append(
            f"| {c.num_train:,} | {c.width} | {'yes' if c.premise else 'no'} | {_ci(c.mixup_vs_vanilla_val)} | "
            f"{_ci(c.low_vs_vanilla_val)} | {_ci(c.mixup_vs_low_val)} | {_ci(c.mixup_vs_vanilla_test)} | "
            f"{_ci(c.low_vs_vanilla_test)} | {ends}{fired} | {share} | {c.seconds:.0f} |"
        )
    n = min(c.mixup_vs_vanilla_val.n for c in cells)
    size = {c.fraction: c.num_train for c in cells}
    lines += [
        "",
        f"Seeds per cell: {n}. The paired sd of Mixup 1 - vanilla and of Mixup 1 - Mixup 0.2 (validation, points) "
        f"per cell: "
        + ", ".join(
            f"{size[c.fraction]:,}/{c.width}: {c.mixup_vs_vanilla_val.sd:.2f}, {c.mixup_vs_low_val.sd:.2f}"
            for c in cells
        )
        + ".",
        "",
        '**What the rules chose** (docs/claims.md, "Stage 1"):',
        "",
        "- Premise cells (Mixup 1 beats vanilla on validation, CI above 0): "
        + (", ".join(f"{size[f]:,} images at width {w}" for f, w in design.premise_cells) or "none")
        + ".",
        "- Stage 2's cells: "
        + ", ".join(f"{size[f]:,}/{w}" for f, w in design.cells)
        + f" (all {len(cells)} cells were estimated at {design.cost_all_cells_hours:.1f} hours on {rules.jobs} "
        "runs side by side; "
        f"the budget is {rules.budget_hours:g}).",
        f"- Seeds: {design.seeds}: the largest paired sd over these cells is {design.sd:.3f} points, which gives a "
        f"minimum detectable effect of {design.mde:.3f} points at level {LEVEL}/{rules.family_size} with 80% power "
        f"(target {rules.target_mde}).",
        f"- Pause grid cells (width {rules.grid_width}): "
        + ", ".join(f"{size.get(f, f):,} images" for f in design.grid_fractions)
        + ".",
        f"- Estimated cost of stage 2: {design.cost_hours:.1f} hours.",
    ]
    lines += [f"- {note}" for note in design.notes]
    return lines
