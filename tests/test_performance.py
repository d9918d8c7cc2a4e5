"""The fast path, checked on CPU: no host-device sync inside a step, data reused across the jobs of a
process, compile once per process, batched augmentation, peak memory in the summary. (Speed itself
is measured by scripts/bench.py, not here.)"""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.utils import counters

from enlighten.data import reuse
from enlighten.data.synthetic import synthetic
from enlighten.run import run
from tests import conftest
from tests.conftest import compose_cfg, counting_syncs, read_run, without_timing

TINY = [
    *conftest.TINY,
    "model=mlp",
    "model.hidden=32",
    "model.width=1",
    "trainer.batch_size=16",
    "trainer.deterministic=false",
    "diagnostics=off",
]


# Tensor methods that read a value back to the host: on a GPU each one waits for the device.
def _syncs(tmp_path, overrides: list[str], num_train: int) -> int:
    cfg = compose_cfg(
        [*TINY, f"dataset.num_train={num_train}", "trainer.sync_every=1000", *overrides], tmp_path / f"{num_train}"
    )
    with counting_syncs() as counter:
        run(cfg)
    return counter.count


@pytest.mark.e2e
def test_no_host_sync_per_step(tmp_path):
    """Doubling the steps per epoch adds no reads to the host: metrics stay on the device until the
    epoch ends (schedules switch at steps from the detector, not from device values)."""
    for overrides in (
        ["strategy=mixup"],
        ["strategy=vanilla"],
        ["strategy=high_loss_removal", "phase=fraction"],
        ["strategy=mixup_pause", "phase=fixed_epochs", "phase.epochs=1"],
        ["strategy=alpha_boost", "phase=fraction"],
        ["strategy=mixup", "mix.kind=manifold"],
        ["strategy=mixup", "diagnostics=default"],
    ):  # BENR accumulates every step
        case = tmp_path / "_".join(overrides)  # a fresh directory per case (a checkpoint binds a directory to a config)
        few, many = _syncs(case, overrides, 128), _syncs(case, overrides, 256)
        assert few == many, f"{overrides}: {few} host reads with 8 steps per epoch, {many} with 16"


@pytest.mark.e2e
def test_data_is_reused_by_the_next_run_with_the_same_dataset_config(tmp_path, monkeypatch):
    loads = []
    real = reuse.build
    monkeypatch.setattr(reuse, "build", lambda node, **kw: loads.append(node.num_train) or real(node, **kw))
    reuse._last.clear()
    results = {}
    for name, extra in (
        ("first", []),
        ("reused", ["seed=0"]),
        ("fresh", ["trainer.reuse_data=false"]),
        ("other", ["dataset.num_train=96"]),
    ):
        cfg = compose_cfg([*TINY, "dataset.num_train=128", "trainer.deterministic=true", *extra], tmp_path / name)
        run(cfg)
        results[name] = [*without_timing(read_run(tmp_path / name)[0])]
    torch.use_deterministic_algorithms(False)
    # Loaded for the first run, reused by the second, loaded again with reuse off and for another config.
    assert loads == [128, 128, 96]
    assert results["reused"] == results["first"] == results["fresh"]
    assert len(reuse._last) == 1  # only the latest dataset is held


@pytest.mark.e2e
def test_compile_trains_and_compiles_once_per_process(tmp_path):
    base = [*TINY, "dataset.num_train=128", "trainer.deterministic=false"]
    summaries = []
    for name, extra in (
        ("eager", ["trainer.compile=false"]),
        ("compiled", ["trainer.compile=true"]),
        ("again", ["trainer.compile=true", "seed=1"]),
    ):
        summaries.append(run(compose_cfg([*base, *extra], tmp_path / name)))
        if name == "compiled":
            graphs = counters["stats"]["unique_graphs"]
    eager, compiled, again = summaries
    assert compiled["status"] == again["status"] == "completed"
    assert abs(compiled["final_test_acc"] - eager["final_test_acc"]) <= 0.05
    # The next job (a new model instance, another seed) reuses the compiled graph: no new compilation,
    # although evaluation ran in eval mode at another batch size in between.
    assert graphs >= 1 and counters["stats"]["unique_graphs"] == graphs


def test_epoch_plan_is_the_same_for_a_seed_and_differs_between_seeds():
    data = synthetic(num_train=100, num_test=10, image_size=8, crop_padding=2, flip=True)
    epoch = lambda seed: list(data.train_batches(32, torch.Generator().manual_seed(seed)))  # noqa: E731
    a, b, c = epoch(0), epoch(0), epoch(1)
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))
    assert not all(torch.equal(xa, xc) for (xa, _), (xc, _) in zip(a, c))
    assert [x.shape for x, _ in a] == [(32, 3, 8, 8)] * 3


def test_summary_reports_peak_memory(tmp_path):
    summary = run(compose_cfg([*TINY, "dataset.num_train=64"], tmp_path))
    assert 50 < summary["peak_rss_mb"] < 64_000
    assert read_run(tmp_path)[1]["peak_rss_mb"] == summary["peak_rss_mb"]
