"""Hydra callbacks (hydra.callbacks in conf/config.yaml): what a sweep says about itself, and the
launcher check.

- After each job of a multirun: one result line (in the job's own log under a SLURM launcher).
- When the sweep ends, also after a failed job: one summary line per status and where the table is.
- A launcher chosen by the plugin's own name (`submitit_slurm`, `submitit_local`) lacks the defaults
  that requeue-and-resume depends on: `check_launcher` refuses it, pointing to ours (train.py calls it
  on the command line, `run()` on the composed choice; Hydra turns a callback's error into a warning).

No torch here: Hydra loads callbacks for every command.
"""

from __future__ import annotations

import atexit
import collections
import json
from pathlib import Path

from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from enlighten.errors import UserError

OURS = {"submitit_slurm": "slurm", "submitit_local": "local"}


def check_launcher(choice: str | None) -> None:
    if choice in OURS:
        raise UserError(
            f"hydra/launcher={choice} is the plugin's own config, without our defaults (one GPU per job, "
            f"max_num_timeout=3, on which requeue-and-resume depends): use hydra/launcher={OURS[choice]}, which "
            f"builds on it (conf/hydra/launcher/{OURS[choice]}.yaml).")


def result_line(summary: dict) -> str:
    """How a run ended, in one line: status, accuracy, where the ENP ended, time."""
    parts = [summary.get("status", "?")]
    for key, fmt in (("final_val_acc", "val_acc {:.4f}"), ("final_val_bpc", "val_bpc {:.3f}"),
                     ("enp_end_step", "ENP end step {}"), ("wall_time_s", "{:.0f} s")):
        if summary.get(key) is not None:
            parts.append(fmt.format(summary[key]))
    if summary.get("status") not in ("completed", None) and summary.get("error"):
        parts.append(summary["error"].splitlines()[0][:200])
    return ", ".join(parts)


def sweep_report(sweep_dir: Path) -> str:
    from enlighten.analysis.runs import load_runs  # reads summaries only

    runs = load_runs([sweep_dir]) if sweep_dir.is_dir() else []
    counts = collections.Counter(r.get("status", "?") for r in runs)
    statuses = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    return (f"Sweep {sweep_dir}: {len(runs)} jobs ({statuses or 'none'}). Table: python scripts/make_tables.py "
            f"{sweep_dir}; one row per run: python scripts/collect.py {sweep_dir} --out runs.csv")


class SweepReport(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        # atexit: Hydra ends a sweep with a failed job by raising, and on_multirun_end is then never called.
        atexit.register(lambda: print(sweep_report(Path(config.hydra.sweep.dir)), flush=True))

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs) -> None:
        if config.hydra.mode.name != "MULTIRUN":
            return
        path = Path(config.hydra.runtime.output_dir) / "summary.json"
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError):
            summary = {"status": "no summary", "error": str(getattr(job_return, "_return_value", ""))}
        print(f"[job {config.hydra.job.num}] {result_line(summary)}  ({config.hydra.runtime.output_dir})", flush=True)
