"""Figures of a strategy comparison from sweep directories (PNG and PDF), readable at a glance.

    python scripts/plot_tradeoff.py SWEEP_DIR... --out FIG [--baseline mixup] [--cell KEY=VALUE,...]

Reads only summary.json, metrics.jsonl and detector.jsonl, like make_tables.py.
Writes FIG.png and FIG.pdf with up to three rows of panels, each only where the sweep has the data:
1. learning curves per strategy, mean and ±1 sd band over seeds, each strategy's mean ENP end dotted:
   clean training accuracy by step (what the phase detector measured, at step resolution where the
   ENP lives; per epoch for the runs whose detector measured none), test accuracy and training loss per epoch;
   for one cell of the sweep (--cell; default: the cell with the most runs);
2. the comparison: final accuracy of each strategy minus the baseline in points, pairs matched by
   seed. A heatmap over Mixup alpha (x) and dataset fraction (y) where both take at least two
   values (cells not significant at 0.05 hatched); otherwise the difference with its 95% CI against
   the one swept axis, or per strategy;
3. the mechanism on the baseline's runs: the ENP means of diag/r_perp_clean and diag/zero_act against
   each of dataset fraction and model width that takes at least two values.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import Counter, defaultdict
from pathlib import Path

import matplotlib
import yaml

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from enlighten.analysis.figures import band  # noqa: E402
from enlighten.analysis.runs import (
    completed_runs,
    lookup,
    paired_stats,  # noqa: E402
    read_rows,
    separating_keys,
)

CELL = ("mix.alpha", "dataset.fraction", "model.width")


def values(runs: list[dict], key: str) -> list:
    """The values `key` takes (a run without the key, such as a model without a width, adds none)."""
    return sorted({lookup(r, key) for r in runs} - {None})


def levels(runs: list[dict], key: str) -> list:
    """The values to draw panels or cells for: None alone when no run has the key."""
    return values(runs, key) or [None]


def group(runs: list[dict], keys: tuple[str, ...]) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = defaultdict(list)
    for r in runs:
        out[tuple(lookup(r, k) for k in keys)].append(r)
    return out


def learning_curves(axes, runs: list[dict], strategies: list[str], colors: dict, title: str) -> None:
    """Three panels: clean training accuracy by step (the detector's, until the ENP ended), test
    accuracy and training loss per epoch (steps on a log scale there: the ENP is the start of training)."""
    rows = {r["_dir"]: {name: read_rows(r, name) for name in ("metrics.jsonl", "detector.jsonl")} for r in runs}
    metrics = lambda r: rows[r["_dir"]]["metrics.jsonl"]  # noqa: E731 - each file read once

    def clean_accuracy(run: dict) -> dict:  # the detector's, by step, where it measured clean training accuracy
        by_step = {x["step"]: x["train_acc"] for x in rows[run["_dir"]]["detector.jsonl"] if "train_acc" in x}
        return by_step or {x["step"]: x["train_acc"] for x in metrics(run)}

    by_step = all(any("train_acc" in x for x in rows[r["_dir"]]["detector.jsonl"]) for r in runs)
    panels = [
        (
            "clean training accuracy (%), by step\n(the phase detector's probe, until it fired)"
            if by_step
            else "clean training accuracy (%), by step where the\ndetector measured it, else per epoch",
            clean_accuracy,
            100,
        ),
        (
            "test accuracy (%), per epoch",
            lambda r: {x["step"]: x["test_acc"] for x in metrics(r) if x.get("test_acc") is not None},
            100,
        ),
        ("training loss (as trained), per epoch", lambda r: {x["step"]: x["train_loss"] for x in metrics(r)}, 1),
    ]
    dashes = {
        s: ("-", "--", "-.", ":")[i % 4] for i, s in enumerate(strategies)
    }  # strategies that coincide stay visible
    for ax, (label, series, scale) in zip(axes, panels):
        for strategy in strategies:
            members = [r for r in runs if lookup(r, "strategy") == strategy]
            band(
                ax,
                [series(r) for r in members],
                strategy,
                scale=scale,
                every_run=False,
                color=colors[strategy],
                ls=dashes[strategy],
                marker=".",
            )
            ends = [r["enp_end_step"] for r in members if r.get("enp_end_step") is not None]
            if ends:
                ax.axvline(statistics.fmean(ends), color=colors[strategy], ls=":", lw=1.2)
        if ax is not axes[0]:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # 10, 100, ... only: minor labels overlap
        ax.set(xlabel="optimizer step" + (" (log scale)" if ax is not axes[0] else ""))
        ax.set_title(label, fontsize=9)
        ax.legend(fontsize=7)
    axes[0].set_title(f"{axes[0].get_title()}; dotted: mean ENP end{title}", fontsize=9)


def comparison(fig, axes, runs: list[dict], baseline: str, strategies: list[str], colors: dict) -> None:
    """A heatmap per strategy and width when alpha and fraction both vary; else points with CIs."""
    swept = [k for k in ("mix.alpha", "dataset.fraction") if len(values(runs, k)) >= 2]
    cells = group(runs, ("strategy",) + CELL)
    widths = levels(runs, "model.width")

    def diff(strategy, alpha, fraction, width):
        return paired_stats(
            cells.get((strategy, alpha, fraction, width), []),
            cells.get((baseline, alpha, fraction, width), []),
            "strategy",
        )

    if len(swept) == 2:
        alphas, fractions = values(runs, "mix.alpha"), values(runs, "dataset.fraction")
        for ax, (strategy, width) in zip(axes, [(s, w) for s in strategies for w in widths]):
            results = [[diff(strategy, a, f, width) for a in alphas] for f in fractions]
            grid = [[float("nan") if r is None else r[1] for r in row] for row in results]
            vmax = max([abs(v) for row in grid for v in row if v == v] + [0.1])
            im = ax.imshow(grid, cmap="RdBu", vmin=-vmax, vmax=vmax, origin="lower", aspect="auto")
            for i, row in enumerate(results):
                for j, r in enumerate(row):
                    if r is not None:
                        ax.text(j, i, f"{r[1]:+.2f}", ha="center", va="center", fontsize=8)
                        if not r[4] < 0.05:
                            ax.add_patch(
                                plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", lw=0, alpha=0.4)
                            )
            ax.set_xticks(range(len(alphas)), [str(a) for a in alphas])
            ax.set_yticks(range(len(fractions)), [str(f) for f in fractions])
            ax.set(xlabel="Mixup alpha", ylabel="dataset fraction")
            ax.set_title(
                f"{strategy} - {baseline}{f', width {width}' if width is not None else ''}\n"
                "(points; hatched: p >= 0.05)",
                fontsize=9,
            )
            fig.colorbar(im, ax=ax, shrink=0.8)
        return
    for ax, width in zip(axes, widths):
        xs = values(runs, swept[0]) if swept else [None]
        for k, strategy in enumerate(strategies):
            points = []
            for x in xs:
                key = {c: (x if swept and c == swept[0] else levels(runs, c)[0]) for c in CELL[:2]}
                r = diff(strategy, key["mix.alpha"], key["dataset.fraction"], width)
                if r is not None:
                    points.append((x, r))
            if not points:
                continue
            pos = [xs.index(x) + 0.12 * (k - (len(strategies) - 1) / 2) for x, _ in points] if swept else [k]
            ax.errorbar(
                pos,
                [r[1] for _, r in points],
                yerr=[[r[1] - r[2] for _, r in points], [r[3] - r[1] for _, r in points]],
                fmt="o",
                capsize=4,
                color=colors[strategy],
                label=f"{strategy} (n={points[0][1][0]} seeds)",
            )
        ax.axhline(0, color="k", lw=0.8)
        if swept:
            ax.set_xticks(range(len(xs)), [str(x) for x in xs])
            ax.set_xlabel(swept[0])
        else:
            ax.set_xticks(range(len(strategies)), strategies, rotation=20, fontsize=8)
        ax.set(ylabel=f"final accuracy minus {baseline} (points)")
        ax.set_title(
            f"vs {baseline}{f', width {width}' if width is not None else ''}: mean and 95% CI over seeds", fontsize=9
        )
        ax.legend(fontsize=7)


def mechanism(axes, runs: list[dict], along: list[str]) -> None:
    for ax, (metric, key) in zip(axes, [(m, x) for m in ("r_perp_clean", "zero_act") for x in along]):
        name = f"enp_mean/diag/{metric}"
        for a in values(runs, "mix.alpha"):
            by_x = group(
                [
                    r
                    for r in runs
                    if lookup(r, "mix.alpha") == a and r.get(name) is not None and lookup(r, key) is not None
                ],
                (key,),
            )
            xs = sorted(x for (x,) in by_x)
            means = [statistics.fmean(r[name] for r in by_x[(x,)]) for x in xs]
            sds = [statistics.stdev([r[name] for r in by_x[(x,)]]) if len(by_x[(x,)]) > 1 else 0.0 for x in xs]
            ax.errorbar(xs, means, yerr=sds, marker="o", capsize=3, label=f"alpha {a}")
        ax.set(xlabel=key, ylabel=f"ENP mean {metric}")
        ax.set_title(f"{metric} vs {key} (baseline's runs; ±1 sd)", fontsize=9)
        ax.legend(fontsize=7)


def figure(runs: list[dict], baseline: str = "mixup", cell: str | None = None):
    """The figure of completed `runs`: its rows and panels follow what the sweep varied."""
    present = values(runs, "strategy")
    strategies = [s for s in present if s != baseline]
    ordered = ([baseline] if baseline in present else []) + strategies
    if cell:
        wanted = dict(kv.split("=", 1) for kv in cell.split(","))
        cell_runs = [
            r
            for r in runs
            if all(lookup(r, k) == yaml.safe_load(v) or str(lookup(r, k)) == v for k, v in wanted.items())
        ]  # mix.alpha=1 is the stored 1.0
        if not cell_runs:
            raise ValueError(f"no completed run matches --cell {cell}")
    else:
        most_runs = Counter(tuple(lookup(r, k) for k in CELL) for r in runs).most_common(1)[0][0]
        cell_runs = group(runs, CELL)[most_runs]
    cell_title = ", ".join(f"{k} {lookup(cell_runs[0], k)}" for k in CELL if len(values(runs, k)) >= 2)
    cell_title = f"\n{cell_title}" if cell_title else ""

    colors = {s: f"C{i}" for i, s in enumerate(ordered)}  # one color per strategy in every panel
    widths = levels(runs, "model.width")
    both = all(len(values(runs, k)) >= 2 for k in ("mix.alpha", "dataset.fraction"))
    n_compare = len(strategies) * len(widths) if both else len(widths)
    along = [k for k in ("dataset.fraction", "model.width") if len(values(runs, k)) >= 2]
    rows = (
        [("curves", 3)]
        + ([("compare", n_compare)] if strategies and baseline in present else [])
        + ([("mechanism", 2 * len(along))] if along else [])
    )
    cols = max(n for _, n in rows)
    fig = plt.figure(figsize=(4.6 * cols, 4.2 * len(rows)))
    grid = fig.add_gridspec(len(rows), cols)
    for i, (kind, n) in enumerate(rows):
        axes = [fig.add_subplot(grid[i, j]) for j in range(n)]
        if kind == "curves":
            learning_curves(axes, cell_runs, ordered, colors, cell_title)
        elif kind == "compare":
            comparison(fig, axes, runs, baseline, strategies, colors)
        else:  # the baseline's runs (Mixup from the start), not pooled over strategies
            mechanism(axes, [r for r in runs if lookup(r, "strategy") == baseline] or runs, along)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--out", required=True, help="output path without extension (writes .png and .pdf)")
    ap.add_argument("--baseline", default="mixup", help="the strategy the others are compared with")
    ap.add_argument("--cell", help="KEY=VALUE,... choosing the cell whose learning curves are shown")
    args = ap.parse_args(argv)
    try:
        runs = completed_runs(args.dirs)
    except (FileNotFoundError, ValueError) as e:  # no folder, no completed run, a run repeated
        sys.exit(f"error: {e}")
    drawn_by = ["strategy", "mix.alpha", "dataset.fraction", "model.width"]  # what separates the figure's curves
    if added := separating_keys(runs, drawn_by):
        sys.exit(
            f"error: runs that differ in {', '.join(added)} would be drawn as seeds of one curve: give the "
            f"directories of one experiment at a time, or keep only the runs to compare"
        )
    try:
        fig = figure(runs, args.baseline, args.cell)
    except ValueError as e:
        sys.exit(f"error: {e}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for ext in ("png", "pdf"):
        fig.savefig(out.with_suffix(f".{ext}"), dpi=110)
    print(f"wrote {out.with_suffix('.png')} and {out.with_suffix('.pdf')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
