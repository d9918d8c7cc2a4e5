"""The early-training instrument panel (issue 30): gradient noise, the Fisher trace and the weights'
distance from initialization, each on a case with a known answer, and a run with every instrument on
that trains and measures the rest as a run without them."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from enlighten.diagnostics.base import Probe
from enlighten.diagnostics.fisher import FisherTrace
from enlighten.diagnostics.gradient_noise import GradientNoise, gradient_covariance
from enlighten.diagnostics.measures import per_sample_gradients, read_values
from enlighten.diagnostics.weight_distance import WeightDistance
from enlighten.phase.base import Phase
from enlighten.results import read_jsonl
from tests.conftest import TINY, compose_cfg, read_run

PHASE = Phase(step=0, epoch=0, steps_per_epoch=1, total_steps=1)
DATA = SimpleNamespace(num_classes=3, tokens=False, name="test")


def _measured(measure, model, x, y) -> dict:
    measure.setup(Probe(model, DATA, None, x, y, {}, 0))
    return read_values([measure.row(PHASE)])[0]


def _softmax_regression(n: int = 24, d: int = 5, classes: int = 3):
    torch.manual_seed(0)
    return nn.Linear(d, classes), torch.randn(n, d), torch.randint(0, classes, (n,))


# --------------------------------------------------------------------------------------------------
# Gradient noise
# --------------------------------------------------------------------------------------------------


def test_gradient_noise_of_a_linear_regression_with_planted_noise():
    """Known answer: y = w*'x + sigma e with x ~ N(0, I_d). At w = w*, the per-sample gradient of
    (w'x - y)^2 / 2 is -sigma e x, whose covariance is sigma^2 I: top eigenvalue sigma^2, trace
    sigma^2 d. On the sample, the values are those of numpy's covariance of the closed form."""
    torch.manual_seed(0)
    n, d, sigma = 4000, 5, 0.5
    model = nn.Linear(d, 1, bias=False)
    x = torch.randn(n, d)
    y = (model(x).detach() + sigma * torch.randn(n, 1)).squeeze(1)

    def squared_error(out, target):
        return 0.5 * (out.squeeze(-1) - target).pow(2).mean()

    grads = per_sample_gradients(model, x, y, loss=squared_error)
    values = {k: v.item() for k, v in gradient_covariance(grads).items()}
    closed_form = ((model(x).detach().squeeze(1) - y)[:, None] * x).double().numpy()
    sample = np.cov(closed_form, rowvar=False)
    assert values["diag/grad_noise_top"] == pytest.approx(np.linalg.eigvalsh(sample)[-1], rel=1e-6)
    assert values["diag/grad_noise_trace"] == pytest.approx(np.trace(sample), rel=1e-6)
    assert values["diag/grad_noise_top"] == pytest.approx(sigma**2, rel=0.15)  # the population values
    assert values["diag/grad_noise_trace"] == pytest.approx(sigma**2 * d, rel=0.05)


def test_gradient_noise_of_a_softmax_regression_is_the_covariance_of_the_closed_form():
    """Through the measure: the per-sample gradients of a softmax regression are (p - e_y) x' and
    p - e_y (bias); the measure gives their covariance's top eigenvalue and trace, and leaves `.grad`
    and the model's mode as they were."""
    model, x, y = _softmax_regression()
    row = _measured(GradientNoise(samples=24), model, x, y)
    with torch.no_grad():
        residual = torch.softmax(model(x), 1) - nn.functional.one_hot(y, 3).float()
    per_sample = torch.cat([(residual[:, :, None] * x[:, None, :]).flatten(1), residual], 1).double().numpy()
    covariance = np.cov(per_sample, rowvar=False)
    assert row["diag/grad_noise_top"] == pytest.approx(np.linalg.eigvalsh(covariance)[-1], rel=1e-6)
    assert row["diag/grad_noise_trace"] == pytest.approx(np.trace(covariance), rel=1e-6)
    assert model.training and all(p.grad is None for p in model.parameters())


def test_per_sample_gradients_one_by_one_equal_the_vectorized_ones():
    """The fallback for models vmap cannot batch (one backward per sample) gives the same gradients, on
    a model with batch norm in eval mode and an unused parameter."""
    from enlighten.models.cnn import cnn

    torch.manual_seed(0)
    model = cnn(3, (1, 8, 8), width=0.25).eval()
    model.unused = nn.Parameter(torch.ones(2))
    x, y = torch.randn(5, 1, 8, 8), torch.randint(0, 3, (5,))
    fast, slow = per_sample_gradients(model, x, y), per_sample_gradients(model, x, y, vectorized=False)
    assert len(fast) == len(slow) == len(list(model.parameters()))
    for a, b in zip(fast, slow):
        assert torch.allclose(a, b, atol=1e-6)
    unused = [n for n, _ in model.named_parameters()].index("unused")
    assert torch.equal(fast[unused], torch.zeros(5, 2))  # the unused parameter: zeros in both


class ReadsAValue(nn.Linear):
    """A layer whose forward reads a value to the host, which vmap cannot batch."""

    def forward(self, x):
        return super().forward(x) * (1.0 if float(x.abs().sum()) >= 0 else 0.0)


def test_a_model_vmap_cannot_batch_falls_back_to_one_backward_per_sample_with_the_same_values(caplog):
    torch.manual_seed(0)
    plain, reads = nn.Linear(5, 3), ReadsAValue(5, 3)
    reads.load_state_dict(plain.state_dict())
    x, y = torch.randn(6, 5), torch.randint(0, 3, (6,))
    with torch.no_grad():  # as a caller under no_grad: the fallback takes its gradients all the same
        expected, got = per_sample_gradients(plain, x, y), per_sample_gradients(reads, x, y)
    for a, b in zip(expected, got):
        assert torch.allclose(a, b, atol=1e-6)


def test_a_measure_on_more_samples_than_the_probe_is_refused_naming_both_settings():
    from enlighten.diagnostics.monitor import Diagnostics

    with pytest.raises(ValueError, match=r"diagnostics.measures.gradient_noise.samples=65 .*diagnostics.probe_size=64"):
        Diagnostics({"gradient_noise": GradientNoise(samples=65)}, probe_size=64)


# --------------------------------------------------------------------------------------------------
# Fisher trace
# --------------------------------------------------------------------------------------------------


class TwoGroups(nn.Module):
    """A softmax regression in two parameter groups: `stem` (the weight) and `head` (the bias)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.stem = nn.Linear(linear.in_features, linear.out_features, bias=False)
        self.head = nn.Module()
        self.head.bias = nn.Parameter(linear.bias.detach().clone())
        self.stem.weight.data.copy_(linear.weight.detach())

    def forward(self, x):
        return self.stem(x) + self.head.bias


def test_fisher_traces_of_a_softmax_regression_are_the_closed_form():
    """Known answer: the gradient of -log p(c|x) is (p - e_c) x' for the weight and p - e_c for the
    bias, so its squared norm is |p - e_c|^2 |x|^2 and |p - e_c|^2. The empirical trace takes c = y; the
    Fisher's takes the mean over c ~ p."""
    linear, x, y = _softmax_regression()
    model = TwoGroups(linear)
    row = _measured(FisherTrace(samples=24), model, x, y)
    with torch.no_grad():
        p = torch.softmax(linear(x), 1).double()
        off = (p[:, None, :] - torch.eye(3, dtype=torch.float64)).pow(2).sum(-1)  # [n, c]: |p - e_c|^2
        sq_x = x.double().pow(2).sum(1, keepdim=True)
        empirical = off.gather(1, y[:, None])
        fisher = (p * off).sum(1, keepdim=True)
    expected = {
        "diag/fisher_trace_empirical/stem": (empirical * sq_x).mean(),
        "diag/fisher_trace_empirical/head": empirical.mean(),
        "diag/fisher_trace/stem": (fisher * sq_x).mean(),
        "diag/fisher_trace/head": fisher.mean(),
    }
    for key, value in expected.items():
        assert row[key] == pytest.approx(value.item(), rel=1e-6), key
    for key in ("diag/fisher_trace", "diag/fisher_trace_empirical"):
        assert row[key] == pytest.approx(row[f"{key}/stem"] + row[f"{key}/head"], rel=1e-9)
    assert row["diag/fisher_trace"] != pytest.approx(row["diag/fisher_trace_empirical"], rel=1e-3)


# --------------------------------------------------------------------------------------------------
# Weight distance
# --------------------------------------------------------------------------------------------------


def test_weight_distance_is_zero_for_permuted_weights_and_known_for_scaled_ones():
    """Known answers: permuting the weights of a layer leaves its amplitude distribution, so W1 = 0;
    multiplying them by c moves every sorted amplitude from a to c a, so W1 = |c - 1| mean |w0|.
    Biases are not weights: changing them changes nothing."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    measure = WeightDistance()
    measure.setup(Probe(model, DATA, None, torch.zeros(2, 6), torch.zeros(2, dtype=torch.long), {}, 0))
    first, second = model[0].weight, model[2].weight
    mean_amplitude = first.detach().double().abs().mean().item()
    with torch.no_grad():
        second.copy_(second.flatten()[torch.randperm(second.numel())].view_as(second))
        model[0].bias.add_(1.0)
        first.mul_(1.5)
    row = read_values([measure.row(PHASE)])[0]
    assert row["diag/weight_w1/2"] == pytest.approx(0.0, abs=1e-12)
    assert row["diag/weight_w1/0"] == pytest.approx(0.5 * mean_amplitude, rel=1e-6)  # float32 products
    assert "diag/weight_w1/1" not in row  # the ReLU has no weights
    assert 0 < row["diag/weight_w1"] < row["diag/weight_w1/0"]


# --------------------------------------------------------------------------------------------------
# The whole panel in a run
# --------------------------------------------------------------------------------------------------

PANEL_KEYS = (
    "diag/sharpness",
    "diag/grad_noise_top",
    "diag/grad_noise_trace",
    "diag/fisher_trace",
    "diag/fisher_trace_empirical",
    "diag/grad_norm",
    "diag/weight_norm",
    "diag/weight_w1",
)


@pytest.mark.e2e
def test_a_run_with_the_panel_records_every_instrument_and_trains_as_without(tmp_path):
    from enlighten.run import run

    rows, metrics = {}, {}
    for preset in ("default", "panel"):
        overrides = [*TINY, "dataset.channels=1", "trainer.deterministic=false", f"diagnostics={preset}"]
        run(
            compose_cfg(
                [*overrides, "diagnostics.measures.sharpness.iterations=3"] if preset == "panel" else overrides,
                tmp_path / preset,
            )
        )
        rows[preset] = read_jsonl(tmp_path / preset / "diagnostics.jsonl")
        metrics[preset] = read_run(tmp_path / preset)[0]
    for r in rows["panel"]:
        assert all(np.isfinite(r[k]) for k in PANEL_KEYS), r
        assert r["diag/grad_noise_trace"] >= r["diag/grad_noise_top"] > 0
    assert rows["panel"][0]["diag/weight_w1"] == 0.0  # step 0: the initial weights
    assert rows["panel"][-1]["diag/weight_w1"] > 0
    panel_only = (
        "diag/sharpness",
        "diag/grad_noise",
        "diag/fisher",
        "diag/grad_norm",
        "diag/weight_norm",
        "diag/weight_w1",
    )
    assert [{k: v for k, v in r.items() if not k.startswith(panel_only)} for r in rows["panel"]] == rows["default"]
    drop = ("wall_time_s", "samples_per_sec")
    assert [{k: v for k, v in m.items() if k not in drop} for m in metrics["panel"]] == [
        {k: v for k, v in m.items() if k not in drop} for m in metrics["default"]
    ]
