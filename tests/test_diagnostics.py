"""Diagnostics with known answers, and the guarantee that measuring never changes training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from enlighten.data.synthetic import synthetic
from enlighten.diagnostics.measures import (
    BatchEpochNormRatio,
    activation_stats,
    gradient_interference,
    parameter_groups,
    trajectory_distance,
)
from enlighten.diagnostics.monitor import Diagnostics, NoDiagnostics
from enlighten.diagnostics.stiffness import stiffness
from enlighten.loggers.base import NoLogger
from enlighten.models.cnn import cnn
from enlighten.phase.accuracy import AccuracyThreshold
from enlighten.results import RunResults
from enlighten.strategies.mixup import MixupStrategy
from enlighten.training.loop import LoopConfig, Trainer
from enlighten.training.optim import cosine, sgd


class SigmoidLinear(nn.Module):
    """A linear model with a sigmoid, written as two-class logits [0, w.x]: softmax = sigmoid."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, 1, bias=False)
        nn.init.normal_(self.linear.weight, std=1e-4)  # at initialization: outputs near 0.5

    def forward(self, x):
        z = self.linear(x)
        return torch.cat([torch.zeros_like(z), z], dim=1)


def test_paper_setting_mixup_gradient_is_orthogonal_to_the_clean_gradient():
    torch.manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(2, 50, dtype=torch.float64), dim=1).float()  # normalized
    y = torch.tensor([1, 0])  # a positive and a negative sample
    d = gradient_interference(SigmoidLinear(50), x, y, lam=0.5, num_classes=2)
    assert abs(d["diag/cos"]) < 1e-2
    assert d["diag/r_perp_mix"] == pytest.approx(1.0, abs=1e-3)
    assert d["diag/cos/linear"] == pytest.approx(d["diag/cos"])


def test_interference_of_identical_gradients_is_zero():
    torch.manual_seed(0)
    model = SigmoidLinear(5)
    x, y = torch.randn(4, 5), torch.tensor([0, 1, 0, 1])
    d = gradient_interference(model, x, y, lam=1.0, num_classes=2)  # lambda 1: the "mixed" batch is clean
    assert d["diag/cos"] == pytest.approx(1.0) and d["diag/r_perp_clean"] == pytest.approx(0.0, abs=1e-6)
    assert d["diag/norm_ratio"] == pytest.approx(1.0)


def test_colinear_updates_give_benr_one_and_a_detour_more():
    p = nn.Parameter(torch.zeros(3))
    benr = BatchEpochNormRatio([p])
    for step in (1.0, 2.0, 3.0):  # along one line, one direction
        with torch.no_grad():
            p += step * torch.tensor([1.0, 0.0, 0.0])
        benr.step()
    assert benr.end_epoch() == 1.0
    for step in (1.0, -1.0, 1.0):  # there and back: path 3, net change 1
        with torch.no_grad():
            p += step * torch.tensor([0.0, 2.0, 0.0])
        benr.step()
    assert benr.end_epoch() == pytest.approx(3.0)


def test_known_zero_activations_and_dead_units():
    model = nn.Sequential(nn.Linear(2, 3, bias=False), nn.ReLU())
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, -1.0]]))
    x = torch.tensor([[1.0, 1.0], [2.0, 1.0]])  # pre-activations [[1,-1,-1],[2,-2,-1]]
    d = activation_stats(model, [x])
    assert d["diag/zero_act"] == pytest.approx(4 / 6) and d["diag/zero_act/1"] == pytest.approx(4 / 6)
    assert d["diag/dead_units"] == pytest.approx(2 / 3)  # units 1 and 2 are zero on every sample
    gelu = nn.Sequential(nn.Linear(2, 3, bias=False), nn.GELU())
    gelu[0].load_state_dict(model[0].state_dict())
    assert activation_stats(gelu, [x])["diag/zero_act"] == pytest.approx(4 / 6)  # pre-activations <= 0


def test_atd_is_zero_for_identical_features_and_the_distance_otherwise():
    f = torch.randn(8, 16)
    assert trajectory_distance(f, f) == {"diag/atd_mean": 0.0, "diag/atd_var": 0.0}
    g = f.clone()
    g[0, 0] += 4.0
    d = trajectory_distance(f, g)
    assert d["diag/atd_mean"] == pytest.approx(0.5) and d["diag/atd_var"] == pytest.approx(np.var([4.0] + [0.0] * 7))


def test_parameter_groups_cover_every_parameter_once():
    model = cnn(10, (1, 8, 8))
    groups = parameter_groups(model)
    assert list(groups) == ["stem", "stages.0", "stages.1", "head"]
    flat = sorted(i for idx in groups.values() for i in idx)
    assert flat == list(range(len(list(model.parameters()))))


def test_stiffness_of_one_repeated_example_is_one():
    torch.manual_seed(0)
    model = cnn(3, (1, 8, 8))
    x = torch.randn(1, 1, 8, 8).repeat(4, 1, 1, 1)
    d = stiffness(model, x, torch.tensor([0, 0, 1, 1]))
    assert d["diag/stiffness_within"] == pytest.approx(1.0)


def _train(diagnostics, tmp_path):
    torch.manual_seed(0)
    np.random.seed(0)
    torch.use_deterministic_algorithms(True)
    data = synthetic(num_train=256, num_test=64, image_size=8, channels=1)
    model = cnn(10, (1, 8, 8))
    strategy = MixupStrategy(alpha=1.0)
    strategy.setup(10, model)
    opt = sgd(model, lr=0.05)
    cfg = LoopConfig(epochs=3, batch_size=32, train_eval_samples=64)
    trainer = Trainer(cfg, model, data, strategy, AccuracyThreshold(threshold=0.3, check_every=2), opt,
                      cosine(opt, total_steps=24, steps_per_epoch=8), RunResults(tmp_path), NoLogger(),
                      torch.Generator().manual_seed(0), torch.device("cpu"), diagnostics=diagnostics)
    summary = trainer.fit()
    torch.use_deterministic_algorithms(False)
    return model, opt, summary, np.random.get_state()[1].copy(), torch.get_rng_state()


def test_diagnostics_never_change_training(tmp_path):
    on = _train(Diagnostics(every_steps=2, enp_every_steps=1, probe_size=16, stiffness=True, stiffness_samples=4),
                tmp_path / "on")
    off = _train(NoDiagnostics(), tmp_path / "off")
    for (k, a), (_, b) in zip(on[0].state_dict().items(), off[0].state_dict().items()):
        assert torch.equal(a, b), k  # parameters and batch-norm buffers, bitwise
    for a, b in zip(on[1].state_dict()["state"].values(), off[1].state_dict()["state"].values()):
        assert torch.equal(a["momentum_buffer"], b["momentum_buffer"])
    assert np.array_equal(on[3], off[3]) and torch.equal(on[4], off[4])  # the random streams training uses
    assert on[2]["enp_end_step"] == off[2]["enp_end_step"]
    assert (tmp_path / "on" / "diagnostics.jsonl").exists() and not (tmp_path / "off" / "diagnostics.jsonl").exists()
    assert on[2]["enp_mean/diag/cos"] is not None


def test_a_run_with_diagnostics_writes_every_key(tmp_path):
    from enlighten.run import run
    from tests.conftest import compose_cfg, read_run

    cfg = compose_cfg(["dataset=synthetic", "dataset.image_size=8", "dataset.channels=1", "model=cnn",
                       "trainer.epochs=2", "trainer.batch_size=64", "logger=none", "strategy=mixup_pause",
                       "phase=fixed_epochs", "phase.epochs=1", "diagnostics.enp_every_steps=2",
                       "diagnostics.every_steps=3", "diagnostics.stiffness=true"], tmp_path)
    summary = run(cfg)
    metrics, _ = read_run(tmp_path)
    from enlighten.results import read_jsonl

    steps = read_jsonl(tmp_path / "diagnostics.jsonl")
    cadence = [r for r in steps if "event" not in r]
    assert [r["step"] for r in cadence] == [1, 3, 5, 7, 10, 13, 16]  # every 2 in the ENP (8 steps), then every 3
    assert [r for r in steps if r.get("event") == "enp_end"][0]["step"] == 8
    for key in ("cos", "r_perp_clean", "r_perp_mix", "norm_ratio"):
        for group in ("", "/stem", "/stages.0", "/stages.1", "/head"):
            assert f"diag/{key}{group}" in cadence[0]
    for key in ("diag/zero_act", "diag/dead_units", "diag/zero_act_mix", "diag/dead_units_mix",
                "diag/stiffness_within", "diag/stiffness_between"):
        assert key in cadence[0]
    for key in ("diag/cos", "diag/r_perp_clean", "diag/zero_act", "diag/dead_units", "diag/benr"):
        assert all(key in m for m in metrics)
    assert "diag/atd_mean" in metrics[1] and "diag/atd_var" in metrics[1]  # from the second epoch on
    assert metrics[0]["diag/benr"] >= 1.0
    assert all(cadence[i]["diag/alpha"] == 1.0 for i in range(len(cadence)))  # mix.alpha while paused
    for key in ("diag/cos", "diag/r_perp_clean", "diag/zero_act"):
        in_enp = [r[key] for r in cadence if r["in_enp"]]
        assert summary[f"enp_mean/{key}"] == pytest.approx(float(np.mean(in_enp)))
