"""Sweeps: submitit's local launcher (the SLURM code path without a cluster) and re-runnable sweeps.
joblib's packed jobs are run by the bench's sweep section (tests/test_bench.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import FOLDER_SETS, REPO, TINY, compose_cfg, options, read_run, run_train, user_env

pytestmark = pytest.mark.e2e  # trains or starts train.py: apart from the unit tests (make test-unit)

FAST = ["dataset=digits", "model=cnn", "trainer.epochs=1", "logger=none", "diagnostics=off"]


def test_local_launcher_runs_each_job_in_its_own_process(tmp_path):
    sweep = tmp_path / "sweep"
    run_train(
        ["-m", "hydra/launcher=local", "strategy=vanilla,mixup", *FAST, f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path,
        timeout=600,
    )
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert len(jobs) == 2
    summaries = [read_run(j)[1] for j in jobs]
    assert all(s["status"] == "completed" for s in summaries)
    assert len({s["pid"] for s in summaries}) == 2  # one process per job


def test_basic_launcher_runs_jobs_in_one_process_and_rerun_completes_only_missing_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "strategy=vanilla,mixup", "seed=0,1", *FAST, f"hydra.sweep.dir={sweep}"]
    run_train(args, cwd=tmp_path, timeout=600)
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    summaries = {j.name: read_run(j)[1] for j in jobs}
    assert len(jobs) == 4 and len({s["pid"] for s in summaries.values()}) == 1
    # as if the sweep had been killed: one job never finished, one failed
    (jobs[1] / "summary.json").unlink()
    failed = dict(summaries[jobs[2].name], status="failed")
    (jobs[2] / "summary.json").write_text(json.dumps(failed))
    proc = run_train(args, cwd=tmp_path, timeout=600)
    assert proc.stdout.count("Skipping") == 2
    assert f"Sweep {sweep}: 4 jobs (4 completed (2 of them before: skipped))." in proc.stdout
    again = {j.name: read_run(j)[1] for j in jobs}
    assert all(s["status"] == "completed" for s in again.values())
    for i in (0, 3):  # completed jobs were not rerun
        assert again[jobs[i].name]["pid"] == summaries[jobs[i].name]["pid"]
    for i in (1, 2):
        assert again[jobs[i].name]["pid"] != summaries[jobs[i].name]["pid"]
    # Grown by a seed: job directories are named by their overrides, not their numbers, so the four
    # finished jobs are found where they are and only 2 arms x 1 new seed train.
    grown = run_train([a.replace("seed=0,1", "seed=0,1,2") for a in args], cwd=tmp_path, timeout=600)
    assert grown.stdout.count("Skipping") == 4 and grown.stdout.count("(not launched)") == 4
    assert "Launching 2 jobs locally" in grown.stdout  # the sweeper hands the launcher only the new jobs
    assert f"Sweep {sweep}: 6 jobs (6 completed (4 of them before: skipped))." in grown.stdout
    assert {j.name: read_run(j)[1]["pid"] for j in jobs} == {j.name: s["pid"] for j, s in zip(jobs, again.values())}
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir() and p not in jobs) == [
        f"dataset=digits,diagnostics=off,model=cnn,seed=2,strategy={s},trainer.epochs=1" for s in ("mixup", "vanilla")
    ]


def test_a_sweep_named_by_job_number_is_refused_until_migrated_then_resumes(tmp_path):
    """Sweeps written before 2026-12-07 named jobs `<number>_<overrides>`: launched into again, each job
    would train anew beside its finished copy. Refused, naming the command that renames them; after it,
    the same command skips every job."""
    sweep = tmp_path / "sweep"
    args = ["-m", "seed=0,1", *FAST, f"hydra.sweep.dir={sweep}"]
    run_train(
        [*args, "hydra.sweep.subdir=${hydra.job.num}_${hydra.job.override_dirname}"], cwd=tmp_path
    )  # the old names
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir())[0].startswith("0_")
    refused = run_train(args, cwd=tmp_path, check=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert f"Rename them first: python scripts/sweep.py migrate {sweep}" in refused.stderr
    migrate = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "sweep.py"), "migrate", str(sweep)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "2 job directories renamed" in migrate.stdout
    resumed = run_train(args, cwd=tmp_path)
    assert (
        resumed.stdout.count("Skipping") == 2 and "2 jobs (2 completed (2 of them before: skipped))" in resumed.stdout
    )


def test_every_launcher_option_composes():
    """Through Hydra's compose API (the launcher plugins register their configs on import)."""
    from hydra import compose, initialize_config_dir

    for launcher, plugin in (("local", "submitit"), ("slurm", "submitit"), ("joblib", "joblib")):
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            cfg = compose(config_name="config", overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True)
        assert plugin in cfg.hydra.launcher._target_, launcher
    assert cfg.hydra.launcher.n_jobs == -1  # joblib's own default: one worker per core


def test_the_plugins_own_launcher_names_are_refused_pointing_to_ours(tmp_path):
    """`hydra/launcher=submitit_slurm` would silently lose our GPU default and max_num_timeout=3."""
    import subprocess
    import sys

    from enlighten.callbacks import check_launcher
    from enlighten.errors import UserError

    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "train.py"),
            "-m",
            "hydra/launcher=submitit_slurm",
            "dataset=digits",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and not (tmp_path / "sweep").exists()
    assert proc.stderr.startswith("hydra/launcher=submitit_slurm is the plugin's own config, without our defaults")
    assert "use hydra/launcher=slurm" in proc.stderr
    for ours in ("slurm", "local", "joblib", None):
        check_launcher(ours)  # ours pass
    with pytest.raises(UserError, match="use hydra/launcher=local"):
        check_launcher("submitit_local")  # also when a config file chose it: run() checks the composed choice


def test_a_job_refused_at_start_up_says_so_in_its_directory_and_in_the_sweep_summary(tmp_path):
    """A sweep job with a bad setting: its train.log holds the error, its summary.json says failed with
    the error (not "missing"), and the sweep's last lines name it; the same directory then takes a
    corrected run (a refused run has nothing to protect)."""
    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "train.py"),
            "-m",
            *TINY,
            "trainer.epochs=1",
            "mix.alpha=0.2,-1",
            f"hydra.sweep.dir={sweep}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=user_env(),
    )
    assert proc.returncode != 0
    job = next(sweep.glob("*mix.alpha=-1*"))
    summary = json.loads((job / "summary.json").read_text())
    assert (
        summary["status"] == "failed"
        and summary["error"] == "ConfigError: mix.alpha must be >= 0, got -1.0 (0 turns it off)."
    )
    assert "mix.alpha must be >= 0, got -1.0" in (job / "train.log").read_text()
    assert "2 jobs (1 completed, 1 failed)" in proc.stdout
    assert f"  {job.name}: ConfigError: mix.alpha must be >= 0, got -1.0 (0 turns it off)." in proc.stdout
    from enlighten.run import run

    fixed = run(compose_cfg([*TINY, "trainer.epochs=1", "mix.alpha=0.5"], job))
    assert fixed["status"] == "completed"


def test_ctrl_c_in_a_sweep_ends_with_one_line_and_a_summary_that_counts_every_job(tmp_path):
    """Ctrl-C during the first of three jobs: no traceback, one line saying what happened, the job marked
    interrupted in its summary.json, and the sweep's summary counting the two jobs it never started."""
    import signal
    import time

    sweep = tmp_path / "sweep"
    # SIGINT as at a terminal: a test run started in the background (`make test &`) ignores SIGINT, and
    # its children would inherit that (Python then installs no Ctrl-C handler)
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "train.py"),
            "-m",
            *TINY,
            "trainer.epochs=400",
            "seed=0,1,2",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=tmp_path,
        env=user_env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 240
    while not any("epoch 2 of 400" in p.read_text() for p in sweep.glob("*seed=0*/train.log")):
        if time.time() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail(f"the first job did not reach its third epoch: {proc.communicate()[1][-2000:]}")
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err[-3000:]
    assert "Interrupted (Ctrl-C). The run in progress is marked interrupted in its summary.json" in err
    assert "run the same command with hydra.sweep.dir set to its directory" in err
    summary = json.loads(next(sweep.glob("*seed=0*/summary.json")).read_text())
    assert summary["status"] == "interrupted" and summary["signal"] == "SIGINT"
    assert f"Sweep {sweep}: 3 jobs (1 interrupted, 2 not started)." in out


def test_a_job_refused_for_another_configs_run_is_named_and_that_run_kept(tmp_path):
    """A sweep aimed at a directory whose job holds a completed run of another config: the job is refused,
    the earlier summary.json left as it is, and the sweep's report names it as refused (not completed)."""
    sweep = tmp_path / "sweep"
    command = [
        sys.executable,
        str(REPO / "train.py"),
        "-m",
        *TINY,
        "trainer.epochs=1",
        "seed=0",
        f"hydra.sweep.dir={sweep}",
        "hydra.sweep.subdir=job",
    ]  # one job directory whatever the overrides
    subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=user_env(), check=True)
    job = sweep / "job"
    for checkpoint in (job / "checkpoints").glob("*.pt"):
        checkpoint.unlink()  # removed to save quota
    before = (job / "summary.json").read_bytes()
    proc = subprocess.run(
        [*command, "trainer.train_eval_samples=32"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=user_env(),
    )
    assert proc.returncode != 0 and (job / "summary.json").read_bytes() == before
    assert "holds a completed run of a different config" in (job / "train.log").read_text()
    assert "1 jobs (1 refused (an earlier run kept))" in proc.stdout and "refused (ConfigError:" in proc.stdout


def test_the_plan_lists_a_bad_key_in_every_job_before_anything_is_queued_without_torch(tmp_path):
    """`optim=adamw` on a paper experiment leaves its `optim.momentum`, which AdamW does not take: each
    job would fail after its queue wait. The plan names it for every job, exits 1, and imports no torch
    (it reads the callables' parameters from our source)."""
    wrapper = (
        "import runpy, sys\nsys.argv = sys.argv[1:]\ntry:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "except SystemExit as e:\n    print('EXIT', e.code)\nprint('TORCH', 'torch' in sys.modules)\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            wrapper,
            str(REPO / "scripts" / "sweep.py"),
            "plan",
            "experiment=paper/cifar10_resnet18",
            "optim=adamw",
            "seed=0,1",
            f"hydra.sweep.dir={tmp_path / 's'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    lines = proc.stdout.splitlines()
    assert lines[0] == f"Sweep {tmp_path / 's'}: 12 jobs (12 new); 12 with a bad setting.", proc.stdout + proc.stderr
    assert proc.stdout.count("ConfigError: Unknown key 'optim.momentum' for enlighten.training.optim.adamw.") == 12
    assert lines[-2:] == ["EXIT 1", "TORCH False"]
    assert not (tmp_path / "s").exists()  # nothing launched, nothing written


def test_the_plan_tells_finished_jobs_from_new_ones(tmp_path):
    sweep = tmp_path / "sweep"
    run_train(["-m", *FAST, "seed=0", f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    finished = next(sweep.glob("*seed=0*"))
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "sweep.py"),
            "plan",
            "-m",
            *FAST,
            "seed=0,1",
            f"hydra.sweep.dir={sweep}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0 and proc.stdout.startswith(f"Sweep {sweep}: 2 jobs (1 completed, 1 new).\n")
    assert f"  completed    {finished.name}" in proc.stdout
    assert "  new          dataset=digits,diagnostics=off,model=cnn,seed=1,trainer.epochs=1" in proc.stdout


@pytest.mark.parametrize("group", ["model", "strategy", "phase", "optim", "sched", "logger", "diagnostics", "dataset"])
def test_the_plans_check_without_imports_accepts_every_option_the_real_check_accepts(group, tmp_path):
    """The plan reads signatures from source (no torch): never a false alarm where validate, importing
    the callables, passes; and the same refusal for an unknown key."""
    from enlighten.config import ConfigError, validate
    from enlighten.sweeps import static_signature

    for option in options(group):
        overrides = [f"{group}={option}"] + (
            ["dataset.root=/nonexistent"] if group == "dataset" and option in FOLDER_SETS else []
        )
        validate(compose_cfg(overrides, tmp_path), resolve=static_signature)
    if group in ("model", "optim", "phase"):
        bad = compose_cfg([f"+{group}.no_such_key=1"], tmp_path)
        with pytest.raises(ConfigError, match=f"Unknown key '{group}.no_such_key'"):
            validate(bad, resolve=static_signature)
