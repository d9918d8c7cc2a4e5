"""The tables of docs/results/interference_init_mnist.md from an `experiment=measures/interference_init`
sweep: dataset-scope interference at initialization per training-set size N (mean ± sd over seeds)
and the log-log slopes against N with 95% CIs (least squares over every run).

    python scripts/interference_table.py SWEEP_DIR
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import numpy as np
from scipy import stats

COLUMNS = [
    ("permutation r_perp_clean", "permutation/r_perp_clean", 3),
    ("r@0.1", "permutation/r_perp_clean@0.1", 3),
    ("r@0.5", "permutation/r_perp_clean@0.5", 3),
    ("r debiased", "permutation/r_perp_clean_debiased", 3),
    ("perp_sq", "permutation/perp_sq", 4),
    ("perp_sq_unbiased", "permutation/perp_sq_unbiased", 4),
    ("flip r_perp_clean", "flip/r_perp_clean", 3),
    ("flip r debiased", "flip/r_perp_clean_debiased", 3),
]
SLOPES = ("r_perp_clean", "perp_sq", "perp_sq_unbiased")


def main(sweep: str) -> int:
    runs = [json.loads(p.read_text()) for p in sorted(Path(sweep).glob("*/summary.json"))]
    runs = [r for r in runs if r.get("status") == "completed"]
    if not runs:
        sys.exit(f"error: no completed run under {sweep}")
    by_n: dict[int, list[dict]] = {}
    for r in runs:
        by_n.setdefault(r["init/data/num_samples"], []).append(r)
    fmt = lambda values, d: f"{statistics.fmean(values):.{d}f} ± {statistics.stdev(values):.{d}f}"  # noqa: E731
    print("| N | " + " | ".join(name for name, _, _ in COLUMNS) + " | seconds |")
    print("|---" * (len(COLUMNS) + 2) + "|")
    for n in sorted(by_n):
        group = by_n[n]
        cells = [fmt([r[f"init/data/{key}"] for r in group], d) for _, key, d in COLUMNS]
        seconds = statistics.fmean(r["init/data/seconds"] for r in group)
        print(f"| {n:,} | " + " | ".join(cells) + f" | {seconds:.1f} |")
    print(f"\nLog-log slopes against N ({len(runs)} runs):\n")
    print("| measure | permutation | flip |\n|---|---|---|")
    log_n = np.log([r["init/data/num_samples"] for r in runs])
    for measure in SLOPES:
        cells = []
        for pairing in ("permutation", "flip"):
            fit = stats.linregress(log_n, np.log([r[f"init/data/{pairing}/{measure}"] for r in runs]))
            half = stats.t.ppf(0.975, len(runs) - 2) * fit.stderr
            cells.append(f"{fit.slope:+.3f} (95% CI {fit.slope - half:+.3f} to {fit.slope + half:+.3f})")
        print(f"| {measure} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
