"""Figures of the interference-versus-revival tradeoff from sweep directories (PNG and PDF).

    python scripts/plot_tradeoff.py SWEEP_DIR... --out FIG [--baseline mixup] [--cell KEY=VALUE,...]

Reads only summary.json, metrics.jsonl and diagnostics.jsonl, like make_tables.py. Writes FIG.png and
FIG.pdf with three rows of panels:
1. heatmaps of the final-accuracy difference (each ENP strategy minus the baseline, pairs matched by
   seed) over Mixup alpha (x) and dataset fraction (y), one panel per model width and strategy;
   cells not significant at 0.05 (paired t-test) are hatched;
2. the mechanism, on the baseline's runs: the ENP means of diag/r_perp_clean and diag/zero_act against
   dataset fraction and against model width, one line per alpha, error bars = standard deviation over
   seeds;
3. training curves around the ENP end for one cell (default: the first mixup_pause run): clean
   training accuracy, training loss and the share of steps that mixed, per epoch, with the ENP end.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from make_tables import paired_stats  # noqa: E402

from enlighten.analysis.runs import DuplicateRuns, drop_duplicates, load_runs, lookup  # noqa: E402

from enlighten.results import read_jsonl  # noqa: E402

KEYS = ("mix.alpha", "dataset.fraction", "model.width")


def group(runs: list[dict], keys: tuple[str, ...]) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = defaultdict(list)
    for r in runs:
        out[tuple(lookup(r, k) for k in keys)].append(r)
    return out


def heatmaps(fig, axes, runs: list[dict], baseline: str, strategies: list[str]) -> None:
    alphas = sorted({lookup(r, "mix.alpha") for r in runs})
    fractions = sorted({lookup(r, "dataset.fraction") for r in runs})
    widths = sorted({lookup(r, "model.width") for r in runs})
    cells = group(runs, ("strategy",) + KEYS)
    panels = [(s, w) for s in strategies for w in widths]
    for ax, (strategy, width) in zip(axes, panels):
        grid = [[float("nan")] * len(alphas) for _ in fractions]
        significant = [[False] * len(alphas) for _ in fractions]
        for i, f in enumerate(fractions):
            for j, a in enumerate(alphas):
                res = paired_stats(cells.get((strategy, a, f, width), []), cells.get((baseline, a, f, width), []),
                                   "strategy")
                if res is not None:
                    grid[i][j] = res[1]
                    significant[i][j] = res[4] < 0.05
        vmax = max([abs(v) for row in grid for v in row if v == v] + [0.1])
        im = ax.imshow(grid, cmap="RdBu", vmin=-vmax, vmax=vmax, origin="lower", aspect="auto")
        for i in range(len(fractions)):
            for j in range(len(alphas)):
                if grid[i][j] == grid[i][j]:
                    ax.text(j, i, f"{grid[i][j]:+.2f}", ha="center", va="center", fontsize=8)
                    if not significant[i][j]:
                        ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", lw=0, alpha=0.4))
        ax.set_xticks(range(len(alphas)), [str(a) for a in alphas])
        ax.set_yticks(range(len(fractions)), [str(f) for f in fractions])
        ax.set_xlabel("Mixup alpha")
        ax.set_ylabel("dataset fraction")
        ax.set_title(f"{strategy} - {baseline}, width {width}\n(points; hatched: p >= 0.05)", fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)


def mechanism(axes, runs: list[dict]) -> None:
    alphas = sorted({lookup(r, "mix.alpha") for r in runs})
    for ax, (metric, along) in zip(axes, [(m, x) for m in ("r_perp_clean", "zero_act") for x in ("dataset.fraction", "model.width")]):
        key = f"enp_mean/diag/{metric}"
        for a in alphas:
            by_x = group([r for r in runs if lookup(r, "mix.alpha") == a and r.get(key) is not None], (along,))
            xs = sorted(x for (x,) in by_x)
            means = [statistics.fmean(r[key] for r in by_x[(x,)]) for x in xs]
            sds = [statistics.stdev([r[key] for r in by_x[(x,)]]) if len(by_x[(x,)]) > 1 else 0.0 for x in xs]
            ax.errorbar(xs, means, yerr=sds, marker="o", capsize=3, label=f"alpha {a}")
        ax.set_xlabel(along)
        ax.set_ylabel(f"ENP mean {metric}")
        ax.set_title(f"{metric} vs {along}", fontsize=9)
        ax.legend(fontsize=7)


def curves(axes, run: dict) -> None:
    metrics = read_jsonl(Path(run["_dir"]) / "metrics.jsonl")
    epochs = [m["epoch"] + 1 for m in metrics]
    for ax, key, label in zip(axes, ("train_acc", "train_loss", "mixing"), ("clean train acc", "train loss", "share of steps mixing")):
        ax.plot(epochs, [m[key] for m in metrics], marker=".")
        if run.get("enp_end_step") is not None:
            spe = metrics[0]["step"]
            ax.axvline(run["enp_end_step"] / spe, color="k", ls="--", lw=1, label="ENP end")
            ax.legend(fontsize=7)
        ax.set_xlabel("epoch")
        ax.set_title(f"{label}\n{Path(run['_dir']).name[:40]}", fontsize=8)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--out", required=True, help="output path without extension (writes .png and .pdf)")
    ap.add_argument("--baseline", default="mixup", help="the strategy the others are compared with")
    ap.add_argument("--cell", help="KEY=VALUE,... choosing the run whose curves are shown")
    args = ap.parse_args(argv)
    try:
        runs = [r for r in drop_duplicates(load_runs(args.dirs)) if r.get("status") == "completed"]
    except (FileNotFoundError, DuplicateRuns) as e:
        sys.exit(f"error: {e}")
    if not runs:
        sys.exit("error: no completed runs")
    strategies = sorted({lookup(r, "strategy") for r in runs} - {args.baseline})
    widths = sorted({lookup(r, "model.width") for r in runs})
    n_heat = max(1, len(strategies) * len(widths))
    cols = max(n_heat, 4)
    fig = plt.figure(figsize=(3.6 * cols, 10.5))
    gs = fig.add_gridspec(3, cols)
    heatmaps(fig, [fig.add_subplot(gs[0, i]) for i in range(n_heat)], runs, args.baseline, strategies)
    # the mechanism on the baseline's runs (Mixup from the start), not pooled over strategies
    mechanism([fig.add_subplot(gs[1, i]) for i in range(4)], [r for r in runs if lookup(r, "strategy") == args.baseline] or runs)
    wanted = dict(kv.split("=", 1) for kv in args.cell.split(",")) if args.cell else {"strategy": "mixup_pause"}
    chosen = [r for r in runs if all(str(lookup(r, k)) == v for k, v in wanted.items())] or runs
    curves([fig.add_subplot(gs[2, i]) for i in range(3)], chosen[0])
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for ext in ("png", "pdf"):
        fig.savefig(out.with_suffix(f".{ext}"), dpi=110)
    print(f"wrote {out.with_suffix('.png')} and {out.with_suffix('.pdf')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
