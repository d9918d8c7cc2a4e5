"""Every measure against the step, with the ENP end marked, from run or sweep directories (PNG).

    python scripts/plot_measures.py DIR... --out FIG [--measures diag/a,diag/b] [--group KEY] [--linear]

One panel per measure (default: every `diag/<name>` in the runs' diagnostics.jsonl, its per-group and
per-lambda variants aside: name those with --measures): mean ± sd over the runs of each group
(--group: a config key such as optim.lr, or a group such as strategy; default: all runs together),
each group's ENP end (the median of its runs' `enp_end_step`) dotted in its colour. The step axis is
logarithmic (initialization drawn at step 0.5) unless --linear.
Reads summary.json and diagnostics.jsonl only. To tabulate a measure where the ENP ends:
`scripts/make_tables.py DIR --at-enp-end --extra diag/<name>`.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from enlighten.analysis.figures import measure_keys, measures_against_step, save  # noqa: E402
from enlighten.analysis.runs import completed_runs, lookup  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="+", help="run or sweep directories")
    ap.add_argument("--out", required=True, help="the figure, written as OUT.png")
    ap.add_argument("--measures", help="comma-separated diag/ keys (default: every measure in the rows)")
    ap.add_argument("--group", help="a config key or group whose values make the lines (default: one line)")
    ap.add_argument("--linear", action="store_true", help="a linear step axis")
    args = ap.parse_args(argv)
    try:
        runs = completed_runs(args.dirs)
    except (FileNotFoundError, ValueError) as e:  # no folder, no completed run, a run repeated
        sys.exit(f"error: {e}")
    available = measure_keys(runs)
    keys = args.measures.split(",") if args.measures else available
    if unknown := [k for k in keys if k not in available]:
        sys.exit(
            f"error: {', '.join(unknown)} not in the runs' diagnostics.jsonl. Measures there: {', '.join(available)}"
        )
    if not keys:
        sys.exit("error: the runs' diagnostics.jsonl hold no measure (were they run with diagnostics=off?)")
    groups: dict[str, list[dict]] = defaultdict(list)
    for run in runs:
        groups[f"{args.group}={lookup(run, args.group)}" if args.group else "all runs"].append(run)
    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.4 * rows), squeeze=False)
    measures_against_step(lambda i: axes.flat[i], dict(sorted(groups.items())), keys, log_x=not args.linear)
    for ax in list(axes.flat)[len(keys) :]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=7)
    out = Path(args.out)
    print(out.parent / save(fig, out.parent, out.name.removesuffix(".png")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
