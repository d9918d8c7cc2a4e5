"""Sweep directories.

    python scripts/sweep.py plan OVERRIDES...      e.g. experiment=tradeoff hydra.sweep.dir=multirun/tradeoff
    python scripts/sweep.py migrate SWEEP_DIR [--dry-run]
    python scripts/sweep.py wandb-sync SWEEP_DIR... [--dry-run]

plan: every job of a train.py -m command (its sweeps and its experiment's grid), composed and checked
as train.py would check it, without torch and before anything is queued, with its state in the sweep
directory: new, completed (skipped when run), interrupted or failed (run, resuming), other config
(refused when run). Exit status 1 when a job has a bad setting, naming it.
migrate: rename the jobs of a sweep written before 2026-12-07 (named by job number) to today's names
(by their overrides), so that running its command again resumes it and a grown sweep trains only its
new jobs.
wandb-sync: upload the offline W&B runs of every job (each job keeps its own in <job>/wandb/, where
`wandb sync`'s own search does not look) with one `wandb sync` call; needs network and `wandb login`.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from enlighten.errors import UserError  # noqa: E402
from enlighten.sweeps import migrate, one_line_errors, plan  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    rename = commands.add_parser("migrate", help="rename job directories named by job number to today's names")
    rename.add_argument("sweep_dir", type=Path)
    rename.add_argument("--dry-run", action="store_true", help="list the renames, change nothing")
    planned = commands.add_parser("plan", help="list and check the jobs of a train.py -m command before queueing")
    planned.add_argument("overrides", nargs="+", help="the overrides of the train.py -m command")
    planned.add_argument("-m", "--multirun", action="store_true", help="ignored: the train.py command pastes as it is")
    sync = commands.add_parser("wandb-sync", help="upload every job's offline W&B runs with one wandb sync")
    sync.add_argument("sweep_dirs", type=Path, nargs="+")
    sync.add_argument("--dry-run", action="store_true", help="list the runs and the command, upload nothing")
    args = parser.parse_args(argv)
    if args.command == "plan":
        show_plan(args.overrides)
        return
    if args.command == "wandb-sync":
        wandb_sync(parser, args.sweep_dirs, args.dry_run)
        return
    if not args.sweep_dir.is_dir():
        parser.error(f"{args.sweep_dir} is not a folder")
    try:
        moves = migrate(args.sweep_dir, dry_run=args.dry_run)
    except UserError as e:
        sys.exit(f"error: {e}")
    for old, new in moves:
        print(f"{old.name} -> {new.name}")
    verb = "would be renamed" if args.dry_run else "renamed"
    print(
        f"{len(moves)} job directories {verb} in {args.sweep_dir}."
        if moves
        else f"{args.sweep_dir}: no job directories named by job number; nothing to do."
    )


def show_plan(overrides: list[str]) -> None:
    with one_line_errors():
        sweep_dir, jobs = plan(overrides)
    counts = collections.Counter(job.status for job in jobs)
    bad = [job for job in jobs if job.error]
    where = f"Sweep {sweep_dir}" if sweep_dir else "A new sweep (no hydra.sweep.dir given: a new folder each launch)"
    print(
        f"{where}: {len(jobs)} jobs ({', '.join(f'{n} {s}' for s, n in counts.most_common())})"
        + (f"; {len(bad)} with a bad setting" if bad else "")
        + "."
    )
    for job in jobs:
        print(f"  {job.status:<12} {job.name}" + (f"\n               {job.error}" if job.error else ""))
    if bad:
        sys.exit(1)


def wandb_sync(parser: argparse.ArgumentParser, sweep_dirs: list[Path], dry_run: bool) -> None:
    missing = [str(d) for d in sweep_dirs if not d.is_dir()]
    if missing:
        parser.error(f"not a folder: {', '.join(missing)}")
    runs = sorted(p for d in sweep_dirs for p in d.rglob("wandb/offline-run-*") if p.is_dir())
    if not runs:
        sys.exit(f"error: no offline W&B runs (<job>/wandb/offline-run-*) under {', '.join(map(str, sweep_dirs))}")
    command = [sys.executable, "-m", "wandb", "sync", *map(str, runs)]
    print(f"{len(runs)} offline W&B runs: " + " ".join(command[1:4]) + " " + " ".join(map(str, runs)))
    if not dry_run:
        sys.exit(subprocess.run(command).returncode)


if __name__ == "__main__":
    main()
