"""Runs that survive: checkpoints, exact resume after SIGKILL, refused and damaged checkpoints,
divergence, and W&B continuing the same run."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from enlighten.config import ConfigError
from enlighten.run import run
from enlighten.training.checkpoint import list_checkpoints, load_latest
from tests.conftest import (
    KILLABLE,
    REPO,
    SHARED_DATA,
    TINY,
    compose_cfg,
    outcome,
    read_run,
    run_train,
    user_env,
)

pytestmark = pytest.mark.e2e  # trains or starts train.py: apart from the unit tests (make test-unit)


def test_sigkill_in_the_third_epoch_then_the_same_command_ends_exactly_as_an_uninterrupted_run(tmp_path):
    """The one real SIGKILL (crashes at a chosen step are tested in-process: test_interruptions.py). The
    kill comes as soon as the second epoch's checkpoint is there, so the third epoch (about a second
    long) has begun and not ended: what it trained is lost, and the resume starts from epoch 2."""
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    run_train([*KILLABLE, f"hydra.run.dir={reference}"], cwd=tmp_path)

    command = [sys.executable, str(REPO / "train.py"), *KILLABLE, f"hydra.run.dir={killed}"]
    env = user_env()
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    second = killed / "checkpoints" / "epoch_0002.pt"
    deadline = time.time() + 240
    while not second.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert second.exists() and not (killed / "summary.json").exists(), "the run ended before it could be killed"
    assert len((killed / "metrics.jsonl").read_text().splitlines()) == 2

    run_train([*KILLABLE, f"hydra.run.dir={killed}"], cwd=tmp_path)  # the same command again
    assert outcome(killed) == outcome(reference)
    summary = read_run(killed)[1]
    assert summary["resumed_from"].endswith("epoch_0002.pt")
    # The W&B run continues under the same id: two offline run folders (two processes), one id.
    ids = {p.name.rsplit("-", 1)[-1] for p in (killed / "wandb").glob("offline-run-*")}
    assert len(ids) == 1
    assert [p.name for p in list_checkpoints(killed)] == [
        "epoch_0004.pt"
    ]  # completed: the final one (keep_checkpoints=1)


FAST = [*TINY, "model=mlp", "model.hidden=32", "trainer.epochs=3", "strategy=alpha_boost", "phase=fraction"]


def _run(tmp_path: Path, name: str, *extra: str) -> dict:
    return run(compose_cfg([*FAST, *extra], tmp_path / name))


def test_a_damaged_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    """... and says so in the log and in the attempt's record (an older checkpoint is a different path to the
    same result, which the record keeps)."""
    _run(tmp_path, "ref")
    _run(tmp_path, "run", "trainer.keep_checkpoints=2")  # two left, as while it trains
    latest = tmp_path / "run" / "checkpoints" / "epoch_0003.pt"
    latest.write_bytes(latest.read_bytes()[:1000])  # truncated
    (tmp_path / "run" / "summary.json").unlink()
    with caplog.at_level(logging.WARNING, logger="enlighten"):
        summary = _run(tmp_path, "run")
    assert re.search(r"Checkpoint .*epoch_0003\.pt is unreadable .*trying the previous one", caplog.text)
    assert any("is unreadable" in w for w in summary["attempts"][-1]["warnings"])
    assert summary["resumed_from"].endswith("epoch_0002.pt")
    assert outcome(tmp_path / "run") == outcome(tmp_path / "ref")


def test_a_checkpoint_from_another_config_is_refused_naming_the_difference(tmp_path, caplog):
    _run(tmp_path, "run", "trainer.epochs=2")
    before = (tmp_path / "run" / "summary.json").read_text()
    with pytest.raises(ConfigError) as e:
        _run(tmp_path, "run", "trainer.epochs=2", "optim.lr=0.05")
    assert "was written by a different config (optim.lr: 0.1 -> 0.05)" in str(e.value)
    assert "trainer.resume=force" in str(e.value)
    assert (tmp_path / "run" / "summary.json").read_text() == before  # earlier results intact
    with caplog.at_level(logging.WARNING, logger="enlighten"):
        summary = _run(tmp_path, "run", "trainer.epochs=2", "optim.lr=0.05", "trainer.resume=force")
    assert "with a different config (trainer.resume=force): optim.lr: 0.1 -> 0.05" in caplog.text
    assert summary["attempts"][-1]["warnings"] == [m for m in caplog.messages if "trainer.resume=force" in m]
    assert summary["status"] == "completed" and summary["resumed_from"].endswith("epoch_0002.pt")
    old = tmp_path / "run" / "checkpoints" / "epoch_0010.pt"  # a longer earlier run's checkpoint
    old.write_bytes((tmp_path / "run" / "checkpoints" / "epoch_0002.pt").read_bytes())
    (tmp_path / "run" / "diagnostics.jsonl").write_text('{"step": 0, "diag/zero_act": 0.5}\n')  # the old run's
    fresh = _run(tmp_path, "run", "trainer.epochs=2", "optim.lr=0.05", "trainer.resume=never", "diagnostics=off")
    assert "resumed_from" not in fresh
    assert not (tmp_path / "run" / "diagnostics.jsonl").exists()  # no old result file beside the new run's
    assert len(list((tmp_path / "run").glob("diagnostics.jsonl.replaced-*"))) == 1  # set aside, not deleted
    # A fresh start sets the earlier checkpoints aside, so a later resume can never pick up the old run's.
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["epoch_0002.pt"]
    (aside,) = (tmp_path / "run" / "checkpoints").glob("replaced-*")
    assert sorted(p.name for p in aside.iterdir()) == ["epoch_0002.pt", "epoch_0010.pt"]


def test_a_forced_resume_with_a_larger_batch_stops_at_the_step_budget(tmp_path):
    """Twice the batch halves the steps per epoch, so trainer.max_steps runs out epochs before the
    recomputed num_epochs: the run ends there, evaluated and checkpointed, instead of running empty epochs."""
    _run(tmp_path, "run", "trainer.epochs=2")  # 256 samples / 32 = 8 steps per epoch: step 16 at epoch 2
    summary = _run(tmp_path, "run", "trainer.batch_size=64", "trainer.max_steps=20", "trainer.resume=force")
    assert "trainer.resume=force" in summary["attempts"][-1]["warnings"][0]
    metrics = read_run(tmp_path / "run")[0]
    assert summary["status"] == "completed" and summary["steps"] == 20 and summary["epochs"] == 3
    assert [m["step"] for m in metrics] == [8, 16, 20]
    assert metrics[-1]["test_acc"] is not None and summary["final_test_acc"] == metrics[-1]["test_acc"]
    assert list_checkpoints(tmp_path / "run")[0].name == "epoch_0003.pt"


def test_a_checkpoint_written_before_the_renames_resumes_with_todays_names(tmp_path):
    """A checkpoint of before the config_version stamp, whose config has the old layout (flat strategy
    keys, trainer.log_every, no dataset.val_fraction, the diagnostics' flat switches) and whose metrics
    rows have `images_per_sec` and the test split's numbers as `val_*`, and whose diagnostics state is
    one dict, resumes without a config difference and ends exactly as a run never stopped; metrics.jsonl
    and the summary then have one name for each column."""
    from enlighten.results import atomic_torch_save

    _run(tmp_path, "reference")
    _run(tmp_path, "run", "trainer.keep_checkpoints=2")
    last, path = list_checkpoints(tmp_path / "run")  # epochs 3 and 2
    last.unlink()  # as if the run had been killed in its third epoch
    (tmp_path / "run" / "summary.json").unlink()
    state = torch.load(path, weights_only=True)
    config = json.loads(state["config_json"])
    config["strategy"] = {"_target_": "enlighten.strategies.schedules.AlphaBoost", "boost_alpha": 2.0, **config["mix"]}
    config["trainer"] = {("log_every" if k == "sync_every" else k): v for k, v in config["trainer"].items()}
    config["dataset"].pop("val_fraction")
    diagnostics = config["diagnostics"]
    interference = diagnostics.pop("measures")["interference"]
    interference.pop("_target_")
    interference["interference"] = interference.pop("probe")
    mixing = {k: config["mix"][k] for k in ("cutmix_alpha", "switch_prob", "kind", "pairing", "label_smoothing")}
    switches = {"activations": True, "benr": True, "atd": True, "stiffness": False, "stiffness_samples": 16}
    config["diagnostics"] = {**diagnostics, **interference, **mixing, **switches}
    state["config_json"] = json.dumps(config)
    measures = state["diagnostics"].pop("measures")
    state["diagnostics"].update(
        dataset_summary=measures["interference"]["dataset_summary"],
        prev_features=measures["atd"]["prev_features"],
        benr=measures["benr"]["benr"],
    )
    state.pop("config_version")
    old = {"samples_per_sec": "images_per_sec", "test_acc": "val_acc", "test_loss": "val_loss"}
    state["results"]["metrics"] = [{old.get(k, k): v for k, v in row.items()} for row in state["results"]["metrics"]]
    held_out = state.pop("held_out")
    state.update(
        final_val_acc=held_out["final_test_acc"],
        final_val_loss=held_out["final_test_loss"],
        best_val_acc=held_out["final_test_acc"],
    )
    atomic_torch_save(state, path)
    summary = _run(tmp_path, "run")
    assert summary["resumed_from"] == str(path) and summary["status"] == "completed"
    metrics = read_run(tmp_path / "run")[0]
    assert len(metrics) == 3 and all("samples_per_sec" in m and "images_per_sec" not in m for m in metrics)
    assert all("test_acc" in m and "val_acc" not in m for m in metrics) and "final_val_acc" not in summary
    assert summary["final_test_acc"] == metrics[-1]["test_acc"]
    assert outcome(tmp_path / "run") == outcome(tmp_path / "reference")


class NotData:
    """Anything but plain data: a checkpoint holding it must not be unpickled."""

    def __reduce__(self):
        return (os.getcwd, ())


def test_checkpoints_load_with_weights_only(tmp_path):
    _run(tmp_path, "run", "trainer.epochs=1")
    config = read_run(tmp_path / "run")[1]["config"]
    path, state = load_latest(tmp_path / "run", config)
    assert torch.load(path, weights_only=True)["epoch"] == 1
    torch.save({**state, "payload": NotData()}, path)  # a file that would run code if fully unpickled
    with pytest.warns(UserWarning, match="unreadable .*Unsupported global|unreadable .*weights_only"):
        assert load_latest(tmp_path / "run", config) is None


def test_divergence_stops_the_run_with_a_diverged_summary_and_nonzero_exit(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_train(
        [
            "dataset=digits",
            "model=mlp",
            "optim.lr=1e30",
            "trainer.epochs=3",
            "trainer.sync_every=5",
            "logger=wandb",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode != 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["diverged_step"] > 0
    assert "non-finite training loss" in summary["error"]
    assert list((run_dir / "wandb").glob("offline-run-*/*.wandb"))  # the W&B run was written and closed


def test_a_diverged_job_does_not_stop_the_others_and_tables_report_it(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_train(
        [
            "-m",
            "dataset=digits",
            "model=mlp",
            "optim.lr=1e30,0.05",
            "trainer.epochs=2",
            "trainer.sync_every=5",
            "logger=none",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode != 0  # the sweep reports its failure...
    statuses = sorted(json.loads(p.read_text())["status"] for p in sweep.glob("*/summary.json"))
    assert statuses == ["completed", "diverged"]  # ...after every job ran
    # A line per job as it ends, and the sweep's summary at the end, though Hydra ended it with an error.
    assert "[job 0] diverged, " in proc.stdout and "[job 1] completed, test_acc 0." in proc.stdout
    last = proc.stdout.rstrip().splitlines()[-2:]  # the sweep's summary, then a line per job that failed or diverged
    assert last[0] == (
        f"Sweep {sweep}: 2 jobs (1 completed, 1 diverged). Table: python scripts/make_tables.py {sweep}; "
        f"one row per run: python scripts/collect.py {sweep} --out runs.csv"
    )
    assert last[1].startswith("  dataset=digits,model=mlp,optim.lr=1e+30,") and last[1].endswith(
        ": non-finite training loss by step 5 (epoch 0)"
    )
    assert "Traceback" not in proc.stderr and "non-finite training loss by step" in proc.stderr
    tables = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_tables.py"), str(sweep)], capture_output=True, text=True
    )
    assert "diverged" in tables.stdout + tables.stderr


@pytest.mark.parametrize("server", ["http://127.0.0.1:9", "http://10.255.255.1:80"])  # refused; never answers
def test_online_logging_without_network_falls_back_to_offline_at_once(tmp_path, server):
    """No key and no reachable server: every job goes on offline, with a warning that says so; decided
    within 15 s, once per process (W&B alone waits about 105 s, per job)."""
    sweep = tmp_path / "sweep"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(WANDB_BASE_URL=server, HOME=str(tmp_path), ENLIGHTEN_DATA_DIR=str(SHARED_DATA))
    t0 = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "train.py"),
            "-m",
            "dataset=digits",
            "model=mlp",
            "trainer.epochs=1",
            "seed=0,1",
            "logger.mode=online",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # import, 2 tiny jobs and at most one decision (about 30 s on a busy 2-core machine); W&B's own wait
    # would be 105 s per job
    assert time.perf_counter() - t0 < 90
    assert proc.stdout.count("W&B could not start online") == 2 and "logging offline" in proc.stdout  # logging
    assert "so will every later run of this process" in proc.stdout
    jobs = list(sweep.glob("*seed=*"))
    assert len(jobs) == 2
    for run_dir in jobs:
        assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
        assert "W&B could not start online" in (run_dir / "train.log").read_text()
        assert list((run_dir / "wandb").glob("offline-run-*"))


def test_no_secret_reaches_configs_logs_summaries_or_wandb(tmp_path):
    secret = "wandb-key-0123456789abcdef0123456789abcdef"
    run_dir = tmp_path / "run"
    env = user_env(WANDB_API_KEY=secret, MY_TOKEN=secret)
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "train.py"),
            "dataset=digits",
            "model=mlp",
            "trainer.epochs=1",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert secret not in proc.stdout + proc.stderr
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".wandb" for p in files) and any(p.name == "config.yaml" for p in files)
    leaking = [str(p) for p in files if secret.encode() in p.read_bytes()]
    assert not leaking


def _processes_with(text: str) -> list[int]:
    """Pids whose command line contains `text`."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if text in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    pids.append(int(proc.name))
            except OSError:
                pass
    return pids


def test_a_preempted_submitit_job_is_requeued_and_resumes_exactly(tmp_path):
    """Preemption as SLURM delivers it (SIGUSR2 to the job), through Hydra's submitit launcher
    (`hydra/launcher=local`, the same code as `slurm`): submitit's checkpoint protocol requeues the
    job, which resumes from its checkpoint and ends as an uninterrupted run does."""
    reference, sweep = tmp_path / "reference", tmp_path / "sweep"
    run_train([*KILLABLE, "logger=none", f"hydra.run.dir={reference}"], cwd=tmp_path)
    env = user_env()
    launcher = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "train.py"),
            "-m",
            "hydra/launcher=local",
            *KILLABLE,
            "logger=none",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while not list(sweep.glob("*/checkpoints/epoch_0002.pt")) and launcher.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    workers = _processes_with(f"submitit.core._submit {sweep}")
    assert len(workers) == 1, workers
    os.kill(workers[0], signal.SIGUSR2)  # what SLURM sends before preempting or at the time limit
    assert launcher.wait(timeout=300) == 0
    job = next(p.parent for p in sweep.glob("*/summary.json"))
    assert outcome(job) == outcome(reference)
    summary = read_run(job)[1]
    # submitit's handler ran after a checkpoint at the step the signal arrived (not the epoch before)
    assert "_step_" in Path(summary["resumed_from"]).name and len(summary["attempts"]) == 2
    logs = "".join(p.read_text(errors="replace") for p in (sweep / ".submitit").rglob("*.err"))
    assert "preempted" in logs.lower() or "requeu" in logs.lower()


def test_a_completed_run_keeps_the_checkpoints_it_is_told_to(tmp_path):
    """Two while it trains (a damaged one falls back to the one before); once completed,
    trainer.keep_checkpoints: the final one by default, none with 0 (its folder goes too)."""
    _run(tmp_path, "one")
    assert [p.name for p in list_checkpoints(tmp_path / "one")] == ["epoch_0003.pt"]
    summary = _run(tmp_path, "none", "trainer.keep_checkpoints=0")
    assert summary["status"] == "completed" and not (tmp_path / "none" / "checkpoints").exists()
    assert _run(tmp_path, "none", "trainer.keep_checkpoints=0")["status"] == "completed"  # skipped: still completed


def test_fp16_with_its_gradient_scaler_resumes_exactly(tmp_path):
    """trainer.precision=fp16 (GPUs without bf16) on the CPU: float16 autocast really runs (other numbers
    than fp32), and the gradient scaler's state is in every checkpoint: killed in the third epoch and
    resumed, the run ends bitwise as the uninterrupted one, scaler included (its growth tracker counts
    the steps since the scale last changed, and would restart from 0 if the state were not restored)."""
    fp16 = ["trainer.precision=fp16", "trainer.keep_checkpoints=2"]
    reference = _run(tmp_path, "reference", *fp16)
    assert reference["runtime"]["fp16"] and not reference["runtime"]["bf16"]
    assert _run(tmp_path, "fp32")["final_test_loss"] != reference["final_test_loss"]
    _run(tmp_path, "run", *fp16)
    last, previous = list_checkpoints(tmp_path / "run")  # epochs 3 and 2
    last.unlink()  # as if killed in the third epoch
    (tmp_path / "run" / "summary.json").unlink()
    resumed = _run(tmp_path, "run", *fp16)
    assert resumed["resumed_from"] == str(previous)
    assert outcome(tmp_path / "run") == outcome(tmp_path / "reference")
    final = [
        torch.load(d / "checkpoints" / "epoch_0003.pt", weights_only=True)
        for d in (tmp_path / "reference", tmp_path / "run")
    ]
    assert (
        final[0]["scaler"] == final[1]["scaler"] and final[0]["scaler"]["_growth_tracker"] == 24
    )  # 3 epochs of 8 steps
    assert all(torch.equal(a, b) for a, b in zip(final[0]["model"].values(), final[1]["model"].values()))


def test_checkpoints_are_ordered_by_epoch_number(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for epoch in (9999, 10000, 2):
        (folder / f"epoch_{epoch:04d}.pt").write_bytes(b"")
    assert [p.name for p in list_checkpoints(tmp_path)] == ["epoch_10000.pt", "epoch_9999.pt", "epoch_0002.pt"]


def test_a_wandb_run_id_still_held_by_a_killed_process_is_waited_for(tmp_path, monkeypatch, caplog):
    """After a SIGKILL, W&B's service of the dead process may hold the run id for a moment: the
    resumed run waits and continues the same W&B run; if the id stays taken, a new W&B run starts
    (with a warning) rather than the training run failing for its logger."""
    import wandb

    import enlighten.loggers.wandb as wandb_logger

    real_init, failures = wandb.init, {"left": 2}

    def init_after_failures(**kwargs):
        if kwargs.get("id") and failures["left"] > 0:
            failures["left"] -= 1
            # The real init gets as far as taking the id (it writes it into the Settings it is given)
            # before W&B's service refuses it.
            real_init(**{**kwargs, "mode": "disabled"}).finish()
            raise RuntimeError(f"run ID {kwargs['id']} is in use")
        return real_init(**kwargs)

    monkeypatch.setattr(wandb, "init", init_after_failures)
    monkeypatch.setattr(wandb_logger.time, "sleep", lambda s: None)
    logger = wandb_logger.WandbLogger(tmp_path / "a", resume_id="held1234")
    assert logger.run_id == "held1234" and failures["left"] == 0
    logger.finish()
    failures["left"] = 100
    with caplog.at_level(logging.WARNING, logger="enlighten"):
        logger = wandb_logger.WandbLogger(tmp_path / "b", resume_id="held5678")
    assert "stays in use" in caplog.text
    assert logger.run_id != "held5678"
    logger.finish()


def test_a_finished_run_of_another_config_is_never_replaced_unasked(tmp_path, caplog):
    """A completed run whose checkpoints were deleted (to save quota), then another config aimed at the same
    directory: refused before any work, naming the difference, its files untouched; with
    trainer.resume=never it is replaced and its files set aside (renamed), never deleted."""
    import logging

    run_dir = tmp_path / "run"
    run(compose_cfg([*TINY, "trainer.epochs=1"], run_dir))
    for path in list_checkpoints(run_dir):
        path.unlink()
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    with pytest.raises(
        ConfigError, match=r"holds a completed run of a different config \(diagnostics.seed: 0 -> 1; seed: 0 -> 1\)"
    ):
        run(compose_cfg([*TINY, "trainer.epochs=1", "seed=1"], run_dir))
    refused = json.loads((run_dir / "refused.json").read_text())  # the refusal, beside the earlier run's files
    assert "holds a completed run of a different config" in refused["error"]
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file() and p.name != "refused.json"} == before
    with caplog.at_level(logging.INFO, logger="enlighten"):
        summary = run(compose_cfg([*TINY, "trainer.epochs=1", "seed=1", "trainer.resume=never"], run_dir))
    assert summary["status"] == "completed" and summary["config"]["seed"] == 1
    aside = [p for p in run_dir.iterdir() if ".replaced-" in p.name]
    assert sorted(p.name.split(".replaced-")[0] for p in aside) == [
        "diagnostics.jsonl",
        "metrics.jsonl",
        "summary.json",
    ]
    old = json.loads(next(p for p in aside if p.name.startswith("summary.json")).read_text())
    assert old["config"]["seed"] == 0 and old["status"] == "completed"
    assert "the earlier run's files are set aside as" in caplog.text


def test_a_failed_run_of_the_same_config_is_run_again_and_its_files_set_aside(tmp_path):
    run_dir = tmp_path / "run"
    run(compose_cfg([*TINY, "trainer.epochs=1"], run_dir))
    summary = json.loads((run_dir / "summary.json").read_text())
    (run_dir / "summary.json").write_text(json.dumps({**summary, "status": "failed", "error": "planted"}))
    for path in list_checkpoints(run_dir):
        path.unlink()
    assert run(compose_cfg([*TINY, "trainer.epochs=1"], run_dir))["status"] == "completed"
    aside = [p for p in run_dir.iterdir() if p.name.startswith("summary.json.replaced-")]
    assert len(aside) == 1 and json.loads(aside[0].read_text())["error"] == "planted"


def test_a_resume_on_another_thread_count_says_so_in_the_log_and_the_attempts(tmp_path, caplog):
    """Every attempt records its thread count and device; resuming a 2-thread run's checkpoint on 1 thread
    (a SLURM requeue onto another node type) warns that the numbers can differ, in the log and the record."""
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        first = _run(tmp_path, "run", "trainer.epochs=2", "trainer.keep_checkpoints=2")
        assert [(a["torch_threads"], a["device"]) for a in first["attempts"]] == [(2, "cpu")]
        list_checkpoints(tmp_path / "run")[0].unlink()  # as if killed in its second epoch
        (tmp_path / "run" / "summary.json").unlink()
        torch.set_num_threads(1)
        with caplog.at_level(logging.WARNING, logger="enlighten"):
            second = _run(tmp_path, "run", "trainer.epochs=2")
    finally:
        torch.set_num_threads(threads)
    assert [a["torch_threads"] for a in second["attempts"]] == [2, 1]
    assert "Resuming on another machine setup than the attempt before (torch_threads 2 -> 1)" in caplog.text
    assert second["attempts"][-1]["warnings"] == [m for m in caplog.messages if "another machine setup" in m]
