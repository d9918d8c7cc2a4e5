"""The loop through the real code path (compose API, run()): seeding, determinism, schedules."""

from __future__ import annotations

import math

import pytest
import torch

from enlighten.config import TrainerConfig
from enlighten.data.synthetic import synthetic
from enlighten.diagnostics.activations import Activations
from enlighten.diagnostics.monitor import Diagnostics
from enlighten.loggers.base import NoLogger
from enlighten.models.cnn import cnn
from enlighten.phase.base import PhaseDetector
from enlighten.results import RunResults, read_jsonl
from enlighten.run import run
from enlighten.strategies.base import Strategy
from enlighten.strategies.mixer import Mixer
from enlighten.strategies.schedules import MixupPause
from enlighten.strategies.weighting import Mean
from enlighten.training.loop import Trainer
from enlighten.training.optim import cosine, multistep, sgd
from tests.conftest import TINY, compose_cfg, read_run, without_timing

FAST = [*TINY, "trainer.deterministic=false"]


@pytest.mark.e2e
def test_same_seed_same_metrics_other_seed_differs(tmp_path):
    results = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        cfg = compose_cfg([*FAST, f"seed={seed}", "trainer.deterministic=true"], tmp_path / name)
        run(cfg)
        results.append(read_run(tmp_path / name)[0])
    assert without_timing(results[0]) == without_timing(results[1])
    assert without_timing(results[0]) != without_timing(results[2])


def test_training_lowers_the_loss_and_summary_matches_metrics(tmp_path):
    cfg = compose_cfg([*FAST, "trainer.epochs=4", "strategy=vanilla", "optim.lr=0.05"], tmp_path)
    summary = run(cfg)
    metrics, written = read_run(tmp_path)
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]
    assert summary["status"] == written["status"] == "completed"
    assert written["final_test_acc"] == metrics[-1]["test_acc"] > 0.3
    assert written["enp_end_reason"] == "none"  # phase=never: no ENP
    assert all(m["alpha"] == 0.0 and m["mixing"] == 0.0 for m in metrics)


def test_eval_every_skips_epochs_but_always_evaluates_the_last(tmp_path):
    cfg = compose_cfg([*FAST, "trainer.epochs=4", "trainer.eval_every=2", "diagnostics=off"], tmp_path)
    run(cfg)
    metrics, _ = read_run(tmp_path)
    assert [m["test_acc"] is not None for m in metrics] == [False, True, False, True]


def test_max_steps_replaces_epochs_for_the_loop_schedule_and_detector(tmp_path):
    """512 samples at batch 64: 8 steps an epoch. max_steps=20 trains 20 steps (the third epoch
    partial), the cosine schedule and the fraction detector span those 20 steps, not trainer.epochs."""
    cfg = compose_cfg(
        [
            *FAST,
            "trainer.epochs=50",
            "trainer.max_steps=20",
            "sched=cosine",
            "optim.lr=0.1",
            "phase=fraction",
            "phase.fraction=0.5",
            "diagnostics=off",
            "trainer.eval_every=2",
        ],
        tmp_path,
    )
    summary = run(cfg)
    metrics, _ = read_run(tmp_path)
    assert summary["steps"] == 20 and summary["epochs"] == 3
    assert [m["step"] for m in metrics] == [8, 16, 20]
    assert [m["test_acc"] is not None for m in metrics] == [False, True, True]  # the last, partial epoch is evaluated
    assert summary["enp_end_step"] == 10
    assert metrics[-1]["in_enp"] == 0.0 and metrics[0]["in_enp"] == 1.0
    # the lr of the last step (index 19 of 20): 0.1 * (1 + cos(pi * 19 / 20)) / 2
    assert metrics[-1]["lr"] == pytest.approx(0.1 * (1 + math.cos(math.pi * 19 / 20)) / 2)


def _lrs(make, steps):
    opt = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=1.0)
    sched = make(opt)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_cosine_with_warmup_and_multistep_per_iteration():
    lrs = _lrs(lambda o: cosine(o, total_steps=100, steps_per_epoch=10, warmup_epochs=1), 100)
    assert [round(lr, 12) for lr in lrs[:3]] == [0.1, 0.2, 0.3]  # warm-up: a tenth more each step
    assert math.isclose(lrs[9], 1.0) and math.isclose(lrs[10], 1.0)
    assert math.isclose(lrs[55], 0.5, rel_tol=1e-9)  # half-way through the decay
    assert lrs[-1] < 0.001
    lrs = _lrs(lambda o: multistep(o, total_steps=100, steps_per_epoch=10, milestones=[5, 8], gamma=0.1), 100)
    assert lrs[49] == 1.0 and math.isclose(lrs[50], 0.1) and math.isclose(lrs[80], 0.01)


def test_bf16_autocast_channels_last_and_grad_clip_train_on_cpu(tmp_path):
    # As typed on a command line: `true` arrives as the string 'True', `BF16` in capitals.
    cfg = compose_cfg(
        [
            *FAST,
            "trainer.epochs=1",
            "trainer.precision=BF16",
            "trainer.channels_last=true",
            "trainer.grad_clip=1.0",
            "optim=adamw",
            "sched.warmup_epochs=0.5",
        ],
        tmp_path,
    )
    summary = run(cfg)
    assert summary["status"] == "completed" and math.isfinite(read_run(tmp_path)[0][0]["train_loss"])
    assert summary["runtime"]["bf16"] and summary["runtime"]["channels_last"]
    assert summary["config"]["trainer"]["precision"] == "bf16"  # recorded as used


@pytest.mark.e2e
def test_cpu_defaults_channels_last_for_conv_nets_and_cache_sized_evaluation(tmp_path):
    """On a CPU the defaults choose NHWC for conv nets only, fp32, evaluation in batches of 128,
    torch's threads (all cores); each explicit setting wins."""
    cases = {
        "cnn": ([], (True, False, 128)),
        "mlp": (["model=mlp"], (False, False, 128)),
        "off": (["trainer.channels_last=false", "trainer.eval_batch_size=512"], (False, False, 512)),
    }
    for name, (extra, expected) in cases.items():
        summary = run(compose_cfg([*FAST, "trainer.epochs=1", "dataset.num_train=128", *extra], tmp_path / name))
        runtime = summary["runtime"]
        assert (runtime["channels_last"], runtime["bf16"], runtime["eval_batch_size"]) == expected, name
        assert runtime["device"] == "cpu" and runtime["torch_threads"] == torch.get_num_threads()


@pytest.mark.e2e
def test_accuracy_detector_estimators_run_through_the_loop(tmp_path):
    """batch (clean batch before mixing) and val (the validation split) estimators, on the real loop: the
    ENP ends by the criterion."""
    for name, extra in (
        ("batch", ["phase.estimator=batch", "phase.ema=0.5"]),
        ("val", ["phase.source=val", "dataset.val_fraction=0.25"]),
    ):
        cfg = compose_cfg(
            [
                *FAST,
                "trainer.epochs=3",
                "strategy=mixup_pause",
                "phase=accuracy",
                "phase.check_every=2",
                "phase.threshold=0.3",
                "optim.lr=0.05",
                *extra,
            ],
            tmp_path / name,
        )
        summary = run(cfg)
        assert summary["enp_end_reason"] == "criterion", name
        assert summary["enp_end_value"] >= 0.3 and summary["enp_end_step"] % 2 == 0


@pytest.mark.e2e
def test_the_evaluation_batch_changes_only_the_rounding_of_evaluation(tmp_path):
    """The CPU default evaluates in batches of 128 instead of 1024: training is bitwise the same and the
    evaluated numbers agree to float rounding (the loss is summed in another order)."""
    rows = {}
    for size in (128, 1024):
        run(compose_cfg([*FAST, "dataset.num_train=512", f"trainer.eval_batch_size={size}"], tmp_path / str(size)))
        rows[size] = read_run(tmp_path / str(size))[0]
    for small, large in zip(rows[128], rows[1024]):
        assert small["train_loss"] == large["train_loss"] and small["test_acc"] == large["test_acc"]
        assert small["train_acc"] == large["train_acc"]
        assert small["test_loss"] == pytest.approx(large["test_loss"], rel=1e-5)


@pytest.mark.e2e
def test_an_epoch_end_hook_sees_each_row_and_never_changes_training(tmp_path):
    """A hook that draws from every random generator, the data order's included, leaves training as it
    is without it."""
    import random

    import numpy as np

    rows = []

    def hook(trainer, row):
        rows.append(row["epoch"])
        random.random(), np.random.rand(), torch.rand(3), torch.randperm(5, generator=trainer.generator)

    overrides = [*FAST, "trainer.deterministic=true", "strategy=mixup"]
    run(compose_cfg(overrides, tmp_path / "plain"))
    run(compose_cfg(overrides, tmp_path / "hooked"), on_epoch_end=[hook])
    assert rows == [0, 1]
    assert without_timing(read_run(tmp_path / "hooked")[0]) == without_timing(read_run(tmp_path / "plain")[0])


class FiresAt(PhaseDetector):
    """A detector scripted to end the ENP after step `k`, reading the loss at every step until then."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def criterion(self, progress, signals):
        signals.loss()
        return 1.0 if progress.step >= self.k else None


@pytest.mark.e2e
@pytest.mark.parametrize("k", [3, 8, 11])  # within the first epoch, at its last step, within the second
def test_the_loop_asks_the_detector_and_the_strategy_follows_it(tmp_path, k):
    """The Trainer alone, with a detector that fires at step k: Mixup Pause does not mix through step k
    and mixes from step k + 1; the metrics, the summary, detector.jsonl and the ENP-end diagnostics row
    all say k; the strategy is handed the phase record of each step (steps done, epoch, ENP or not, where
    it ended)."""
    torch.manual_seed(0)
    data = synthetic(num_train=256, num_test=64, image_size=8, channels=1)  # 8 steps of 32 per epoch
    model = cnn(10, (1, 8, 8))
    strategy = Strategy(Mixer(alpha=1.0, pairing="permutation"), Mean(), MixupPause())
    strategy.setup(10, model)
    seen, prepare, hooked = [], strategy.prepare, []
    strategy.prepare = lambda x, y, phase: (seen.append(phase), prepare(x, y, phase))[1]
    opt = sgd(model, lr=0.05)
    trainer = Trainer(
        TrainerConfig(epochs=2, batch_size=32, train_eval_samples=64),
        model,
        data,
        strategy,
        FiresAt(k),
        opt,
        cosine(opt, total_steps=16, steps_per_epoch=8),
        RunResults(tmp_path),
        NoLogger(),
        torch.Generator().manual_seed(0),
        torch.device("cpu"),
        diagnostics=Diagnostics({"activations": Activations()}, probe_size=16, enp_every_steps=100, every_steps=100),
        on_epoch_end=[
            lambda trainer, row: hooked.append((trainer.step, row, len(read_jsonl(tmp_path / "metrics.jsonl"))))
        ],
    )
    summary = trainer.fit()
    metrics = read_jsonl(tmp_path / "metrics.jsonl")
    in_enp = [min(max(k - 8 * e, 0), 8) for e in (0, 1)]  # steps of each epoch in the ENP
    assert [m["in_enp"] for m in metrics] == [n / 8 for n in in_enp]
    assert [m["mixing"] for m in metrics] == [1 - n / 8 for n in in_enp]
    assert [m["alpha"] for m in metrics] == [1 - n / 8 for n in in_enp]  # the alpha each step reported, averaged
    assert hooked == [(8, metrics[0], 1), (16, metrics[1], 2)]  # the epoch-end hooks: each row, once written
    assert [(p.step, p.epoch, p.in_enp, p.enp_end_step) for p in seen] == [
        (s, s // 8, s < k, None if s < k else k) for s in range(16)
    ]
    assert (summary["enp_end_step"], summary["enp_end_epoch"], summary["steps"]) == (k, (k - 1) // 8, 16)
    assert [r["step"] for r in read_jsonl(tmp_path / "detector.jsonl")] == list(range(1, k + 1))
    assert all("train_loss" in r for r in read_jsonl(tmp_path / "detector.jsonl"))
    assert [r["step"] for r in read_jsonl(tmp_path / "diagnostics.jsonl") if r.get("event") == "enp_end"] == [k]


def test_with_a_validation_split_the_detector_reads_it_and_the_test_split_only_gives_final_numbers(
    tmp_path, monkeypatch
):
    """phase.source=val: every evaluation before the run's last is of the training probe or the validation
    split (the real evaluate, watched); the test split is evaluated after the last step only, and the
    summary names each number by its split."""
    calls = []
    evaluate = Trainer.evaluate

    def watched(self, split, indices=None):
        calls.append((self.step, split))
        return evaluate(self, split, indices)

    monkeypatch.setattr(Trainer, "evaluate", watched)
    cfg = compose_cfg(
        [
            *FAST,
            "dataset.val_fraction=0.25",
            "trainer.eval_every=100",
            "strategy=mixup_pause",
            "phase=accuracy",
            "phase.source=val",
            "phase.check_every=2",
            "phase.threshold=0.3",
            "optim.lr=0.05",
        ],
        tmp_path,
    )
    summary = run(cfg)
    last = summary["steps"]
    assert {s for s, split in calls if split == "test"} == {last}
    assert {split for s, split in calls if s < last} == {"train", "val"}
    assert any(split == "val" and s % 2 == 0 and s < last for s, split in calls)  # the detector's checks
    assert (summary["num_train"], summary["num_val"]) == (196, 60)  # 6 of each class's 25 or 26 held out
    assert summary["final_val_acc"] == summary["best_val_acc"] and summary["best_val_step"] == last
    assert summary["test_acc_at_best_val"] == summary["final_test_acc"]
    metrics = read_run(tmp_path)[0]
    assert [m.get("val_acc") is not None for m in metrics] == [False, True]
    assert metrics[-1]["test_acc"] == summary["final_test_acc"] and metrics[-1]["val_acc"] == summary["final_val_acc"]


def test_auto_device_warns_when_a_gpu_job_finds_no_cuda(monkeypatch, caplog):
    """A SLURM job given GPUs whose torch sees none (a CPU build, a driver mismatch) would train on the
    CPU until its time limit: `auto` says so loudly; outside such a job it picks the CPU quietly."""
    import logging

    from enlighten.run import resolve_device, resolve_precision

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible here: auto picks it")
    for variable in ("SLURM_GPUS_ON_NODE", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS"):
        monkeypatch.delenv(variable, raising=False)
    with caplog.at_level(logging.WARNING, logger="enlighten"):
        assert resolve_device("auto").type == "cpu" and not caplog.records
        monkeypatch.setenv("SLURM_GPUS_ON_NODE", "1")
        assert resolve_device("auto").type == "cpu"
    assert "found no CUDA device although this job was given GPUs (SLURM_GPUS_ON_NODE=1)" in caplog.text
    assert (
        resolve_precision("auto", torch.device("cpu")) == "fp32"
        and resolve_precision("fp16", torch.device("cpu")) == "fp16"
    )
