"""Sweep directories: how a job's directory is named, and moving sweeps named the old way.

A job's directory is named by its overrides (Hydra's `override_dirname`, cut to fit with a hash:
`config.short_name`), as conf/config.yaml sets `hydra.sweep.subdir`. The name does not depend on the
job's number, so a sweep grown by seeds or arms and run again into the same `hydra.sweep.dir` finds
its finished jobs where they were (each skipped: run() checks summary.json), and trains only the new
ones. Sweeps written before 2026-12-07 named their jobs `<job number>_<overrides>`, without
`experiment` and `dataset.root` in the overrides; `migrate` renames them to today's names.

No torch here: train.py's pre-launch check and scripts/sweep.py use it.
"""

from __future__ import annotations

import re
from pathlib import Path

from omegaconf import OmegaConf

from enlighten.config import CONF_DIR, short_name
from enlighten.errors import UserError

OLD_STYLE = re.compile(r"^\d+_")


def excluded_keys(conf_dir: Path = CONF_DIR) -> list[str]:
    """The keys left out of job names, as conf/config.yaml lists them (written there once)."""
    hydra = OmegaConf.load(conf_dir / "config.yaml").hydra
    return list(hydra.job.config.override_dirname.exclude_keys)


def job_dir_name(overrides: list[str], exclude: list[str] | None = None) -> str:
    """The directory name Hydra gives a job with these overrides under conf/config.yaml's
    `hydra.sweep.subdir` (its `override_dirname`: the overrides of the non-excluded keys, sorted, joined
    by commas; then `short_name`)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    exclude = excluded_keys() if exclude is None else exclude
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return short_name(",".join(sorted(o.input_line for o in parsed if o.key_or_group not in exclude)))


def old_style_jobs(sweep_dir: Path) -> list[Path]:
    """Job directories named by job number (`3_seed=1,...`) that hold a job's record (`.hydra`)."""
    if not sweep_dir.is_dir():
        return []
    return sorted(p for p in sweep_dir.iterdir()
                  if p.is_dir() and OLD_STYLE.match(p.name) and (p / ".hydra" / "overrides.yaml").is_file())


def check_sweep_names(sweep_dir: Path) -> None:
    """Before a sweep is launched into `sweep_dir`: jobs there named the old way would not be found
    (each would train again beside its finished copy). Refused, with the command that renames them."""
    old = old_style_jobs(Path(sweep_dir))
    if old:
        raise UserError(f"hydra.sweep.dir={sweep_dir} holds {len(old)} job directories named by job number, as sweeps "
                        f"were before 2026-12-07 (e.g. {old[0].name}); jobs are now named by their overrides, so these "
                        f"would train again. Rename them first: python scripts/sweep.py migrate {sweep_dir}")


def migrate(sweep_dir: Path, dry_run: bool = False) -> list[tuple[Path, Path]]:
    """Rename the old-style job directories of `sweep_dir` to the names today's config gives them
    (from each job's own `.hydra/overrides.yaml`). All or nothing: refused when a new name exists
    already or two jobs would share one."""
    moves = [(old, old.with_name(job_dir_name(list(OmegaConf.load(old / ".hydra" / "overrides.yaml")))))
             for old in old_style_jobs(Path(sweep_dir))]
    targets = [new for _, new in moves]
    clashes = sorted({str(new) for new in targets if new.exists() or targets.count(new) > 1})
    if clashes:
        raise UserError(f"{sweep_dir}: cannot rename, these names exist already or would be given twice: "
                        f"{', '.join(clashes[:5])}{' ...' if len(clashes) > 5 else ''}. Nothing was renamed.")
    if not dry_run:
        for old, new in moves:
            old.rename(new)
    return moves
