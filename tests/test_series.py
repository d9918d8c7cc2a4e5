"""Time series: the UCR loader on the real files, the series models, and training with every kind of
strategy on them."""

from __future__ import annotations

import statistics
import subprocess
import sys

import pytest
import torch
from scipy import stats

from enlighten.data.ucr import ucr
from enlighten.models.series import fcn1d, resnet1d
from enlighten.run import run
from tests.conftest import REPO, SHARED_DATA, compose_cfg, needs_shared, read_run, run_train

pytestmark = pytest.mark.e2e  # trains or starts train.py: apart from the unit tests (make test-unit)

BASE = ["model=mlp", "trainer.epochs=1", "logger=none", "trainer.device=cpu"]


@needs_shared("ucr", "GunPoint")
def test_ucr_labels_are_remapped_and_series_z_normalized():
    data = ucr("GunPoint", str(SHARED_DATA))
    assert (data.num_train, data.num_test, data.num_classes, data.input_shape) == (50, 150, 2, (1, 150))
    assert set(data.train_y.tolist()) == {0, 1}
    x = data.train_x
    torch.testing.assert_close(x.mean(-1), torch.zeros(50, 1), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.std(-1), torch.ones(50, 1), atol=1e-4, rtol=0)


@pytest.mark.parametrize("factory", [fcn1d, resnet1d])
def test_series_models_keep_any_length_and_expose_stages(factory):
    model = factory(num_classes=3, input_shape=[2, 50], width=0.25)
    for length in (7, 50, 301):
        assert model(torch.randn(4, 2, length)).shape == (4, 3)
    assert (
        len(model.stages) == 2
        and model.forward_head(model.forward_features(torch.randn(2, 2, 9)), pre_logits=True).shape[1]
        == model.num_features
    )
    with pytest.raises(ValueError, match=r"input_shape must be \(channels, length\)"):
        factory(num_classes=3, input_shape=[3, 32, 32])


@needs_shared("ucr", "ECG200")
@pytest.mark.parametrize(
    "model, strategy", [("fcn1d", "high_loss_removal"), ("resnet1d", "random_removal"), ("mlp", "mixup")]
)
def test_real_ucr_series_train_with_the_series_models_and_strategies(model, strategy, tmp_path):
    summary = run(
        compose_cfg(
            [
                *BASE,
                "dataset=ucr",
                "dataset.name=ECG200",
                f"paths.data_dir={SHARED_DATA}",
                f"model={model}",
                "model.width=0.25",
                "trainer.batch_size=16",
                "trainer.epochs=5",
                f"strategy={strategy}",
                "phase=chance_adjusted",
                "phase.check_every=2",
            ],
            tmp_path,
        )
    )
    # Beats always answering the majority class (64% of the test set).
    assert summary["status"] == "completed" and summary["final_test_acc"] > 0.64
    assert summary["num_params"] > 0


@needs_shared("ucr", "ECG200")
def test_hlr_ucr_sweep_gives_a_table_against_vanilla_and_the_controls_with_p_values(tmp_path):
    """A shortened `experiment=hlr/ucr` multirun on the real ECG200 and GunPoint; the table's paired
    differences and p-values are checked against the summaries; the ENP-only and whole-run removals
    differ where they should (no drops after the ENP, drops after it)."""
    sweep = tmp_path / "sweep"
    run_train(
        [
            "-m",
            "experiment=hlr/ucr",
            "dataset.name=ECG200,GunPoint",
            "trainer.max_steps=18",
            "strategy=vanilla,high_loss_removal,high_loss_removal_whole_run",
            "removal.drop_fraction=0.2",
            "seed=0,1,2",
            "diagnostics=off",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=tmp_path,
        timeout=600,
    )
    runs = {}
    for path in sweep.glob("*/summary.json"):
        metrics, summary = read_run(path.parent)
        assert summary["status"] == "completed" and summary["steps"] == 18
        key = (summary["choices"]["strategy"], summary["config"]["dataset"]["name"], summary["config"]["seed"])
        runs[key] = (metrics, summary)
    assert len(runs) == 18
    for (strategy, _, _), (metrics, _) in runs.items():
        after = [m["dropped"] for m in metrics if m["in_enp"] == 0.0]
        if strategy == "vanilla":
            assert all(m["dropped"] == 0 for m in metrics)
        elif after and strategy == "high_loss_removal":
            assert sum(after) == 0
        elif after:
            assert all(d > 0 for d in after)  # whole run: 4 of 20 dropped at every step

    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "make_tables.py"),
            str(sweep),
            "--baseline",
            "strategy=vanilla",
            "--baseline",
            "strategy=high_loss_removal_whole_run",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = proc.stdout.splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[:2] == ["strategy", "dataset.name"] and "Δ vs strategy=vanilla (pts)" in header
    assert "Δ vs strategy=high_loss_removal_whole_run (pts)" in header
    first = header.index("Δ vs strategy=vanilla (pts)")
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] != "high_loss_removal":
            continue
        diffs = [
            100
            * (
                runs[("high_loss_removal", cells[1], s)][1]["final_test_acc"]
                - runs[("vanilla", cells[1], s)][1]["final_test_acc"]
            )
            for s in range(3)
        ]
        assert cells[first] == f"{statistics.fmean(diffs):+.2f}"
        if statistics.stdev(diffs) > 1e-9:
            p = stats.ttest_rel(
                [runs[("high_loss_removal", cells[1], s)][1]["final_test_acc"] for s in range(3)],
                [runs[("vanilla", cells[1], s)][1]["final_test_acc"] for s in range(3)],
            ).pvalue
            assert cells[first + 2] == f"{p:.3f}"
        else:
            assert cells[first + 2] == "-"
