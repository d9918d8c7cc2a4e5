"""Hydra's basic sweeper, launching only the jobs that have not completed (conf/config.yaml selects it
as `hydra/sweeper: enlighten`). A job whose directory holds a summary.json that says completed, of the
same config, is left out before the launcher sees the batch: re-running a finished SLURM sweep submits
nothing, and a grown or half-finished one submits only its new, failed and interrupted jobs (each
resumes from its checkpoint). Everything else is the basic sweeper's: the grid, `params`,
`max_batch_size`. Found by Hydra's plugin search (the `hydra_plugins` namespace, beside train.py, which
also puts this folder on the PYTHONPATH of the jobs it launches).
"""

# No `from __future__ import annotations`: Hydra's plugin search runs this module outside sys.modules,
# where a dataclass cannot resolve string annotations.
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore

log = logging.getLogger("enlighten")


@dataclass
class SkipCompletedSweeperConf:
    _target_: str = "hydra_plugins.enlighten_sweeper.SkipCompletedSweeper"
    max_batch_size: Optional[int] = None
    params: Optional[dict[str, str]] = None


ConfigStore.instance().store(
    group="hydra/sweeper", name="enlighten", node=SkipCompletedSweeperConf, provider="enlighten"
)


class _Launching:
    """The launcher, given only non-empty batches (submitit's cannot launch none)."""

    def __init__(self, launcher) -> None:
        self.launcher = launcher

    def launch(self, job_overrides, initial_job_idx: int):
        return self.launcher.launch(job_overrides, initial_job_idx=initial_job_idx) if job_overrides else []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.launcher, name)


class SkipCompletedSweeper(BasicSweeper):
    def setup(self, *, hydra_context, task_function, config) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.launcher = _Launching(self.launcher)

    def get_job_batch(self):
        from enlighten.config import job_dir_name
        from enlighten.errors import UserError

        batch, left, names = super().get_job_batch(), [], {}
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        for overrides in batch:
            name = job_dir_name(list(overrides))
            first = names.setdefault(name, overrides)
            if first is not overrides:  # a swept setting that changes no result (logger, paths) shares a directory
                raise UserError(
                    f"jobs {' '.join(first)} and {' '.join(overrides)} would share one directory: they "
                    f"differ only in settings that change no result (enlighten/config.py, RESULT_NEUTRAL_KEYS). "
                    f"Sweep them in separate sweeps (hydra.sweep.dir)."
                )
            # Composing a job takes about a second: only where its directory holds a summary already.
            if (sweep_dir / name / "summary.json").is_file() and self._completed(overrides):
                continue
            left.append(overrides)
        return left

    def _completed(self, overrides) -> bool:
        """As run() decides it (results.completed_before), after checking the job as run() does (which
        also reads `trainer.resume=NEVER` as `never`); a job that would be refused is launched, so that
        its refusal is said where run() says it, in the job's own directory."""
        from enlighten.results import completed_before
        from enlighten.sweeps import check_job, run_config

        job = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        job_dir = Path(str(job.hydra.sweep.dir)) / str(job.hydra.sweep.subdir)
        try:
            check_job(job, job_dir)
        except Exception:  # noqa: BLE001 - a bad setting: run() names it
            return False
        if completed_before(job_dir, run_config(job, job_dir), job.trainer) is None:
            return False
        log.info(f"Skipping {job_dir}: summary.json says completed, with the same config (not launched).")
        return True
