"""Sweeps on a real SLURM scheduler (`make test-slurm` starts one on this machine: scripts/slurm_local.sh).

The commands are the ones docs/cluster.md gives, with the CPU-only resources of a test node instead of
one GPU per job. Each test submits real jobs through `hydra/launcher=slurm` (submitit's sbatch arrays)
and acts on them as the scheduler would: a requeue, the preemption signal, a time limit.

The local cluster has no accounting database (no sacct): submitit learns that a job ended from its
result file only, so a job that dies without one would leave the launcher waiting. Every launcher here
runs under a timeout for that reason.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import KILLABLE, REPO, outcome, read_run, run_train, user_env

pytestmark = pytest.mark.slurm

# One CPU and 1 GB per job, no GPU: what the test node has. On a GPU cluster the defaults of
# conf/hydra/launcher/slurm.yaml (one GPU, 8 CPUs) stand instead.
ON_TEST_NODE = [
    "hydra/launcher=slurm",
    "hydra.launcher.gpus_per_node=0",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
    "trainer.device=cpu",
]
FAST = ["dataset=digits", "model=cnn", "trainer.epochs=1", "logger=none", "diagnostics=off"]


@pytest.fixture(scope="module", autouse=True)
def cluster():
    """The scheduler answers, or the tests fail saying how to start one."""
    ready = shutil.which("sinfo") and subprocess.run(["sinfo", "-h"], capture_output=True, text=True, timeout=30)
    if not ready or ready.returncode != 0 or not ready.stdout.strip():
        pytest.fail(
            "no SLURM scheduler answers: run these tests with `make test-slurm`, which starts one on this "
            "machine (scripts/slurm_local.sh up) and stops it after" + (f" ({ready.stderr.strip()})" if ready else "")
        )


def _launch(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(REPO / "train.py"), "-m", *ON_TEST_NODE, *args],
        cwd=cwd,
        env=user_env(ENLIGHTEN_CACHE_DIR=str(cwd / "cache")),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(launcher: subprocess.Popen, timeout: int = 420) -> str:
    try:
        out, _ = launcher.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        launcher.kill()
        raise AssertionError(f"the sweep did not end in {timeout} s:\n{launcher.communicate()[0][-3000:]}") from None
    return out


def _job_ids(sweep: Path) -> list[str]:
    """SLURM's ids of the sweep's jobs ("12" or "12_0" for an array's task), from submitit's folders."""
    return sorted(p.name for p in (sweep / ".submitit").iterdir() if list(p.glob("*_submitted.pkl")))


def _wait_for(pattern: str, folder: Path, launcher: subprocess.Popen, timeout: int = 300) -> None:
    deadline = time.time() + timeout
    while not list(folder.glob(pattern)):
        assert launcher.poll() is None, _finish(launcher)
        assert time.time() < deadline, f"no {pattern} in {folder} after {timeout} s"
        time.sleep(0.2)


def test_a_three_job_array_completes_and_the_tables_read_it(tmp_path):
    sweep = tmp_path / "sweep"
    out = _finish(_launch([*FAST, "seed=0,1,2", f"hydra.sweep.dir={sweep}"], tmp_path))
    assert f"Sweep {sweep}: 3 jobs (3 completed)" in out, out[-3000:]
    summaries = [read_run(path.parent)[1] for path in sorted(sweep.glob("*/summary.json"))]
    assert [s["status"] for s in summaries] == ["completed"] * 3
    slurm = [s["attempts"][-1]["provenance"]["slurm"] for s in summaries]
    assert len({s["array_job_id"] for s in slurm}) == 1  # one array of three tasks
    assert sorted(s["array_task_id"] for s in slurm) == ["0", "1", "2"]
    tables = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_tables.py"), str(sweep)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (row,) = [line.split("|")[1:-1] for line in tables.splitlines() if line.startswith("| mixup")]
    mean = 100 * sum(s["final_test_acc"] for s in summaries) / 3
    assert row[1].strip() == "3" and row[2].strip().startswith(f"{mean:.2f} "), tables
    # The same command again: every job completed, so nothing is submitted (no job waits in the queue)
    submitted = _job_ids(sweep)
    again = _finish(_launch([*FAST, "seed=0,1,2", f"hydra.sweep.dir={sweep}"], tmp_path))
    assert again.count("(not launched)") == 3 and _job_ids(sweep) == submitted, again[-3000:]
    assert f"Sweep {sweep}: 3 jobs (3 completed (3 of them before: skipped))" in again


def _preempted(tmp_path: Path, act) -> tuple[dict, Path]:
    """A job stopped by `act(job_id)` once its second epoch's checkpoint is there, requeued by SLURM,
    then finished: its summary, with the reference run's outcome compared."""
    reference, sweep = tmp_path / "reference", tmp_path / "sweep"
    # 40 epochs of about a second: after SIGTERM a job checkpoints and trains on until SLURM kills it
    # (KillWait, 10 s here): it must not finish in that time, also on an idle machine
    longer = [*KILLABLE, "logger=none", "trainer.epochs=40"]
    run_train([*longer, f"hydra.run.dir={reference}"], cwd=tmp_path)
    launcher = _launch([*longer, f"hydra.sweep.dir={sweep}"], tmp_path)
    _wait_for("*/checkpoints/epoch_0002.pt", sweep, launcher)
    (job_id,) = _job_ids(sweep)
    act(job_id)
    out = _finish(launcher)
    assert launcher.returncode == 0 and f"Sweep {sweep}: 1 jobs (1 completed)" in out, out[-3000:]
    job = next(p.parent for p in sweep.glob("*/summary.json"))
    assert outcome(job) == outcome(reference)  # metrics, diagnostics, detector, summary numbers: bitwise
    return read_run(job)[1], job


def test_a_job_requeued_by_the_scheduler_resumes_and_ends_as_an_uninterrupted_run(tmp_path):
    """`scontrol requeue`: SLURM sends SIGTERM, kills the job and starts it again with the same id."""
    summary, _ = _preempted(tmp_path, lambda job: subprocess.run(["scontrol", "requeue", job], check=True))
    first, second = summary["attempts"]
    assert first["provenance"]["slurm"]["job_id"] == second["provenance"]["slurm"]["job_id"]
    assert second["provenance"]["slurm"]["restart_count"] == "1"
    assert summary["resumed_from"]


def test_the_preemption_signal_checkpoints_at_its_step_and_submitit_requeues(tmp_path):
    """`scancel --signal=USR2`: the signal SLURM sends before preempting or at the time limit. submitit
    requeues the job after our checkpoint at the step the signal arrived."""
    summary, job = _preempted(tmp_path, lambda job: subprocess.run(["scancel", "--signal=USR2", job], check=True))
    assert len(summary["attempts"]) == 2 and "_step_" in Path(summary["resumed_from"]).name
    logs = "".join(p.read_text(errors="replace") for p in (job.parent / ".submitit").rglob("*.err"))
    assert "this job is" in logs and "requeu" in logs.lower()


def test_a_job_at_its_time_limit_is_requeued_up_to_max_num_timeout_then_named_in_the_summary(tmp_path):
    """A real time limit (2 minutes; SLURM's warning signal 60 s before it): submitit requeues the job
    once (max_num_timeout=1), which resumes from its checkpoint; at the second limit it gives up, and
    the sweep names the job with the reason."""
    sweep = tmp_path / "sweep"
    long_run = [*KILLABLE, "logger=none", "trainer.epochs=200"]
    launcher = _launch(
        [
            *long_run,
            "hydra.launcher.timeout_min=2",
            "hydra.launcher.signal_delay_s=60",
            "hydra.launcher.max_num_timeout=1",
            f"hydra.sweep.dir={sweep}",
        ],
        tmp_path,
    )
    out = _finish(launcher, timeout=600)
    assert launcher.returncode != 0, out[-3000:]
    job = next(p.parent for p in sweep.glob("*/summary.json"))
    summary = read_run(job)[1]
    assert summary["status"] == "interrupted" and "timed-out too many times" in summary["error"]
    assert len(summary["attempts"]) == 2 and summary["resumed_from"]
    assert f"{job.name}: " in out and "timed-out too many times" in out.split(f"Sweep {sweep}")[-1]


def test_a_failed_job_leaves_the_others_complete_and_is_named_in_the_summary(tmp_path):
    sweep = tmp_path / "sweep"
    launcher = _launch([*FAST, "strategy=mixup", "mix.alpha=1.0,-1.0", f"hydra.sweep.dir={sweep}"], tmp_path)
    out = _finish(launcher)
    assert launcher.returncode != 0
    report = out.split(f"Sweep {sweep}: ")[-1]
    assert report.startswith("2 jobs (1 completed, 1 failed)"), report
    failed = json.loads(next(p for p in sweep.glob("*mix.alpha=-1.0*/summary.json")).read_text())
    assert failed["status"] == "failed" and "mix.alpha" in failed["error"]
    assert "mix.alpha" in report.splitlines()[1]
