"""Diagnostics with known answers (the paper's own model, a planted effect, exact quadrature), and the
guarantee that measuring never changes training."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from torch import nn

from enlighten.config import TrainerConfig
from enlighten.data.synthetic import synthetic
from enlighten.diagnostics.activations import Activations
from enlighten.diagnostics.fisher import FisherTrace
from enlighten.diagnostics.gradient_noise import GradientNoise
from enlighten.diagnostics.gradient_norms import GradientNorms
from enlighten.diagnostics.interference import Interference
from enlighten.diagnostics.measures import (
    BatchEpochNormRatio,
    Variant,
    activation_stats,
    beta_quadrature,
    clean_gradients,
    interference,
    mixed_gradients,
    parameter_groups,
    read_values,
    trajectory_distance,
)
from enlighten.diagnostics.monitor import Diagnostics, NoDiagnostics, on_grid
from enlighten.diagnostics.sharpness import Sharpness
from enlighten.diagnostics.stiffness import Stiffness, stiffness
from enlighten.diagnostics.trajectories import ATD, BENR
from enlighten.diagnostics.weight_distance import WeightDistance
from enlighten.loggers.base import NoLogger
from enlighten.models.cnn import cnn
from enlighten.phase.accuracy import AccuracyThreshold
from enlighten.phase.base import Phase
from enlighten.results import RunResults, read_jsonl
from enlighten.strategies.base import Strategy
from enlighten.strategies.mixer import Mixer
from enlighten.strategies.mixing import partners
from enlighten.strategies.schedules import EveryStep, NoMixing
from enlighten.strategies.weighting import Mean
from enlighten.training.loop import Trainer
from enlighten.training.optim import cosine, sgd
from tests.conftest import REPO, SHARED_DATA, TINY, compose_cfg, needs_shared, read_run


def MixupStrategy(**mixer) -> Strategy:  # noqa: N802 - reads as the preset it builds
    return Strategy(Mixer(**mixer), Mean(), EveryStep())


def Vanilla(label_smoothing: float = 0.0) -> Strategy:  # noqa: N802
    return Strategy(Mixer(label_smoothing=label_smoothing), Mean(), NoMixing())


def phase(in_enp: bool) -> Phase:
    return Phase(step=0, epoch=0, steps_per_epoch=1, total_steps=1, in_enp=in_enp)


# --------------------------------------------------------------------------------------------------
# The paper's model: a linear layer with a sigmoid, binary labels, normalized inputs, at initialization
# --------------------------------------------------------------------------------------------------


class SigmoidLinear(nn.Module):
    """A linear model with a sigmoid, written as two-class logits [0, w.x]: softmax = sigmoid. At
    initialization (w = 0) every output is exactly 0.5."""

    def __init__(self, dim: int, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, 1, bias=False)
        nn.init.zeros_(self.linear.weight)
        if weight is not None:
            with torch.no_grad():
                self.linear.weight.copy_(weight)

    def forward(self, x):
        z = self.linear(x)
        return torch.cat([torch.zeros_like(z), z], dim=1)


DIM = 64


def two_classes(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit-norm inputs whose classes have separated means (+e1 and -e1) plus isotropic noise, in a
    random order: the clean gradient adds up coherently, the Mixup perturbation does not."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randperm(n, generator=g) % 2
    mean = torch.zeros(DIM, dtype=torch.float64)
    mean[0] = 1.0
    x = (2 * y[:, None] - 1) * mean + torch.randn(n, DIM, generator=g, dtype=torch.float64) / math.sqrt(DIM)
    return nn.functional.normalize(x, dim=1).float(), y


def chunks(x: torch.Tensor, y: torch.Tensor, size: int = 64, seed: int = 0):
    """The dataset in chunks of `size`, each with fixed partners for both pairings (as the monitor's
    dataset scope makes them)."""

    def gen():
        g = torch.Generator().manual_seed(seed)
        for i in range(0, len(x) - size + 1, size):
            yield x[i : i + size], y[i : i + size], {p: partners(size, p, x.device, g) for p in ("permutation", "flip")}

    return gen


def measure(x, y, variants, weight=None, seed=0) -> dict:
    _, out = interference(SigmoidLinear(DIM, weight), chunks(x, y, seed=seed), variants, num_classes=2)
    return {v: {k: float(t) for k, t in r.items()} for v, r in out.items()}


def test_flip_pairing_of_opposite_labels_cancels_the_interference_exactly_at_any_lambda():
    x, y = two_classes(64, seed=0)
    order = torch.argsort(y, descending=True)  # positives first: every pair (i, 63 - i) has opposite labels
    x, y = x[order], y[order]
    for lam in (0.3, 0.7):
        flip, perm = Variant("flip", "mixup", lam), Variant("permutation", "mixup", lam)
        d = measure(x, y, [flip, perm])
        assert d[flip]["r_perp_clean"] < 1e-6 and d[flip]["cos"] == pytest.approx(1.0, abs=1e-9)
        # the Mixup gradient of each mirrored pair is (1 - 2 lambda)^2 times its clean gradient
        assert d[flip]["norm_ratio"] == pytest.approx((1 - 2 * lam) ** 2, rel=1e-5)
        assert d[perm]["r_perp_clean"] > 0.01  # one-way random pairs keep the x_i + x_j part


def test_flip_mixup_gradient_reweights_clean_pair_gradients_and_permutation_adds_the_sum_part():
    """Paper's model at w = 0: a sample's gradient is (0.5 - target) x. Flip pairing gives exactly the
    clean gradients of its pairs reweighted: (1 - 2 lambda)^2 for opposite labels, 1 for equal ones."""
    x, y = two_classes(64, seed=1)
    model = SigmoidLinear(DIM)
    yf = y.float()
    for lam in (0.3, 0.7):
        for pairing in ("flip", "permutation"):
            partner = partners(64, pairing, x.device, torch.Generator().manual_seed(2))
            (g,) = mixed_gradients(model, x, y, partner, Variant(pairing, "mixup", lam), 2, 0.0)
            target = lam * yf + (1 - lam) * yf[partner]
            mixed = lam * x + (1 - lam) * x[partner]
            torch.testing.assert_close(g[0], ((0.5 - target)[:, None] * mixed).mean(0), rtol=1e-5, atol=1e-7)
            weight = torch.where(yf != yf[partner], torch.tensor((1 - 2 * lam) ** 2), torch.tensor(1.0))
            reweighted = ((weight * (0.5 - yf))[:, None] * x).mean(0)
            if pairing == "flip":
                torch.testing.assert_close(g[0], reweighted, rtol=1e-5, atol=1e-7)
            else:  # not a reweighting of clean gradients: the x_i + x_j parts remain
                assert (g[0] - reweighted).norm() > 0.01 * reweighted.norm()  # flip: 1e-7


def test_dataset_level_interference_falls_as_one_over_sqrt_n_with_permutation_pairing():
    """The paper's diminishing effect: over N samples the Mixup perturbation averages out like
    1/sqrt(N) while the clean gradient adds up. Tolerance on the log-log slope: 0.1 (8 datasets per
    N; the measured slope is -0.505)."""
    sizes = (256, 1024, 4096, 16384)
    for lam in (0.3, 0.7):
        v = Variant("permutation", "mixup", lam)
        mean_log_r = [
            np.mean([math.log(measure(*two_classes(n, s), [v], seed=s)[v]["r_perp_clean"]) for s in range(8)])
            for n in sizes
        ]
        slope = np.polyfit(np.log(sizes), mean_log_r, 1)[0]
        assert slope == pytest.approx(-0.5, abs=0.1), slope


def test_unbiased_estimate_removes_the_noise_floor_and_keeps_a_planted_effect():
    """At w = 0 the expected Mixup gradient is parallel to the clean one (no systematic interference):
    the plain |g_perp|^2 is only sampling noise, the unbiased estimate is zero within its error. With
    trained weights (a planted systematic part) the unbiased estimate stays put as N grows while the
    plain one falls toward it."""
    v = Variant("permutation", "mixup", 0.3)

    def perp(n, weight=None, seeds=range(32)):
        rows = [measure(*two_classes(n, s), [v], weight, seed=s)[v] for s in seeds]
        return np.array([r["perp_sq"] for r in rows]), np.array([r["perp_sq_unbiased"] for r in rows])

    def standard_error(a):
        return a.std(ddof=1) / math.sqrt(len(a))

    plain, unbiased = perp(1024)
    assert abs(unbiased.mean()) < 3 * standard_error(unbiased)  # zero within its error
    assert (plain - unbiased).mean() > 5 * standard_error(plain - unbiased)  # the floor it removes
    weight = torch.zeros(1, DIM)
    weight[0, 0], weight[0, 1:5] = 3.0, 1.0
    (plain_small, unbiased_small), (plain_large, unbiased_large) = perp(1024, weight), perp(4096, weight)
    assert plain_small.mean() / plain_large.mean() > 1.6  # the noise floor falls with N
    assert 0.67 < unbiased_small.mean() / unbiased_large.mean() < 1.5  # the systematic part does not


@pytest.mark.parametrize("alpha", [0.2, 1.0, 2.0, 4.0])
def test_beta_quadrature_is_exact_for_piecewise_linear_and_close_for_smooth_functions(alpha):
    nodes = [0.1, 0.2, 0.3, 0.4, 0.5]
    w = beta_quadrature(nodes, alpha)
    assert sum(w) == pytest.approx(1.0, abs=1e-12)

    def expectation(f):
        return integrate.quad(lambda t: f(t) * stats.beta.pdf(t, alpha, alpha), 0, 1, limit=200)[0]

    tent = lambda t: min(t, 1 - t)  # noqa: E731 - linear on [0, 0.5], symmetric
    assert w[0] * 0 + sum(wi * tent(t) for wi, t in zip(w[1:], nodes)) == pytest.approx(expectation(tent), abs=1e-9)
    smooth = lambda t: t * (1 - t)  # noqa: E731 - smooth and linear near 0, as r(lambda) is
    assert sum(wi * smooth(t) for wi, t in zip(w[1:], nodes)) == pytest.approx(expectation(smooth), abs=0.005)


def test_quadrature_of_r_matches_a_monte_carlo_mean_over_beta_lambdas():
    """The quantity the single random draw estimated, without its noise: E over lambda ~ Beta(alpha,
    alpha) of r, from five fixed lambdas, against 200 random draws (within 3 standard errors)."""
    x, y = two_classes(1024, seed=1)
    nodes = [0.1, 0.2, 0.3, 0.4, 0.5]
    at_nodes = measure(x, y, [Variant("permutation", "mixup", lam) for lam in nodes], seed=1)
    r = [at_nodes[Variant("permutation", "mixup", lam)]["r_perp_clean"] for lam in nodes]
    rng = np.random.default_rng(0)
    for alpha in (0.2, 1.0):
        quadrature = sum(w * v for w, v in zip(beta_quadrature(nodes, alpha)[1:], r))
        draws = [Variant("permutation", "mixup", float(lam)) for lam in rng.beta(alpha, alpha, 200)]
        mc = np.array([d["r_perp_clean"] for d in measure(x, y, draws, seed=1).values()])
        assert abs(quadrature - mc.mean()) < 3 * mc.std(ddof=1) / math.sqrt(len(mc))


def test_clean_gradient_has_the_label_smoothing_training_uses():
    torch.manual_seed(0)
    model = cnn(4, (1, 8, 8))
    x, y = torch.randn(8, 1, 8, 8), torch.tensor([0, 1, 2, 3] * 2)
    vanilla = Vanilla(label_smoothing=0.1)
    vanilla.setup(4)
    batch = vanilla.prepare(x, y, phase(False))
    expected = torch.autograd.grad(
        batch.reduce(nn.functional.cross_entropy(model(x), y, label_smoothing=0.1, reduction="none")),
        list(model.parameters()),
    )
    for a, b in zip(clean_gradients(model, x, y, 4, 0.1), expected):
        torch.testing.assert_close(a, b)


# --------------------------------------------------------------------------------------------------
# The other measures
# --------------------------------------------------------------------------------------------------


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
    d = read_values([activation_stats(model, [x])])[0]
    assert d["diag/zero_act"] == pytest.approx(4 / 6) and d["diag/zero_act/1"] == pytest.approx(4 / 6)
    assert d["diag/dead_units"] == pytest.approx(2 / 3)  # units 1 and 2 are zero on every sample
    gelu = nn.Sequential(nn.Linear(2, 3, bias=False), nn.GELU())
    gelu[0].load_state_dict(model[0].state_dict())
    assert float(activation_stats(gelu, [x])["diag/zero_act"]) == pytest.approx(4 / 6)  # pre-activations <= 0


def test_train_mode_activations_use_batch_statistics_and_restore_the_running_ones():
    """Batch norm centres each channel on the batch's own mean in train mode: half the units of a
    symmetric batch are zero after the ReLU, whatever the (stale) running statistics say."""
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU())
    with torch.no_grad():
        model[1].running_mean.fill_(100.0)  # eval mode: every unit is far below its running mean
    before = [b.clone() for b in model.buffers()]
    x = torch.randn(64, 4)
    x = torch.cat([x, -x])  # symmetric around the batch mean: half of each unit's values are below it
    eval_mode = read_values([activation_stats(model, [x])])[0]
    train_mode = read_values([activation_stats(model, [x], "diag/zero_act_train", train_mode=True, per_site=False)])[0]
    assert eval_mode["diag/zero_act"] == 1.0 and train_mode["diag/zero_act_train"] == pytest.approx(0.5, abs=0.02)
    assert "diag/zero_act_train/2" not in train_mode  # per site: eval mode only
    assert all(torch.equal(a, b) for a, b in zip(model.buffers(), before))


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
    d = read_values([stiffness(model, x, torch.tensor([0, 0, 1, 1]))])[0]
    assert d["diag/stiffness_within"] == pytest.approx(1.0)


def test_the_shared_step_grid():
    assert [s for s in range(0, 1001) if on_grid(s)] == [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
    assert [s for s in range(0, 1001) if on_grid(s, first=10)] == [0, 10, 20, 50, 100, 200, 500, 1000]


def test_per_group_expectations_equal_the_overall_ones_for_a_one_group_model():
    """SigmoidLinear has one parameter group: its group keys must repeat the overall values (cos and
    norm_ratio are 1 at lambda 0 for a group too)."""
    from enlighten.data.base import InMemoryData

    x, y = two_classes(256, seed=3)
    data = InMemoryData(x, y, x[:16], y[:16], num_classes=2, name="two_classes")
    monitor = Diagnostics({"interference": Interference(alpha=0.4, dataset_chunk_size=64)})
    torch.manual_seed(0)
    model = SigmoidLinear(DIM, torch.randn(1, DIM) * 0.1)
    monitor.setup(model, data, Vanilla())
    row = read_values([monitor.measure(phase(True))])[0]
    for m in ("cos", "r_perp_clean", "r_perp_mix", "norm_ratio"):
        assert row[f"diag/{m}/linear"] == pytest.approx(row[f"diag/{m}"], rel=1e-9), m


def test_manifold_mixup_is_measured_at_every_layer_training_draws_from():
    torch.manual_seed(0)
    model = cnn(10, (1, 8, 8))
    data = synthetic(num_train=128, num_test=16, image_size=8, channels=1)
    strategy = MixupStrategy(alpha=1.0, kind="manifold")
    strategy.setup(10, model)
    monitor = Diagnostics({"interference": Interference(lambdas=[0.3], dataset_chunk_size=32)})  # kind: the mixer's
    monitor.setup(model, data, strategy)
    row = read_values([monitor.measure(phase(False))])[0]
    assert row["diag/mix_kind"] == "manifold"
    # the mean over the layers 0 (the input) and 1 (after the first stage), as training draws them
    x, y, partner = monitor.probe.x, monitor.probe.y, monitor.probe.partners["permutation"]
    _, by_layer = interference(
        model,
        lambda: [(x, y, {"permutation": partner})],
        [Variant("permutation", "manifold", 0.3, layer) for layer in (0, 1)],
        10,
    )
    expected = np.mean([float(r["r_perp_clean"]) for r in by_layer.values()])
    assert row["diag/r_perp_clean@0.3"] == pytest.approx(expected)


def test_the_diagnostics_follow_the_runs_seed(tmp_path):
    assert compose_cfg(["seed=3"], tmp_path).diagnostics.seed == 3
    data = synthetic(num_train=256, num_test=16, image_size=8, channels=1)
    probes = []
    for seed in (0, 0, 1):
        monitor = Diagnostics({}, seed=seed)
        monitor.setup(cnn(10, (1, 8, 8)), data, Vanilla())
        probes.append(monitor.probe.x)
    assert torch.equal(probes[0], probes[1]) and not torch.equal(probes[0], probes[2])


def test_settings_are_checked_when_the_measures_are_built_or_checked_against_the_strategy():
    for kwargs, message in (
        ({"lambdas": [0.3, 0.7]}, "interference.lambdas"),
        ({"lambdas": [0.3, 0.2]}, "increasing"),
        ({"alpha": float("nan")}, "interference.alpha"),
        ({"dataset_pairings": ["reverse"]}, "dataset_pairings"),
        ({"dataset_steps": [-1]}, "dataset_steps"),
    ):
        with pytest.raises(ValueError, match=message):
            Interference(**kwargs)
    for measure, mixer, message in (
        (Interference(alpha=0.0), {}, "interference needs a Mixup"),
        (Interference(alpha=0.0), {"kind": "manifold", "cutmix_alpha": 1.0}, "manifold"),
    ):
        with pytest.raises(ValueError, match=message):
            Diagnostics({"interference": measure}).check(MixupStrategy(**mixer))
    Diagnostics({"interference": Interference(alpha=0.0, probe=False)}).check(MixupStrategy())  # measures nothing
    Diagnostics({"interference": Interference(alpha=0.0)}).check(MixupStrategy(cutmix_alpha=1.0))  # CutMix only
    with pytest.raises(ValueError, match="diagnostics.measures.atd is a dict, not a Measure"):
        Diagnostics({"atd": {"_target_": "x"}})
    with pytest.raises(ValueError, match="stiffness.samples"):
        Stiffness(samples=1)


# --------------------------------------------------------------------------------------------------
# In training
# --------------------------------------------------------------------------------------------------


def _train(diagnostics, tmp_path):
    torch.manual_seed(0)
    np.random.seed(0)
    torch.use_deterministic_algorithms(True)
    data = synthetic(num_train=256, num_test=64, image_size=8, channels=1)
    model = cnn(10, (1, 8, 8))
    strategy = MixupStrategy(alpha=1.0, pairing="permutation")
    strategy.setup(10, model)
    opt = sgd(model, lr=0.05)
    cfg = TrainerConfig(epochs=3, batch_size=32, train_eval_samples=64)
    trainer = Trainer(
        cfg,
        model,
        data,
        strategy,
        AccuracyThreshold(threshold=0.3, check_every=2),
        opt,
        cosine(opt, total_steps=24, steps_per_epoch=8),
        RunResults(tmp_path),
        NoLogger(),
        torch.Generator().manual_seed(0),
        torch.device("cpu"),
        diagnostics=diagnostics,
    )
    summary = trainer.fit()
    torch.use_deterministic_algorithms(False)
    return model, opt, summary, np.random.get_state()[1].copy(), torch.get_rng_state()


@pytest.mark.e2e
def test_diagnostics_never_change_training(tmp_path):
    on = _train(
        Diagnostics(
            {
                "interference": Interference(dataset_chunk_size=32, dataset_steps=[0, 5], dataset_at_enp_end=True),
                "activations": Activations(),
                "benr": BENR(),
                "atd": ATD(),
                "stiffness": Stiffness(samples=4),
                "sharpness": Sharpness(iterations=3),
                "gradient_norms": GradientNorms(),
                "gradient_noise": GradientNoise(samples=8),
                "fisher": FisherTrace(samples=8),
                "weight_distance": WeightDistance(),
            },
            every_steps=2,
            enp_every_steps=1,
            probe_size=16,
        ),
        tmp_path / "on",
    )
    off = _train(NoDiagnostics(), tmp_path / "off")
    for (k, a), (_, b) in zip(on[0].state_dict().items(), off[0].state_dict().items()):
        assert torch.equal(a, b), k  # parameters and batch-norm buffers, bitwise
    for a, b in zip(on[1].state_dict()["state"].values(), off[1].state_dict()["state"].values()):
        assert torch.equal(a["momentum_buffer"], b["momentum_buffer"])
    assert np.array_equal(on[3], off[3]) and torch.equal(on[4], off[4])  # the random streams training uses
    assert on[2]["enp_end_step"] == off[2]["enp_end_step"]
    assert (tmp_path / "on" / "diagnostics.jsonl").exists() and not (tmp_path / "off" / "diagnostics.jsonl").exists()
    assert on[2]["enp_mean/diag/cos"] is not None
    points = {r.get("point") for r in read_jsonl(tmp_path / "on" / "diagnostics.jsonl") if r.get("event") == "dataset"}
    assert points == {"init", "step5", "enp_end"}


TINY_RUN = [*TINY, "dataset.channels=1", "trainer.deterministic=false"]


@pytest.mark.e2e
def test_a_run_with_diagnostics_writes_every_key(tmp_path):
    from enlighten.run import run

    cfg = compose_cfg(
        [
            *TINY_RUN,
            "strategy=mixup_pause",
            "phase=fixed_epochs",
            "phase.epochs=1",
            "diagnostics.enp_every_steps=2",
            "diagnostics.every_steps=3",
            "diagnostics=stiffness",
            "mix.alpha=0.4",
        ],
        tmp_path,
    )
    summary = run(cfg)
    metrics, _ = read_run(tmp_path)
    steps = read_jsonl(tmp_path / "diagnostics.jsonl")
    cadence = [r for r in steps if "event" not in r]
    # step 0 (initialization); in the ENP (steps 1-8) every 2; then the grid (from 10) and every 3
    assert [r["step"] for r in cadence] == [0, 2, 4, 6, 8, 9, 10, 12, 15]
    assert [r["step"] for r in cadence if r["grid"]] == [0, 10]
    assert [r for r in steps if r.get("event") == "enp_end"][0]["step"] == 8
    for key in ("cos", "r_perp_clean", "r_perp_mix", "norm_ratio"):
        for suffix in ("", "/stem", "/stages.0", "/stages.1", "/head", "@0.1", "@0.3", "@0.5"):
            assert f"diag/{key}{suffix}" in cadence[0], f"diag/{key}{suffix}"
    for key in (
        "diag/zero_act",
        "diag/dead_units",
        "diag/zero_act_train",
        "diag/zero_act_mix",
        "diag/dead_units_mix",
        "diag/stiffness_within",
        "diag/stiffness_between",
    ):
        assert key in cadence[0]
    assert cadence[0]["diag/pairing"] == "permutation" and cadence[0]["diag/mix_kind"] == "mixup"
    assert all(r["diag/alpha"] == 0.4 for r in cadence)  # mix.alpha, also while paused
    # per-epoch columns, each measured at the epoch's end (no means over the epoch's rows)
    for key in ("diag/zero_act", "diag/zero_act_train", "diag/zero_act_mix", "diag/dead_units", "diag/benr"):
        assert all(key in m for m in metrics)
    assert not any(k.startswith(("diag/cos", "diag/r_perp")) for m in metrics for k in m)
    assert "diag/atd_mean" in metrics[1] and "diag/atd_var" in metrics[1]  # from the second epoch on
    assert metrics[0]["diag/benr"] >= 1.0
    for key in ("diag/cos", "diag/r_perp_clean", "diag/zero_act"):
        in_enp = [r[key] for r in cadence if r["in_enp"]]
        assert summary[f"enp_mean/{key}"] == pytest.approx(float(np.mean(in_enp)))
    # the expectation over Beta(0.4, 0.4) from the per-lambda values (r = 0 at lambda 0)
    row, nodes = cadence[0], [0.1, 0.3, 0.5]  # the default lambdas
    weights = beta_quadrature(nodes, 0.4)
    assert row["diag/r_perp_clean"] == pytest.approx(
        sum(w * row[f"diag/r_perp_clean@{lam}"] for w, lam in zip(weights[1:], nodes))
    )
    assert row["diag/cos"] == pytest.approx(
        weights[0] + sum(w * row[f"diag/cos@{lam}"] for w, lam in zip(weights[1:], nodes))
    )


def test_enp_means_are_null_when_the_enp_never_ended(tmp_path):
    from enlighten.run import run

    summary = run(compose_cfg([*TINY_RUN, "trainer.epochs=1", "strategy=mixup", "phase=never"], tmp_path))
    assert summary["enp_end_step"] is None
    assert all(summary[f"enp_mean/diag/{k}"] is None for k in ("cos", "r_perp_clean", "zero_act"))


def test_cutmix_and_mixup_are_both_measured_as_training_mixes(tmp_path):
    from enlighten.run import run
    from enlighten.strategies.mixing import centred_box

    run(
        compose_cfg(
            [
                *TINY_RUN,
                "trainer.epochs=1",
                "dataset.image_size=16",
                "strategy=mixup",
                "mix.cutmix_alpha=1.0",
                "mix.switch_prob=0.25",
                "diagnostics.measures.interference.lambdas=[0.2,0.5]",
            ],
            tmp_path,
        )
    )
    row = read_jsonl(tmp_path / "diagnostics.jsonl")[0]
    assert row["diag/mix_kind"] == "mixup+cutmix" and row["diag/alpha"] == 1.0 and row["diag/cutmix_alpha"] == 1.0
    # CutMix is named and integrated at the lambda its box really has (16x16: 0.234 and 0.473)
    boxes = [centred_box((16, 16), lam)[1] for lam in (0.2, 0.5)]
    cutmix_nodes = sorted(min(b, 1 - b) for b in boxes)
    assert [f"{t:.3g}" for t in cutmix_nodes] == ["0.234", "0.473"]
    mixup_q = sum(
        w * row[f"diag/mixup/r_perp_clean@{lam}"] for w, lam in zip(beta_quadrature([0.2, 0.5], 1.0)[1:], (0.2, 0.5))
    )
    cutmix_q = sum(
        w * row[f"diag/cutmix/r_perp_clean@{t:.3g}"]
        for w, t in zip(beta_quadrature(cutmix_nodes, 1.0)[1:], cutmix_nodes)
    )
    assert row["diag/r_perp_clean"] == pytest.approx(0.75 * mixup_q + 0.25 * cutmix_q)


@pytest.mark.e2e
def test_dataset_scope_records_both_pairings_and_every_size_starts_from_the_same_weights(tmp_path, monkeypatch):
    from enlighten.data import synthetic as synthetic_module
    from enlighten.run import run

    real = synthetic_module.synthetic

    def loader_that_draws(**kwargs):  # a loader that draws from torch's global stream, more for more data
        torch.rand(int(100 * kwargs.get("fraction", 1.0)))
        return real(**kwargs)

    monkeypatch.setattr(synthetic_module, "synthetic", loader_that_draws)
    summaries = {}
    for fraction in (0.5, 1.0):
        out = tmp_path / str(fraction)
        summaries[fraction] = run(
            compose_cfg(
                [
                    *TINY_RUN,
                    "trainer.epochs=1",
                    "dataset.num_train=512",
                    "strategy=mixup",
                    "mix.pairing=permutation",
                    "diagnostics=dataset",
                    "phase=fraction",
                    "phase.fraction=0.5",
                    "trainer.reuse_data=false",
                    f"dataset.fraction={fraction}",
                ],
                out,
            )
        )
        rows = [r for r in read_jsonl(out / "diagnostics.jsonl") if r.get("event") == "dataset"]
        assert [r["point"] for r in rows] == ["init", "enp_end"] and rows[0]["step"] == 0
        assert rows[0]["data/num_samples"] == int(512 * fraction)
    assert summaries[0.5]["init_params_sha1"] == summaries[1.0]["init_params_sha1"]
    s = summaries[1.0]
    for point in ("init", "enp_end"):
        for pairing in ("permutation", "flip"):
            for suffix in ("", "@0.1", "@0.3", "@0.5", "_debiased", "_debiased@0.3"):
                assert isinstance(s[f"{point}/data/{pairing}/r_perp_clean{suffix}"], float)
            assert s[f"{point}/data/{pairing}/cos"] <= 1.0
    assert s["init/data/num_samples"] == 512 and s["init/data/clean_sq_unbiased"] > 0


def test_the_dataset_scope_is_refused_on_several_processes(tmp_path, monkeypatch):
    from enlighten.config import ConfigError
    from enlighten.run import run
    from enlighten.training import distributed

    monkeypatch.setattr(distributed, "init", lambda: distributed.Dist(rank=0, world_size=2))
    with pytest.raises(ConfigError, match="dataset scope .* runs on one process"):
        run(compose_cfg([*TINY_RUN, "diagnostics=dataset"], tmp_path))
    assert not (tmp_path / "metrics.jsonl").exists()


@pytest.mark.e2e
@needs_shared("MNIST", "raw")
def test_dataset_scope_on_mnist_with_permutation_pairing(tmp_path):
    """The issue's run: MNIST, mix.pairing=permutation, the dataset scope: r at initialization per
    lambda and by quadrature, for both pairings, in diagnostics.jsonl and summary.json."""
    from enlighten.run import run

    summary = run(
        compose_cfg(
            [
                "dataset=mnist",
                f"paths.data_dir={SHARED_DATA}",
                "dataset.download=false",
                "dataset.fraction=0.02",
                "model=cnn",
                "model.width=0.5",
                "trainer.max_steps=5",
                "trainer.batch_size=128",
                "logger=none",
                "strategy=mixup",
                "mix.pairing=permutation",
                "diagnostics=dataset",
            ],
            tmp_path,
        )
    )
    row = [r for r in read_jsonl(tmp_path / "diagnostics.jsonl") if r.get("event") == "dataset"][0]
    assert row["point"] == "init" and row["data/num_samples"] == 1152  # 1,200 samples in chunks of 128
    for pairing in ("permutation", "flip"):
        for lam in (0.1, 0.3, 0.5):  # the default lambdas
            key = f"data/{pairing}/r_perp_clean@{lam:g}"
            assert 0 < row[key] < 2 and summary[f"init/{key}"] == row[key]
        assert summary[f"init/data/{pairing}/r_perp_clean"] == row[f"data/{pairing}/r_perp_clean"]


# --------------------------------------------------------------------------------------------------
# Adding a measure: the worked example of docs/diagnostics.md
# --------------------------------------------------------------------------------------------------

MEASURE_EXAMPLE = {
    "python": REPO / "enlighten" / "diagnostics" / "weight_norms.py",
    "yaml": REPO / "conf" / "diagnostics" / "weight_norms.yaml",
}


def test_the_docs_example_is_the_shipped_measure_and_needs_nothing_else():
    docs = (REPO / "docs" / "diagnostics.md").read_text()
    section = docs.split("## Adding a measure", 1)[1].split("\n## ", 1)[0]
    blocks = dict(re.findall(r"```(python|yaml)\n(.*?)```", section, flags=re.S))
    assert blocks == {kind: path.read_text() for kind, path in MEASURE_EXAMPLE.items()}
    names = ("weight_norms", "WeightNorms")  # no registry, no import elsewhere in the package or its configs
    mentions = {
        p.relative_to(REPO)
        for p in [*(REPO / "enlighten").rglob("*.py"), *(REPO / "conf").rglob("*.yaml")]
        if any(n in p.read_text() for n in names)
    }
    panel = Path("conf/diagnostics/panel.yaml")  # the preset of every instrument names each in its defaults
    assert mentions - {panel} == {p.relative_to(REPO) for p in MEASURE_EXAMPLE.values()}


def test_weight_norms_of_known_weights():
    """Known answer: every weight 1 except the head's (2): sqrt(n) per group, sqrt(sum) overall."""
    from enlighten.diagnostics.base import Probe
    from enlighten.diagnostics.weight_norms import WeightNorms

    model = cnn(10, (1, 8, 8), width=0.25)
    counts = {}
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.fill_(2.0 if name.startswith("head") else 1.0)
            group = name.split(".")[0] if not name.startswith("stages") else ".".join(name.split(".")[:2])
            counts[group] = counts.get(group, 0) + p.numel() * (4.0 if name.startswith("head") else 1.0)
    measure = WeightNorms()
    measure.setup(Probe(model, None, None, torch.zeros(2, 1, 8, 8), torch.zeros(2), {}, 0))
    row = read_values([measure.row(phase(False))])[0]
    assert {k: row[f"diag/weight_norm/{k}"] for k in counts} == pytest.approx(
        {k: math.sqrt(v) for k, v in counts.items()}
    )
    assert row["diag/weight_norm"] == pytest.approx(math.sqrt(sum(counts.values())))


@pytest.mark.e2e
def test_a_run_with_the_example_measure_writes_its_keys_and_changes_no_other_value(tmp_path):
    from enlighten.run import run

    rows = {}
    for preset in ("default", "weight_norms"):
        run(compose_cfg([*TINY_RUN, f"diagnostics={preset}"], tmp_path / preset))
        rows[preset] = read_jsonl(tmp_path / preset / "diagnostics.jsonl")
    with_norms = rows["weight_norms"]
    assert all(r["diag/weight_norm"] > 0 and "diag/weight_norm/head" in r for r in with_norms)
    assert [{k: v for k, v in r.items() if "weight_norm" not in k} for r in with_norms] == rows["default"]


# --------------------------------------------------------------------------------------------------
# Sharpness: the top Hessian eigenvalue by power iteration
# --------------------------------------------------------------------------------------------------


def test_sharpness_is_the_top_eigenvalue_of_the_exact_hessian():
    """Known answer: for a small softmax regression (and a small MLP) the Hessian of the probe loss is
    computed whole (torch.autograd.functional.hessian) and its eigenvalue of largest magnitude taken
    by numpy; power iteration on Hessian-vector products finds it."""
    from torch.func import functional_call

    from enlighten.diagnostics.base import Probe

    torch.manual_seed(0)
    x, y = torch.randn(32, 5), torch.randint(0, 3, (32,))
    for model in (nn.Linear(5, 3), nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3))):
        names = [n for n, _ in model.named_parameters()]
        shapes = [p.shape for p in model.parameters()]
        flat = torch.cat([p.detach().flatten() for p in model.parameters()]).double()

        def loss_of(w, model=model, names=names, shapes=shapes):
            parts, i = {}, 0
            for n, s in zip(names, shapes):
                parts[n] = w[i : i + s.numel()].view(s).float()
                i += s.numel()
            return nn.functional.cross_entropy(functional_call(model, parts, (x,)), y).double()

        eigenvalues = np.linalg.eigvalsh(torch.autograd.functional.hessian(loss_of, flat).numpy())
        expected = eigenvalues[np.argmax(np.abs(eigenvalues))]
        measure = Sharpness(iterations=200)
        measure.setup(Probe(model, None, None, x, y, {}, 0))
        row = read_values([measure.row(phase(True))])[0]
        assert row["diag/sharpness"] == pytest.approx(expected, rel=1e-3)
        assert model.training  # the mode it was in


@pytest.mark.e2e
def test_a_run_with_sharpness_records_it_and_trains_as_without(tmp_path):
    from enlighten.run import run

    rows, metrics = {}, {}
    for preset, extra in (("default", []), ("sharpness", ["diagnostics.measures.sharpness.iterations=5"])):
        run(compose_cfg([*TINY_RUN, f"diagnostics={preset}", *extra], tmp_path / preset))
        rows[preset] = read_jsonl(tmp_path / preset / "diagnostics.jsonl")
        metrics[preset] = read_run(tmp_path / preset)[0]
    assert all(r["diag/sharpness"] > 0 for r in rows["sharpness"])
    assert [{k: v for k, v in r.items() if k != "diag/sharpness"} for r in rows["sharpness"]] == rows["default"]
    drop = ("wall_time_s", "samples_per_sec")
    assert [{k: v for k, v in m.items() if k not in drop} for m in metrics["sharpness"]] == [
        {k: v for k, v in m.items() if k not in drop} for m in metrics["default"]
    ]


def test_gradient_norms_of_a_softmax_regression_are_the_closed_form():
    """Known answer: for a linear layer and the mean cross-entropy, dL/dW = (P - Y)' X / n and
    dL/db = mean(P - Y), with P the softmax of the logits."""
    from types import SimpleNamespace

    from enlighten.diagnostics.base import Probe

    torch.manual_seed(0)
    model, x, y = nn.Linear(5, 3), torch.randn(16, 5), torch.randint(0, 3, (16,))
    measure = GradientNorms()
    measure.setup(Probe(model, SimpleNamespace(num_classes=3, tokens=False), Vanilla(), x, y, {}, 0))
    row = read_values([measure.row(phase(True))])[0]
    with torch.no_grad():
        residual = torch.softmax(model(x), 1) - nn.functional.one_hot(y, 3).float()
        expected = torch.cat([(residual.T @ x / 16).flatten(), residual.mean(0)]).double().norm().item()
    assert row["diag/grad_norm"] == pytest.approx(expected, rel=1e-5)
    assert row["diag/grad_norm/embed"] == pytest.approx(expected, rel=1e-5)  # a bare layer: one group
    assert all(p.grad is None for p in model.parameters())  # `.grad` untouched


@pytest.mark.e2e
def test_a_run_with_gradient_norms_records_them_per_group(tmp_path):
    from enlighten.run import run

    run(compose_cfg([*TINY_RUN, "diagnostics=gradient_norms"], tmp_path))
    rows = read_jsonl(tmp_path / "diagnostics.jsonl")
    for r in rows:
        groups = [r[f"diag/grad_norm/{g}"] for g in ("stem", "stages.0", "stages.1", "head")]
        assert r["diag/grad_norm"] == pytest.approx(math.sqrt(sum(g * g for g in groups)))
