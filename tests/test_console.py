"""What a run says while it runs, captured from real runs: on a terminal and in a log file."""

from __future__ import annotations

import fcntl
import logging
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import pytest

from enlighten import console
from enlighten.console import EpochProgress, result_line
from tests.conftest import REPO, read_run, user_env

pytestmark = pytest.mark.e2e  # trains or starts train.py: apart from the unit tests (make test-unit)

RUN = ["dataset=digits", "model=cnn", "trainer.epochs=2", "logger=none", "phase=accuracy", "phase.threshold=0.3"]


def test_a_run_on_a_terminal_shows_a_bar_and_logs_start_epoch_and_end_lines(tmp_path):
    """stdout a terminal (a pseudo-terminal here): a progress bar within each epoch; the messages also
    reach Hydra's train.log, without the bar."""
    run_dir = tmp_path / "run"
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # 40 rows, 120 columns
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "train.py"), *RUN, f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        env=user_env(),
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the other end closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert proc.wait(timeout=120) == 0
    seen = b"".join(chunks).decode(errors="replace")
    assert re.search(r"epoch 0 of 2: +\d+%\|.*\| \d+/11 ", seen), seen[-2000:]  # tqdm's bar: 11 steps of 128
    logged = (run_dir / "train.log").read_text()  # Hydra's log of the job
    start = re.search(
        r"Run .*run: cnn \(([\d,]+) parameters\) on digits \(1,437 training / 360 test samples\), "
        r"strategy mixup, phase accuracy; 22 steps of 128 \(11 per epoch\); cpu, fp32, channels_last",
        logged,
    )
    assert start, logged
    assert re.search(r"ENP ended at step \d+ \(epoch 0, ", logged)
    assert "epoch 0 of 2  step 11  loss " in logged and "epoch 1 of 2  step 22  loss " in logged
    assert re.search(r"completed, test_acc 0\.\d{4}, ENP ended at step \d+ \(epoch 0\), 0m\d\ds  \(", logged)
    assert "%|" not in logged  # no bar in the file
    # One epoch numbering: what the console says is what the files say (and W&B: tests/test_e2e.py).
    metrics, summary = read_run(run_dir)
    assert [m["epoch"] for m in metrics] == [0, 1]
    assert f"ENP ended at step {summary['enp_end_step']} (epoch {summary['enp_end_epoch']}, " in logged


def test_progress_lines_when_not_on_a_terminal(caplog, monkeypatch):
    """In a log file (a SLURM job): a line every progress_every_s seconds, with the rate and time left
    (a clock that advances 0.5 s per step here), none at the epoch's last step (its own line follows)."""
    clock = iter(0.5 * i for i in range(100))
    monkeypatch.setattr(console.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False, raising=False)
    with (
        caplog.at_level(logging.INFO, logger="enlighten"),
        EpochProgress(steps_per_epoch=16, num_epochs=3, every_s=2.0) as progress,
    ):
        progress.start(epoch=1, done=10)  # a resume within the epoch: counted from where it stands
        for _ in range(6):
            progress.step()
    assert [r.getMessage() for r in caplog.records] == [
        "  epoch 1 of 3: step 14/16 (88%), 2.00 steps/s, epoch ends in 0m01s"
    ]


def test_result_line_says_how_a_run_ended():
    assert (
        result_line(
            {
                "status": "completed",
                "final_val_acc": 0.91234,
                "best_val_acc": 0.92,
                "final_test_acc": 0.9,
                "enp_end_step": 120,
                "enp_end_epoch": 0,
                "wall_time_s": 3725,
            }
        )
        == "completed, val_acc 0.9123 (best 0.9200), test_acc 0.9000, ENP ended at step 120 (epoch 0), 1h02m"
    )
    assert (
        result_line({"status": "completed", "final_test_acc": 0.9, "wall_time_s": 5})
        == "completed, test_acc 0.9000, the ENP did not end, 0m05s"
    )
    assert (
        result_line({"status": "diverged", "wall_time_s": 5, "error": "non-finite training loss by step 5 (epoch 0)"})
        == "diverged, 0m05s, non-finite training loss by step 5 (epoch 0)"
    )
