"""Results tables from run directories: one row per cell, seeds aggregated.

    python scripts/make_tables.py SWEEP_DIR... [--rows KEYS] [--cols KEYS] [--baseline strategy=mixup]...
                                               [--metric KEY] [--extra KEYS] [--format md|latex|csv]
                                               [--out FILE] [--wandb]

Reads only summary.json files (found recursively), so it works offline and on copied results.
One row per cell: seeds, mean ± std of final test accuracy (and, where runs hold a validation split,
final validation accuracy and the test accuracy at the epoch best on validation), final test loss (and
bits per character for language models), the mean ENP end epoch and clean training accuracy there, and
the means over the ENP of diag/r_perp_clean and diag/zero_act ("ENP not reached" where no run of the
cell left the ENP; "(k/n reached)" where some did not: their means cover the runs that did).
With --at-step S, keys `diag/...` (in --metric and --extra) are read from each run's diagnostics.jsonl
row at step S of the shared grid, so runs are compared at the same point of training, paired by seed
(e.g. activation revival: --rows strategy,mix.alpha --baseline strategy=vanilla --metric diag/zero_act
--at-step 50); with --at-enp-end, from the row where each run's ENP ended (any measure, e.g. --extra
diag/sharpness,diag/grad_noise_top). With --baseline KEY=VALUE (repeatable),
each cell is compared with the cell that differs only in KEY=VALUE: the mean difference of the metric
(--metric: final_test_acc in points, or final_test_bpc when the runs report it; lower is better for
bpc and loss) over the pairs found in both, its 95% confidence interval and a paired t-test p-value
(undefined, "-", when every pair differs by the same amount). A member run is paired with the
baseline run whose config is the same in every setting but KEY (seed included; settings that change
no result, such as paths and the logger, aside). Runs that repeat another's
config and seed are an error naming both (--keep-newest keeps the newest and lists the others), and a
--baseline value or a --rows/--cols key that matches no run is an error listing the valid ones.
A key is a config group (`strategy`, `model`, ...) or a dotted config key (`mix.alpha`,
`dataset.fraction`). Without --rows, the keys the runs were launched with (their overrides, minus
`seed`) make the rows. Runs that share the rows' values and the seed but differ in anything else (another
experiment, another alpha) are never averaged as seeds of one cell: the fewest keys that separate them
(the experiment's `name` first) are added to the rows, with a note on stderr. Failed, diverged and
incomplete runs are listed under the table.
"""

from __future__ import annotations

import argparse
import collections
import csv
import io
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from enlighten.analysis.runs import (
    METRICS,
    DuplicateRuns,
    drop_duplicates,
    load_runs,
    lookup,
    paired_stats,
    read_rows,
    separating_keys,  # noqa: E402  (no torch)
)
from enlighten.config import RESULT_NEUTRAL_KEYS, flatten, under  # noqa: E402

# Overrides that are never a table's default rows: the seed (the cells' replicates), Hydra's own, the
# experiment (its settings are compared key by key), the device, and the settings that change no result.
NOT_ROWS = ("seed", "hydra", "experiment", "trainer.device", *RESULT_NEUTRAL_KEYS)


def add_grid_row(run: dict, step: int) -> None:
    """Copy the diag/ values of the run's diagnostics.jsonl row at `step` of the shared grid into the
    run as `step<S>/diag/...` (nothing when the run has no such row)."""
    for row in read_rows(run, "diagnostics.jsonl"):
        if row.get("grid") and row.get("step") == step and "event" not in row:
            run.update({f"step{step}/{k}": v for k, v in row.items() if k.startswith("diag/")})
            return


def add_enp_end_row(run: dict) -> None:
    """Copy the diag/ values of the run's diagnostics.jsonl row where the ENP ended (its `enp_end` event)
    into the run as `enp_end/diag/...` (nothing when the ENP never ended)."""
    for row in read_rows(run, "diagnostics.jsonl"):
        if row.get("event") == "enp_end":
            run.update({f"enp_end/{k}": v for k, v in row.items() if k.startswith("diag/")})
            return


def default_rows(runs: list[dict]) -> list[str]:
    """The override keys whose values differ between runs (the swept ones), `seed` aside."""
    keys: list[str] = []
    for run in runs:
        for override in run.get("overrides", []):
            key = override.split("=", 1)[0].lstrip("+~")
            if not under(key, NOT_ROWS) and key not in keys:
                keys.append(key)
    done = [r for r in runs if r.get("status") == "completed"]
    swept = [k for k in keys if len({str(lookup(r, k)) for r in done}) > 1]
    return swept or ["strategy"]


def mean_std(values: list[float], scale: float = 100.0, digits: int = 2) -> str:
    if not values:
        return "-"
    m = scale * statistics.fmean(values)
    s = scale * statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def format_paired(result, digits: int = 2) -> list[str]:
    if result is None:
        return ["-", "-", "-"]
    n, mean, lo, hi, p = result
    if n < 2:
        return [f"{mean:+.{digits}f}", "-", "-"]
    return [f"{mean:+.{digits}f}", f"[{lo:+.{digits}f}, {hi:+.{digits}f}]", "-" if p != p else f"{p:.3f}"]


def default_metric(runs: list[dict]) -> str:
    """Bits per character for language-model runs, final accuracy otherwise."""
    return "final_test_bpc" if any(r.get("final_test_bpc") is not None for r in runs) else "final_test_acc"


def build_table(
    runs: list[dict], rows: list[str], extra: list[str] = (), baselines: list[str] = (), metric: str | None = None
) -> tuple[list[str], list[list[str]], list[dict]]:
    cells: dict[tuple, list[dict]] = {}
    problems = []
    for run in runs:
        if run.get("status") != "completed":
            problems.append(run)
            continue
        cells.setdefault(tuple(str(lookup(run, k)) for k in rows), []).append(run)
    done = [r for runs_ in cells.values() for r in runs_]
    metric = metric or default_metric(done)
    if metric not in METRICS and not any(r.get(metric) is not None for r in done):
        sys.exit(
            f"error: --metric {metric!r} is in no completed run's summary.json (e.g. {', '.join(METRICS)}; "
            f"with --at-step, a diag/ key of the diagnostics.jsonl row at a step of the grid 0, 10, 20, 50, ...)"
        )
    losses = ["final_test_loss"] + (
        ["final_test_bpc"] if any(r.get("final_test_bpc") is not None for r in done) else []
    )
    # the validation split's columns where runs hold one (dataset.val_fraction)
    held = [k for k in ("final_val_acc", "test_acc_at_best_val") if any(r.get(k) is not None for r in done)]
    header = (
        rows
        + [
            "seeds",
            "final test acc (%)",
            *(METRICS[k][0] for k in held),
            *(METRICS[k][0] for k in losses),
            "ENP end epoch",
            "train acc at ENP end",
            "ENP r_perp_clean",
            "ENP zero_act",
        ]
        + list(extra)
    )
    unit = "pts" if "_acc" in metric else metric.removeprefix("final_test_")
    parsed = []
    for baseline in baselines:
        base_key, _, base_value = baseline.partition("=")
        if base_key not in rows:
            sys.exit(f"error: --baseline key {base_key!r} must be one of the row keys {rows}")
        values = sorted({str(lookup(r, base_key)) for r in done})
        if base_value not in values:
            sys.exit(f"error: --baseline {baseline} matches no completed run; {base_key} is one of {values}")
        parsed.append((base_key, base_value))
        header += [f"Δ vs {baseline} ({unit})", "95% CI", "p (paired t)"]
    body = []
    for cell in sorted(cells):
        members = cells[cell]

        def col(key: str, scale: float = 1.0, digits: int = 3) -> str:
            return mean_std([r[key] for r in members if r.get(key) is not None], scale, digits)

        reached = [r for r in members if r.get("enp_end_step") is not None]

        def enp_col(key: str, scale: float = 1.0, digits: int = 3) -> str:
            """ENP columns: never a whole-run mean for runs whose ENP did not end."""
            if not reached:
                return "ENP not reached"
            text = mean_std([r[key] for r in reached if r.get(key) is not None], scale, digits)
            return text if len(reached) == len(members) else f"{text} ({len(reached)}/{len(members)} reached)"

        counted = [r for r in members if r.get(metric) is not None]  # the seeds the cell's numbers average
        line = (
            list(cell)
            + [
                str(len(counted))
                if len(counted) == len(members)
                else f"{len(counted)} (of {len(members)}: {len(members) - len(counted)} without {metric})",
                col("final_test_acc", 100, 2),
                *(col(k, 100, 2) for k in held),
                *(col(k, 1, 3) for k in losses),
                enp_col("enp_end_epoch", 1, 1),
                enp_col("enp_end_train_acc"),
                enp_col("enp_mean/diag/r_perp_clean"),
                enp_col("enp_mean/diag/zero_act"),
            ]
            + [col(k) for k in extra]
        )
        for base_key, base_value in parsed:
            ref = tuple(base_value if k == base_key else v for k, v in zip(rows, cell))
            result = None if ref == cell or ref not in cells else paired_stats(members, cells[ref], base_key, metric)
            line += format_paired(result, 2 if "_acc" in metric else 3)
        body.append(line)
    return header, body, problems


def pivot(runs: list[dict], rows: list[str], cols: list[str]) -> tuple[list[str], list[list[str]]]:
    """Rows x columns of final accuracy (mean ± std over seeds): the compact view of a grid."""
    done = [r for r in runs if r.get("status") == "completed"]
    col_values = sorted({tuple(str(lookup(r, k)) for k in cols) for r in done})
    cells: dict[tuple, list[float]] = {}
    for r in done:
        key = (tuple(str(lookup(r, k)) for k in rows), tuple(str(lookup(r, k)) for k in cols))
        values = cells.setdefault(key, [])
        if r.get("final_test_acc") is not None:  # a summary may hold null where a number was expected
            values.append(r["final_test_acc"])
    row_values = sorted({k[0] for k in cells})
    header = rows + [",".join(f"{k}={v}" for k, v in zip(cols, c)) for c in col_values]
    body = [list(rv) + [mean_std(cells.get((rv, cv), [])) for cv in col_values] for rv in row_values]
    return header, body


def log_to_wandb(header: list[str], body: list[list[str]], dirs: list[str]) -> None:
    """Log the table as a W&B Table (offline unless WANDB_MODE says otherwise), inside the first sweep dir."""
    import os

    import wandb

    run = wandb.init(
        project="enlighten",
        job_type="table",
        dir=dirs[0],
        mode=os.environ.get("WANDB_MODE", "offline"),
        config={"sweeps": dirs},
        settings=wandb.Settings(silent=True, console="off"),
    )
    run.log({"results": wandb.Table(columns=header, data=body)})
    run.finish()


def render(header: list[str], body: list[list[str]], fmt: str) -> str:
    if fmt == "csv":
        out = io.StringIO()
        csv.writer(out).writerows([header] + body)
        return out.getvalue()
    if fmt == "latex":
        lines = ["\\begin{tabular}{" + "l" * len(header) + "}", "\\toprule", " & ".join(header) + " \\\\", "\\midrule"]
        lines += [" & ".join(c.replace("±", "$\\pm$") for c in row) + " \\\\" for row in body]
        return "\n".join(lines + ["\\bottomrule", "\\end{tabular}"]) + "\n"
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]
    fmt_row = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    lines = [fmt_row(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    return "\n".join(lines + [fmt_row(r) for r in body]) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="+", help="sweep or run directories")
    ap.add_argument("--rows", help="comma-separated keys that make the rows (default: the swept keys)")
    ap.add_argument("--cols", help="comma-separated keys that make the columns: a pivot of final accuracy")
    ap.add_argument("--wandb", action="store_true", help="also log the table to W&B (offline by default)")
    ap.add_argument(
        "--baseline",
        action="append",
        default=[],
        help="KEY=VALUE: compare every cell with the cell where KEY=VALUE, e.g. strategy=mixup (repeatable)",
    )
    ap.add_argument(
        "--metric", help="summary key the comparisons use (default: final_test_bpc if present, else final_test_acc)"
    )
    ap.add_argument("--extra", help="comma-separated summary.json keys to add as columns (mean ± std)")
    ap.add_argument(
        "--at-step",
        type=int,
        help="read diag/ keys of --metric and --extra from each run's diagnostics.jsonl row at this grid step",
    )
    ap.add_argument(
        "--at-enp-end",
        action="store_true",
        help="read diag/ keys of --metric and --extra from each run's diagnostics.jsonl row where the ENP ended",
    )
    ap.add_argument(
        "--keep-newest",
        action="store_true",
        help="where several runs share a config and seed, keep the newest and list the others",
    )
    ap.add_argument("--format", choices=["md", "latex", "csv"], default="md")
    ap.add_argument("--out", help="write the table to this file as well")
    args = ap.parse_args(argv)
    try:
        runs = load_runs(args.dirs)
        if not runs:
            sys.exit(f"error: no summary.json under {', '.join(args.dirs)}")
        runs = drop_duplicates(runs, args.keep_newest)
    except (FileNotFoundError, DuplicateRuns) as e:
        sys.exit(f"error: {e}")
    if not any(r.get("status") == "completed" for r in runs):
        counts = collections.Counter(r.get("status", "?") for r in runs)
        sys.exit(
            f"error: no completed run under {', '.join(args.dirs)} "
            f"({', '.join(f'{n} {s}' for s, n in counts.most_common())}): "
            f"nothing to tabulate. "
            + "; ".join(
                f"{Path(r['_dir']).name}: {str(r.get('error') or r.get('status')).splitlines()[0]}" for r in runs[:5]
            )
        )
    rows = args.rows.split(",") if args.rows else default_rows(runs)
    if added := separating_keys(runs, rows + (args.cols.split(",") if args.cols else [])):  # never pool experiments
        print(
            f"note: the rows ({', '.join(rows)}) do not separate runs that differ in {', '.join(added)}; those keys "
            f"are added to the rows.",
            file=sys.stderr,
        )
        rows = [*rows, *added]
    done = [r for r in runs if r.get("status") == "completed"]
    unknown = [k for k in rows + (args.cols.split(",") if args.cols else []) if all(lookup(r, k) is None for r in done)]
    if unknown:
        valid = sorted(
            {
                *(k for r in done for k in r.get("choices", {})),
                *default_rows(runs),
                *(k for r in done for k in flatten(r.get("config", {}))),
            }
        )
        sys.exit(f"error: --rows/--cols key(s) {unknown} match no completed run. Keys you can use: {', '.join(valid)}")
    if args.cols:
        cols = args.cols.split(",")
        rows = [k for k in rows if k not in cols] or ["strategy"]
        header, body = pivot(runs, rows, cols)
        problems = [r for r in runs if r.get("status") != "completed"]
    else:
        extra = args.extra.split(",") if args.extra else []
        metric = args.metric
        if args.at_step is not None and args.at_enp_end:
            sys.exit("error: --at-step and --at-enp-end each choose the row a diag/ key is read from: give one")
        if args.at_step is not None or args.at_enp_end:
            for run in runs:
                if args.at_step is not None:
                    add_grid_row(run, args.at_step)
                else:
                    add_enp_end_row(run)
            prefix = f"step{args.at_step}" if args.at_step is not None else "enp_end"
            at = lambda key: f"{prefix}/{key}" if key and key.startswith("diag/") else key  # noqa: E731
            metric, extra = at(metric), [at(k) for k in extra]
            if metric and metric != args.metric and metric not in extra:
                extra.append(metric)  # the compared measure also gets its own column
        header, body, problems = build_table(runs, rows, extra, args.baseline, metric)
    if args.wandb:
        log_to_wandb(header, body, args.dirs)
    text = render(header, body, args.format)
    if problems:
        text += "\nNot in the table:\n" + "".join(
            f"- {p.get('status', '?')}: {p['_dir']}" + (f" ({p['error']})" if p.get("error") else "") + "\n"
            for p in problems
        )
    print(text, end="")
    if args.out:
        from enlighten.results import atomic_write_text

        atomic_write_text(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
