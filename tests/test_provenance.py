"""Provenance: every attempt records the code (git commit, uncommitted changes), the package versions
and the SLURM job it ran in; collect.py makes columns of them."""

from __future__ import annotations

import subprocess

import torch

from enlighten.analysis.collect import collect
from enlighten.analysis.runs import load_runs
from enlighten.provenance import code_version, scheduler
from tests.conftest import REPO

SLURM_ENV = {
    "SLURM_JOB_ID": "4242",
    "SLURM_ARRAY_JOB_ID": "4240",
    "SLURM_ARRAY_TASK_ID": "2",
    "SLURM_RESTART_COUNT": "1",
    "SLURM_JOB_PARTITION": "gpu",
}


def _git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def test_the_code_version_is_the_commit_and_dirty_only_with_a_changed_tracked_file(tmp_path):
    """A planted answer: a repository with one commit is clean at that commit; an untracked file leaves
    it clean (outputs and data land in the checkout); an edited tracked file makes it dirty."""
    _git(tmp_path, "init", "-q")
    (tmp_path / "train.py").write_text("print(1)\n")
    _git(tmp_path, "add", "train.py")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    head = _git(tmp_path, "rev-parse", "HEAD")
    assert code_version.__wrapped__(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "outputs.txt").write_text("a run's output\n")
    assert code_version.__wrapped__(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "train.py").write_text("print(2)\n")
    assert code_version.__wrapped__(tmp_path) == {"commit": head, "dirty": True}
    assert code_version.__wrapped__(tmp_path / "not_a_repo") == {"commit": None, "dirty": None}


def test_slurm_ids_are_read_from_the_job_environment():
    assert scheduler(SLURM_ENV) == {
        "job_id": "4242",
        "array_job_id": "4240",
        "array_task_id": "2",
        "restart_count": "1",
        "partition": "gpu",
    }
    assert scheduler({"HOME": "/root"}) == {}


def test_every_attempt_records_its_provenance_and_collect_has_columns_of_the_last(tiny_run, tmp_path, monkeypatch):
    for name, value in SLURM_ENV.items():
        monkeypatch.setenv(name, value)
    _, summary = tiny_run("logger=none", name="sweep/run")
    (attempt,) = summary["attempts"]
    record = attempt["provenance"]
    assert record["code"] == code_version.__wrapped__(REPO)  # this checkout's commit, read with git
    assert record["software"]["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert record["software"]["cuda"] == torch.version.cuda and record["software"]["python"]
    assert record["slurm"] == scheduler(SLURM_ENV)
    (row,) = collect(load_runs([tmp_path / "sweep"]))
    assert row["provenance.code.commit"] == record["code"]["commit"]
    assert row["provenance.slurm.job_id"] == "4242" and row["provenance.software.torch"] == record["software"]["torch"]
    assert row["attempts"] == 1 and row["device_name"] == "cpu"
