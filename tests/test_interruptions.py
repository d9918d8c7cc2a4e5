"""Runs that end early and continue exactly: stop signals, checkpoints within an epoch, crashes at a
given step, and one process per run directory."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from enlighten.data.image_folder import image_folder
from enlighten.data.synthetic import synthetic
from enlighten.data.text import CharText
from enlighten.results import RunDirectoryBusy
from enlighten.run import run
from enlighten.training.checkpoint import list_checkpoints
from enlighten.training.loop import Trainer
from tests import conftest
from tests.conftest import REPO, compose_cfg, outcome, read_run, user_env

pytestmark = pytest.mark.e2e  # trains or starts train.py: apart from the unit tests (make test-unit)

# Three epochs of 8 steps, every diagnostic on (its ENP rows, BENR within the epoch, ATD), a detector
# that measures (detector.jsonl) and ends the ENP at step 6: a checkpoint within an epoch must carry all of it.
TINY = [
    *conftest.TINY,
    "trainer.epochs=3",
    "strategy=mixup_pause",
    "phase=accuracy",
    "phase.threshold=0.4",
    "phase.check_every=2",
    "phase.probe_size=64",
    "diagnostics.enp_every_steps=2",
    "diagnostics.every_steps=3",
]


def _run(run_dir: Path, *extra: str) -> dict:
    return run(compose_cfg([*TINY, *extra], run_dir))


@pytest.fixture
def reference(tmp_path) -> Path:
    _run(tmp_path / "reference")
    return tmp_path / "reference"


def _at_step(monkeypatch, step: int, action) -> None:
    """Do `action(trainer)` right after optimizer step `step`, inside the real loop."""
    train_step = Trainer.train_step

    def step_then_act(self, x, y, phase):
        loss = train_step(self, x, y, phase)
        if self.step == step:
            action(self)
        return loss

    monkeypatch.setattr(Trainer, "train_step", step_then_act)


def test_sigterm_within_an_epoch_writes_a_checkpoint_there_and_an_interrupted_summary(tmp_path, reference, monkeypatch):
    run_dir = tmp_path / "run"
    _at_step(monkeypatch, 11, lambda trainer: os.kill(os.getpid(), signal.SIGTERM))  # epoch 2, step 3 of 8
    with pytest.raises(SystemExit) as e:
        _run(run_dir)
    assert e.value.code == 128 + signal.SIGTERM
    summary = read_run(run_dir)[1]
    assert summary["status"] == "interrupted" and summary["signal"] == "SIGTERM" and summary["interrupted_step"] == 11
    assert "Run the same command again to continue" in summary["error"]
    assert [p.name for p in list_checkpoints(run_dir)][0] == "epoch_0001_step_000000011.pt"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is gone with the run

    monkeypatch.undo()
    resumed = _run(run_dir)  # the same command again
    assert resumed["resumed_from"].endswith("epoch_0001_step_000000011.pt")
    assert outcome(run_dir) == outcome(reference)
    assert (run_dir / "detector.jsonl").read_text().count("train_acc") == 3  # steps 2, 4 and 6
    # Both attempts counted: the first up to its checkpoint, the second whole.
    assert len(resumed["attempts"]) == 2 and resumed["wall_time_s"] == pytest.approx(
        sum(a["wall_time_s"] for a in resumed["attempts"])
    )
    assert all(a["wall_time_s"] > 0 for a in resumed["attempts"])


@pytest.mark.parametrize(
    "crash_at, newest",
    [
        (
            4,
            ["epoch_0000_step_000000003.pt"],
        ),  # in the ENP (it ends at step 6), in the first epoch: step 0's rows pending
        (20, ["epoch_0002_step_000000018.pt", "epoch_0002.pt"]),  # epoch 3, step 4 of 8, after the ENP
    ],
)
def test_a_crash_resumes_from_the_last_checkpoint_within_the_epoch_and_leftovers_go(
    tmp_path, reference, monkeypatch, crash_at, newest
):
    run_dir = tmp_path / "run"

    def crash(trainer):
        raise RuntimeError("simulated crash")

    _at_step(monkeypatch, crash_at, crash)  # checkpoints every 3 steps within an epoch
    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(run_dir, "trainer.checkpoint_every_steps=3")
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"
    assert [p.name for p in list_checkpoints(run_dir)] == newest
    # What a process killed mid-write leaves: a temporary file and a third checkpoint.
    (run_dir / ".summary.json.x1y2.tmp").write_text("{")
    (run_dir / "checkpoints" / ".epoch_0003.pt.a1b2.tmp").write_bytes(b"")
    (run_dir / "checkpoints" / "epoch_0000_step_000000001.pt").write_bytes(b"")  # older than any: pruned, never read

    monkeypatch.undo()
    resumed = _run(run_dir, "trainer.checkpoint_every_steps=3")
    assert resumed["resumed_from"].endswith(newest[0])
    assert outcome(run_dir) == outcome(reference)
    assert not list(run_dir.glob("**/.*.tmp"))
    # Completed: of its checkpoints (within the third epoch at 18 and 21, at its end 24) the final one is
    # kept (trainer.keep_checkpoints=1).
    assert [p.name for p in list_checkpoints(run_dir)] == ["epoch_0003.pt"]


@pytest.mark.parametrize(
    "extra",
    [
        ["strategy=regularize_early", "optim.weight_decay=0.05", "dataset.crop_padding=2", "dataset.flip=true"],
        ["strategy=blur_deficit", "strategy.schedule.until_step=14"],
        [
            "model.init_scale=0.5",
            "dataset.label_noise=0.2",
            "diagnostics=panel",
            "diagnostics.measures.sharpness.iterations=2",
        ],
    ],
    ids=["regularize_early", "blur_deficit", "init_scale_label_noise_panel"],
)
def test_the_early_training_settings_and_schedules_resume_exactly(tmp_path, monkeypatch, extra):
    """Crashed at step 11 (the ENP ends at step 6; the deficit lifts at 14), resumed from the checkpoint
    of step 9: the same numbers as a run never stopped (the schedules are functions of the phase, the
    noisy labels and the scaled weights come again from the seed, the panel's state is in the checkpoint)."""
    _run(tmp_path / "reference", *extra)

    def crash(trainer):
        raise RuntimeError("simulated crash")

    _at_step(monkeypatch, 11, crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(tmp_path / "run", *extra, "trainer.checkpoint_every_steps=3")
    monkeypatch.undo()
    assert _run(tmp_path / "run", *extra, "trainer.checkpoint_every_steps=3")["resumed_from"].endswith(
        "step_000000009.pt"
    )
    assert outcome(tmp_path / "run") == outcome(tmp_path / "reference")


def test_checkpoints_order_by_epoch_then_step():
    from enlighten.training.checkpoint import _position

    names = ["epoch_0002.pt", "epoch_0002_step_000000019.pt", "epoch_0010.pt", "epoch_0001_step_000000012.pt"]
    assert sorted(names, key=lambda n: _position(Path(n))) == [
        "epoch_0001_step_000000012.pt",
        "epoch_0002.pt",
        "epoch_0002_step_000000019.pt",
        "epoch_0010.pt",
    ]


def _rest_of_epoch_matches(data) -> None:
    whole_gen, part_gen = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    whole = list(data.train_batches(16, whole_gen))
    part = list(data.train_batches(16, part_gen, start=4))
    assert (
        len(whole) > 4
        and len(part) == len(whole) - 4
        and all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(whole[4:], part))
    )
    assert torch.equal(whole_gen.get_state(), part_gen.get_state())


@pytest.mark.parametrize("flip, crop", [(True, 2), (False, 0)])
def test_train_batches_from_a_start_are_the_rest_of_the_epoch(flip, crop):
    """A resume within an epoch draws its batches again and skips those trained: the same batches
    follow, and the data generator ends where it would have (in memory, text, streamed JPEGs)."""
    _rest_of_epoch_matches(synthetic(num_train=96, num_test=8, image_size=8, crop_padding=crop, flip=flip))
    text = torch.randint(0, 5, (2000,))
    _rest_of_epoch_matches(CharText(text, text[:200], list("abcde"), block_size=16))


def test_streamed_image_folder_batches_from_a_start_are_the_rest_of_the_epoch(cifar_folder):
    data = image_folder(str(cifar_folder), in_memory=False, num_workers=0, fraction=0.05)
    _rest_of_epoch_matches(data)


def test_a_second_process_in_a_live_run_directory_stops_at_once_naming_the_first(tmp_path, caplog):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    holder = subprocess.Popen(  # holds the lock as a run does, until told to stop
        [
            sys.executable,
            "-c",
            "import sys, time; from enlighten.results import RunDirLock; "
            f"RunDirLock({str(run_dir)!r}).acquire(); print('locked', flush=True); time.sleep(120)",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        t0 = time.perf_counter()
        with pytest.raises(RunDirectoryBusy) as e:
            _run(run_dir)
        assert time.perf_counter() - t0 < 5
        assert f"{run_dir} is in use by another run: pid {holder.pid} on " in str(e.value)
        assert "hydra.run.dir" in str(e.value)
        assert not (run_dir / "summary.json").exists()
    finally:
        holder.kill()
        holder.wait()
    # Killed without letting go: its lock is taken over, and the run says from whom.
    with caplog.at_level(logging.INFO, logger="enlighten"):
        summary = _run(run_dir, "trainer.epochs=1")
    assert summary["status"] == "completed"
    assert f"Taking over {run_dir} from a process that ended without letting go of it: pid {holder.pid}" in caplog.text
    assert (run_dir / ".lock").read_text() == ""  # released at the end


def test_two_identical_sweeps_started_at_once_train_each_job_once(tmp_path):
    sweep = tmp_path / "sweep"
    args = [
        sys.executable,
        str(REPO / "train.py"),
        "-m",
        "dataset=digits",
        "model=mlp",
        "trainer.epochs=2",
        "logger=none",
        "seed=0,1,2",
        f"hydra.sweep.dir={sweep}",
    ]
    procs = [
        subprocess.Popen(
            args, cwd=tmp_path, env=user_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    trained = sum(out.count("epoch 1 of 2 ") for out in outputs)  # the last epoch's line, once per job
    assert trained == 3, outputs
    assert sorted(json.loads(p.read_text())["config"]["seed"] for p in sweep.glob("*/summary.json")) == [0, 1, 2]


def test_sigterm_to_train_py_ends_it_with_an_interrupted_summary(tmp_path):
    """As SLURM's scancel or time limit does it: a real process, a real signal."""
    run_dir = tmp_path / "run"
    command = [sys.executable, str(REPO / "train.py"), *TINY, "trainer.epochs=200", f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen(
        command, cwd=tmp_path, env=user_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 120
    while not list_checkpoints(run_dir) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM
    summary = read_run(run_dir)[1]
    assert summary["status"] == "interrupted" and summary["signal"] == "SIGTERM"
    assert "Stopped by SIGTERM after step" in err and "Traceback" not in err
    newest = list_checkpoints(run_dir)[0]
    assert torch.load(newest, weights_only=True)["step"] == summary["interrupted_step"]
