"""Sweep directories: rename the jobs of a sweep written before 2026-12-07 (named by job number) to
today's names (by their overrides), so that running its command again resumes it and a grown sweep
trains only its new jobs.

    python scripts/sweep.py migrate multirun/2026-12-01/10-00-00_48213a1f2 [--dry-run]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from enlighten.errors import UserError  # noqa: E402
from enlighten.sweeps import migrate  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    rename = commands.add_parser("migrate", help="rename job directories named by job number to today's names")
    rename.add_argument("sweep_dir", type=Path)
    rename.add_argument("--dry-run", action="store_true", help="list the renames, change nothing")
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        parser.error(f"{args.sweep_dir} is not a folder")
    try:
        moves = migrate(args.sweep_dir, dry_run=args.dry_run)
    except UserError as e:
        sys.exit(f"error: {e}")
    for old, new in moves:
        print(f"{old.name} -> {new.name}")
    verb = "would be renamed" if args.dry_run else "renamed"
    print(f"{len(moves)} job directories {verb} in {args.sweep_dir}." if moves else
          f"{args.sweep_dir}: no job directories named by job number; nothing to do.")


if __name__ == "__main__":
    main()
