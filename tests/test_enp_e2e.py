"""End to end on real data (an MNIST subset): the ENP ends by the accuracy criterion, the summary
records where, and each strategy switches exactly at that step."""

from __future__ import annotations

import math

import pytest

from tests.conftest import SHARED_DATA, needs_shared, read_run, run_train

pytestmark = pytest.mark.e2e  # trains or starts train.py: apart from the unit tests (make test-unit)

STRATEGIES = ["mixup", "mixup_pause", "alpha_boost", "high_loss_removal", "mixup_early"]
BATCH = 128


@needs_shared("MNIST", "raw")
def test_every_strategy_switches_exactly_where_the_accuracy_detector_ends_the_enp(tmp_path):
    sweep = tmp_path / "sweep"
    run_train(
        [
            "-m",
            f"strategy={','.join(STRATEGIES)}",
            "phase=accuracy",
            "dataset=mnist",
            "dataset.fraction=0.05",
            "dataset.download=false",
            "model=cnn",
            "trainer.epochs=3",
            f"paths.data_dir={SHARED_DATA}",
            "logger=none",
            "diagnostics=off",
            f"trainer.batch_size={BATCH}",
            "trainer.eval_every=3",
            f"hydra.sweep.dir={sweep}",
        ],  # diagnostics are tested on their own (test_diagnostics.py)
        cwd=tmp_path,
        timeout=900,
    )
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == len(STRATEGIES)
    for job in jobs:
        metrics, summary = read_run(job)
        strategy = summary["choices"]["strategy"]
        assert summary["status"] == "completed"
        assert summary["enp_end_reason"] == "criterion", (strategy, summary["enp_end_reason"])
        end = summary["enp_end_step"]
        spe = metrics[0]["step"]
        assert summary["enp_end_epoch"] == (end - 1) // spe
        assert summary["enp_end_value"] >= 0.5 and summary["enp_end_train_acc"] is not None
        for m in metrics:
            enp_steps = min(max(end - m["epoch"] * spe, 0), spe)  # steps 1..end are in the ENP
            share = enp_steps / spe
            assert m["in_enp"] == pytest.approx(share), (strategy, m)
            if strategy == "mixup":
                assert m["mixing"] == 1.0 and m["alpha"] == pytest.approx(1.0)
            elif strategy == "mixup_pause":
                assert m["mixing"] == pytest.approx(1 - share) and m["alpha"] == pytest.approx(1 - share)
            elif strategy == "alpha_boost":
                assert m["mixing"] == 1.0 and m["alpha"] == pytest.approx(2.0 * share + 1.0 * (1 - share))
            elif strategy == "mixup_early":
                assert m["mixing"] == pytest.approx(share)
            elif strategy == "high_loss_removal":
                assert m["mixing"] == 0.0 and m["dropped"] == enp_steps * math.floor(0.1 * BATCH)
