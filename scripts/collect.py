"""One row per run (group choices, the settings that vary, the summary's numbers) as CSV or Parquet,
from any set of run or sweep directories (searched recursively).

    python scripts/collect.py multirun/2026-12-01/10-00-00_48213a1f2 [MORE_DIRS...] --out runs.csv
    python -c "import pandas as pd; print(pd.read_csv('runs.csv').groupby('strategy').final_test_acc.mean())"
    python scripts/collect.py multirun/2026-12-01/10-00-00_48213a1f2 --curves --out curves.parquet

--curves writes the learning curves instead: one row per run, file (metrics, diagnostics), step and
measure, with the run's group choices and varying settings as columns (long format).

Columns are described in enlighten/analysis/collect.py.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from enlighten.analysis.collect import FORMATS, collect, curves, write_rows  # noqa: E402
from enlighten.analysis.runs import is_ours, load_runs  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dirs", nargs="+", help="run or sweep directories")
    parser.add_argument("--out", required=True, help=f"output file, {' or '.join(FORMATS)}")
    parser.add_argument(
        "--curves",
        action="store_true",
        help="the learning curves in long format (metrics.jsonl and diagnostics.jsonl rows)",
    )
    args = parser.parse_args(argv)
    if Path(args.out).suffix not in FORMATS:
        parser.error(f"--out {args.out}: the output must end in {' or '.join(FORMATS)}.")
    try:
        found = load_runs(args.dirs)
    except FileNotFoundError as e:
        parser.error(str(e))
    runs, foreign = [r for r in found if is_ours(r)], [r["_dir"] for r in found if not is_ours(r)]
    if foreign:
        print(
            f"skipped {len(foreign)} summary.json file(s) that train.py did not write: {', '.join(foreign[:5])}"
            + (" ..." if len(foreign) > 5 else ""),
            file=sys.stderr,
        )
    if not runs:
        sys.exit(
            f"error: no runs of train.py under {', '.join(args.dirs)} (a run directory holds summary.json with "
            f"a status and a config, or .hydra/ for a job that wrote none)"
        )
    if args.curves:
        rows = curves(runs)
        write_rows(rows, args.out)
        print(f"{len(rows)} curve points of {len(runs)} runs, {len(rows[0]) if rows else 0} columns -> {args.out}")
        return
    rows = collect(runs)
    write_rows(rows, args.out)
    counts = collections.Counter(r["status"] for r in rows)
    print(
        f"{len(rows)} runs ({', '.join(f'{n} {s}' for s, n in counts.most_common())}), "
        f"{len(rows[0]) if rows else 0} columns -> {args.out}"
    )


if __name__ == "__main__":
    main()
