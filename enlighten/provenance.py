"""Where and with what a run attempt ran: the code (git commit, uncommitted changes), the software
(Python, torch, CUDA, cuDNN, timm, ...) and the scheduler's job (SLURM job and array ids, requeue
count). Recorded in every attempt of summary.json, in the W&B config and in collect.py's columns, so
that a table's numbers can be traced to the code and the machine that made them, also when code was
edited while a sweep's jobs waited in the queue (each job records what it ran).

No torch import at module level: the versions are read where torch is already loaded.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# SLURM's variables worth keeping, under shorter names. SLURM_ARRAY_* exist only in array jobs and
# SLURM_RESTART_COUNT only after a requeue.
SLURM_VARIABLES = {
    "SLURM_JOB_ID": "job_id",
    "SLURM_ARRAY_JOB_ID": "array_job_id",
    "SLURM_ARRAY_TASK_ID": "array_task_id",
    "SLURM_RESTART_COUNT": "restart_count",
    "SLURM_JOB_PARTITION": "partition",
    "SLURM_CLUSTER_NAME": "cluster",
    "SLURM_JOB_NODELIST": "nodes",
}
PACKAGES = ("torch", "torchvision", "timm", "numpy", "hydra-core", "omegaconf", "submitit", "wandb")


@functools.lru_cache(maxsize=1)
def code_version(repo: Path = REPO) -> dict:
    """The git commit of the code that runs and whether tracked files differ from it (`dirty`); None
    for both outside a git checkout (an installed copy) or without git."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=20, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        # --no-optional-locks: many array tasks starting at once must not take (or leave) .git/index.lock
        dirty = bool(git("--no-optional-locks", "status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


@functools.lru_cache(maxsize=1)
def software() -> dict:
    """Python and the installed versions of the packages that decide the numbers; CUDA and cuDNN as
    torch was built with them (None on a CPU-only build)."""
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    torch = sys.modules.get("torch")
    if torch is not None:
        versions["cuda"] = torch.version.cuda
        versions["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return versions


def scheduler(environ: dict | None = None) -> dict:
    """The SLURM job this process runs in (empty outside SLURM): job id, array ids, requeue count..."""
    environ = os.environ if environ is None else environ
    return {name: environ[var] for var, name in SLURM_VARIABLES.items() if var in environ}


def provenance() -> dict:
    """All of it, for one attempt: {"code": ..., "software": ..., "slurm": ...}."""
    return {"code": code_version(), "software": software(), "slurm": scheduler()}
