"""The break-even point at CPU scale (Jastrzebski et al. 2020), under the plan of
docs/results/break_even_plan.md: the sweeps, the data file, the report and its figure.

    python scripts/break_even.py [--dir DIR] [--threads 2] [OVERRIDE...]   # the sweeps, then the report
    python scripts/break_even.py --report-only                            # the report from the data file

The sweeps write into DIR (outputs/break_even) and skip completed jobs, so an interrupted run resumes.
OVERRIDEs go to every sweep (e.g. `paths.data_dir=/data`).
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))
from claims import cpu_name, git_commit  # noqa: E402

from enlighten.analysis.runs import (  # noqa: E402
    drop_duplicates,
    export_runs,
    load_runs,
    load_runs_file,
    plan_deviations,
)
from enlighten.results import atomic_write_text  # noqa: E402

RESULTS = REPO / "docs" / "results"
PLAN = RESULTS / "break_even_plan.md"
HEADER_END = (
    "<!-- end of header: what follows is rebuilt byte for byte from the data file and the plan's Deviations -->"
)
SEEDS = ",".join(str(s) for s in range(8))
# name -> the overrides of one sweep; the cell lr 0.03, batch 128 is in `lr` only (the batch axis reads it there).
SWEEPS = {
    "lr": ["optim.lr=0.01,0.03,0.1"],
    "batch": ["trainer.batch_size=32,512"],
}
ROWS = {
    "diagnostics.jsonl": ("step", "event", "in_enp", "diag/grad_noise_top", "diag/grad_noise_trace", "diag/sharpness"),
}


def run_sweeps(root: Path, threads: int, extra: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    for name, overrides in SWEEPS.items():
        cmd = [sys.executable, str(REPO / "train.py"), "-m", "experiment=break_even/base", *overrides, f"seed={SEEDS}"]
        print(f"break_even: sweep {name}", flush=True)
        if subprocess.run([*cmd, *extra, f"hydra.sweep.dir={root / name}"], env=env).returncode:
            sys.exit(f"error: the sweep {name} failed (its jobs' logs are under {root / name}); run again to resume")


def export(root: Path, data: Path, threads: int, extra: list[str]) -> None:
    runs = drop_duplicates(load_runs([root / name for name in SWEEPS if (root / name).exists()]))
    done = [r for r in runs if r.get("status") == "completed"]
    meta = {
        "command": " ".join(["python scripts/break_even.py", f"--dir {root}", f"--threads {threads}", *extra]),
        "commit": git_commit(),
        "date": str(datetime.date.today()),
        "machine": f"{cpu_name()}, {os.cpu_count()} cores visible",
        "runs": len(done),
        "run_minutes": round(sum(r.get("wall_time_s", 0) for r in done) / 60, 1),
    }
    export_runs(data, done, ROWS, lambda run, name: True, root, meta)


def write_report(data: Path, out: Path, figures: bool = True) -> None:
    """The report (and its figure, beside it) from the data file."""
    from enlighten.analysis.break_even import analyse, figure, render

    meta, runs = load_runs_file(data)
    head = [
        "# The break-even point at CPU scale (Jastrzebski et al. 2020)",
        "",
        f"- **Runs**: {meta['runs']} completed, made by `{meta['command']}` at commit {meta['commit']} on "
        f"{meta['date']}; {meta['run_minutes']} min of run time in all. The plan: docs/results/break_even_plan.md.",
        f"- **Machine**: {meta['machine']}.",
        f"- **Data**: {data.name} (every number below; `python scripts/break_even.py --report-only` rebuilds "
        f"this file from it). **Report written** at commit {git_commit()} on {datetime.date.today()}.",
        "",
        HEADER_END,
    ]
    name = figure(runs, out.parent, out.stem) if figures else None
    atomic_write_text(out, render(analyse(runs), head, name, plan_deviations(PLAN), runs))
    print(f"break_even: the report is {out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=REPO / "outputs" / "break_even")
    parser.add_argument("--data", type=Path, default=RESULTS / "break_even_data.jsonl.gz")
    parser.add_argument("--out", type=Path, default=RESULTS / "break_even.md")
    parser.add_argument(
        "--threads", type=int, default=2, help="CPU threads per run (results depend on it; the committed runs: 2)"
    )
    parser.add_argument("--report-only", action="store_true", help="rebuild the report from --data")
    parser.add_argument("--no-figure", action="store_true", help="the report without its figure")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    if not args.report_only:
        run_sweeps(args.dir, args.threads, args.overrides)
        export(args.dir, args.data, args.threads, args.overrides)
    write_report(args.data, args.out, figures=not args.no_figure)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
