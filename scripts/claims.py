"""`make claims`: the paper's four claims on real data. Runs the claims sweeps (conf/experiment/claims/),
then writes the report and its figures (enlighten/analysis/claims.py; docs/claims.md explains both).

    python scripts/claims.py [--profile cpu|smoke|cifar|paper] [--dir DIR] [--out REPORT] [--report-only]
                             [--no-figures] [--dry-run] [OVERRIDE...]

- `cpu` (the default): the grids as configured, about an hour on 2 CPU cores (docs/results/claims.md).
- `smoke`: the same pipeline tiny (2 seeds, 2 sizes, width 0.5, 120 steps), under 5 minutes.
- `cifar`: the CPU grids on the CIFAR-10 copy (add `dataset.root=DIR`), 1,500 steps a run.
- `paper`: the same experiments at the paper's scale: ResNet-18 on CIFAR-10 with the common recipe, on
  GPUs (`--dry-run` prints the commands; add `hydra/launcher=slurm` to send them to SLURM).
OVERRIDEs go to every sweep, e.g. `dataset=fashion_mnist paths.data_dir=/data`. Each sweep writes into
DIR/<sweep>; running again skips the completed jobs (train.py's skip_completed), so an interrupted run
resumes where it stopped. Each run appends its timing to DIR/timing.jsonl.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from enlighten.analysis.claims import EXPERIMENTS, analyse, render  # noqa: E402
from enlighten.analysis.runs import DuplicateRuns, drop_duplicates, load_runs  # noqa: E402
from enlighten.results import atomic_write_text  # noqa: E402

SMALL = ["model.width=0.5", "trainer.max_steps=120", "seed=0,1"]
# Overrides per profile and sweep (the sweep's own grid is in its config file; these replace parts of it).
PROFILES = {
    "cpu": {},
    "smoke": {
        "claims/interference": ["dataset.fraction=0.01,0.02", "model.width=0.5", "seed=0,1"],
        "claims/training": ["dataset.fraction=0.01,0.02", *SMALL],
        "claims/pause_grid": ["phase.fraction=0.1,0.3", *SMALL],
        "claims/detectors": SMALL,
    },
    # The CIFAR-10 copy of ../shared/data as an image folder (add dataset.root=DIR, made by its prepare.py):
    # the 50% detector needs 190-260 steps at 600 images and 530-660 at 6,000 (width 0.5, one seed each,
    # 2026-12-01), so 1,500 steps; not run here (about 40 s a job at width 0.5: several hours on 2 cores).
    "cifar": {"*": ["dataset=image_folder", "trainer.max_steps=1500"]},
    # ResNet-18 on CIFAR-10 (the `tradeoff` recipe): 10% to 100% of the images, 100 epochs of the full set
    # (39,100 steps of 128) for every size, 5 seeds; the ENP ends within the first few epochs.
    "paper": {
        "*": ["dataset=cifar10", "model=resnet18", "trainer.device=auto", "trainer.batch_size=128",
              "trainer.max_steps=39100", "trainer.eval_every=10", "optim.lr=0.1", "trainer.train_eval_samples=10000"],
        "claims/interference": ["dataset.fraction=0.1,0.2,0.5,1.0", "trainer.max_steps=1"],
        "claims/training": ["dataset.fraction=0.1,0.2,0.5,1.0"],
        # 10% of CIFAR-10 is 39 steps an epoch: 98 to 3,128 steps, about 2.5 to 80 epochs, around the ENP
        "claims/pause_grid": ["dataset.fraction=0.1", "phase.fraction=0.0025,0.005,0.01,0.02,0.04,0.08"],
        "claims/detectors": ["dataset.fraction=0.1"],
    },
}


def sweep_commands(profile: str, root: Path, extra: list[str]) -> list[tuple[str, list[str]]]:
    overrides = PROFILES[profile]
    return [(name, [sys.executable, str(REPO / "train.py"), "-m", f"experiment={name}", *overrides.get("*", []),
                    *overrides.get(name, []), *extra, f"hydra.sweep.dir={root / name.split('/')[-1]}"])
            for name in EXPERIMENTS]


def git_commit() -> str:
    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + (" (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else "")


def cpu_name() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.machine()


def header(args, runs: list[dict], root: Path, commit: str) -> list[str]:
    """Command, commit, date and machine, and how long the sweeps took."""
    command = "python scripts/claims.py " + " ".join([f"--profile {args.profile}", f"--dir {args.dir}",
                                                      f"--out {args.out}", *args.overrides])
    done = [r for r in runs if r.get("status") == "completed"]
    hosts = sorted({r.get("host", "?") for r in done})
    threads = sorted({r.get("runtime", {}).get("torch_threads") for r in done} - {None})
    lines = ["# The paper's four claims on real data", "",
             f"- **Command**: `{command}`{' (`make claims`)' if args.profile == 'cpu' else ''}; the report alone: "
             f"add `--report-only`.",
             f"- **Commit**: {commit}. **Date**: {datetime.date.today()}.",
             f"- **Machine**: {cpu_name()}, {os.cpu_count()} cores visible; runs on {', '.join(hosts)} "
             f"(torch threads {threads}); {len(done)} completed runs, "
             f"{sum(r.get('wall_time_s', 0) for r in done) / 60:.1f} min of run time in all."]
    timing = root / "timing.jsonl"
    if timing.exists():
        lines.append(f"- **Wall time of each invocation** ({root.name}/timing.jsonl; an invocation skips the jobs an "
                     f"earlier one completed):")
        for row in map(json.loads, timing.read_text().splitlines()):
            lines.append(f"  - {row['started']}: {row['seconds'] / 60:.1f} min, {row.get('status', '?')}"
                         + (f" ({row['note']})" if row.get("note") else ""))
    return lines


def run_sweeps(commands: list[tuple[str, list[str]]], root: Path, args) -> None:
    """Each sweep in turn (from the caller's directory, so relative overrides mean what they say);
    the invocation's wall time goes to DIR/timing.jsonl however it ends."""
    started, t0, status = datetime.datetime.now().isoformat(timespec="seconds"), time.perf_counter(), "interrupted"
    try:
        for name, cmd in commands:
            print(f"claims: {name}", flush=True)
            if subprocess.run(cmd).returncode != 0:
                status = f"{name} failed"
                sys.exit(f"error: the sweep {name} failed (its jobs' logs are under {root / name.split('/')[-1]}); "
                         f"run the same command again to resume it")
        status = "completed"
    finally:
        root.mkdir(parents=True, exist_ok=True)
        with open(root / "timing.jsonl", "a") as f:
            f.write(json.dumps({"started": started, "seconds": time.perf_counter() - t0, "status": status,
                                "profile": args.profile, "overrides": args.overrides}) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    ap.add_argument("--dir", default="outputs/claims", help="the sweeps go to DIR/<sweep>")
    ap.add_argument("--out", default="docs/results/claims.md", help="the report; figures go beside it")
    ap.add_argument("--report-only", action="store_true", help="skip the sweeps: the report from what DIR holds")
    ap.add_argument("--no-figures", action="store_true", help="the report's tables only (quicker)")
    ap.add_argument("--dry-run", action="store_true", help="print the sweep commands and stop")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides for every sweep (dataset=..., paths.data_dir=...)")
    args = ap.parse_args(argv)
    commit = git_commit()  # before the report and its figures change the tree
    root = Path(args.dir).resolve()
    commands = sweep_commands(args.profile, root, args.overrides)
    if args.dry_run:
        print("\n".join(" ".join(cmd) for _, cmd in commands))
        return 0
    if not args.report_only:
        run_sweeps(commands, root, args)
    try:
        runs = drop_duplicates(load_runs([root / name.split("/")[-1] for name in EXPERIMENTS if
                                          (root / name.split("/")[-1]).exists()]))
    except DuplicateRuns as e:
        sys.exit(f"error: {e}")
    if not runs:
        sys.exit(f"error: no runs under {root}: run without --report-only first")
    out = Path(args.out)
    report = analyse(runs, None if args.no_figures else out.parent, prefix=out.stem)
    atomic_write_text(out, render(report, runs, header(args, runs, root, commit)))
    print(f"claims: the report is {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
