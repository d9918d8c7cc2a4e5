"""Strategies: targets, the per-sample loss, and timm's Mixup wired from mix.*."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from timm.loss import SoftTargetCrossEntropy

from enlighten.strategies.base import soft_cross_entropy
from enlighten.strategies.mixup import MixupStrategy
from enlighten.strategies.vanilla import Vanilla


def test_per_sample_loss_mean_is_timms_soft_target_cross_entropy():
    logits, target = torch.randn(8, 5), torch.softmax(torch.randn(8, 5), -1)
    per_sample = soft_cross_entropy(logits, target)
    assert per_sample.shape == (8,)
    torch.testing.assert_close(per_sample.mean(), SoftTargetCrossEntropy()(logits, target))


def test_vanilla_is_cross_entropy_with_label_smoothing():
    y = torch.tensor([0, 2, 1, 3])
    logits = torch.randn(4, 4)
    for smoothing in (0.0, 0.1):
        s = Vanilla(label_smoothing=smoothing)
        s.setup(4)
        x = torch.randn(4, 3)
        x_out, target = s.prepare(x, y, in_enp=False)
        assert x_out is x and not s.mixing(False) and s.alpha(False) == 0.0
        torch.testing.assert_close(
            s.reduce(soft_cross_entropy(logits, target), False),
            torch.nn.functional.cross_entropy(logits, y, label_smoothing=smoothing),
        )


@pytest.mark.parametrize("alpha, cutmix_alpha, smoothing", [(0.4, 0.0, 0.0), (0.0, 1.0, 0.1), (0.8, 1.0, 0.1)])
def test_flip_pairing_reproduces_timms_mixup_and_cutmix_bitwise(alpha, cutmix_alpha, smoothing):
    from timm.data.mixup import Mixup

    s = MixupStrategy(alpha=alpha, cutmix_alpha=cutmix_alpha, label_smoothing=smoothing, pairing="flip")
    s.setup(num_classes=3)
    timm_mixup = Mixup(mixup_alpha=alpha, cutmix_alpha=cutmix_alpha, label_smoothing=smoothing, num_classes=3)
    x, y = torch.randn(4, 2, 8, 8), torch.tensor([0, 1, 2, 0])
    for seed in range(10):
        np.random.seed(seed)
        ours = s.prepare(x, y, in_enp=False)
        np.random.seed(seed)
        theirs = timm_mixup(x.clone(), y)
        assert torch.equal(ours[0], theirs[0]) and torch.equal(ours[1], theirs[1])


def test_permutation_pairing_mixes_each_sample_with_a_fresh_random_partner():
    from enlighten.strategies.mixing import draw_lambda

    s = MixupStrategy(alpha=0.4, label_smoothing=0.1, pairing="permutation")
    s.setup(num_classes=3)
    x, y = torch.randn(6, 5), torch.tensor([0, 1, 2, 0, 1, 2])
    original = x.clone()
    partners_seen = set()
    for seed in range(5):
        np.random.seed(seed)
        torch.manual_seed(seed)
        xm, target = s.prepare(x, y, in_enp=False)
        np.random.seed(seed)
        torch.manual_seed(seed)
        lam, _ = draw_lambda(0.4, 0.0)  # numpy's generator, as timm draws it
        partner = torch.randperm(6)  # torch's generator: seeded by the run, saved in checkpoints
        partners_seen.add(tuple(partner.tolist()))
        torch.testing.assert_close(xm, lam * x + (1 - lam) * x[partner])
        smooth = torch.nn.functional.one_hot(y, 3).float() * 0.9 + 0.1 / 3
        torch.testing.assert_close(target, lam * smooth + (1 - lam) * smooth[partner])
    assert torch.equal(x, original)  # never in place
    assert len(partners_seen) == 5  # a fresh permutation every step
    MixupStrategy(alpha=1.0, pairing="permutation").check(127)  # any batch size pairs
    with pytest.raises(ValueError, match="mix.pairing=flip with it"):
        MixupStrategy(alpha=1.0, mode="pair", pairing="permutation")
    with pytest.raises(ValueError, match="mix.pairing must be one of"):
        MixupStrategy(alpha=1.0, pairing="reversed")


def test_mixup_with_zero_alpha_does_not_mix_and_odd_batches_are_refused():
    s = MixupStrategy(alpha=0.0)
    s.setup(10)
    x = torch.randn(4, 3)
    x_out, _ = s.prepare(x, torch.arange(4), in_enp=False)
    assert x_out is x and not s.mixing(False)
    with pytest.raises(ValueError, match="odd"):
        MixupStrategy(alpha=1.0, pairing="flip").check(127)
    with pytest.raises(ValueError, match=">= 0"):
        MixupStrategy(alpha=-0.5)


from enlighten.models.cnn import cnn  # noqa: E402
from enlighten.strategies.high_loss_removal import HighLossRemoval  # noqa: E402
from enlighten.strategies.mixing import draw_lambda, mix_inputs  # noqa: E402
from enlighten.strategies.schedules import AlphaBoost, MixupEarly, MixupPause  # noqa: E402


@pytest.mark.parametrize(
    "strategy, in_enp_alpha, after_alpha",
    [
        (MixupStrategy(alpha=0.4), 0.4, 0.4),
        (MixupPause(alpha=0.4), 0.0, 0.4),
        (AlphaBoost(alpha=0.4, boost_alpha=2.0), 2.0, 0.4),
        (MixupEarly(alpha=0.4), 0.4, 0.0),
        (Vanilla(), 0.0, 0.0),
        (HighLossRemoval(), 0.0, 0.0),
    ],
)
def test_schedules_mix_at_the_right_alpha_in_each_phase(strategy, in_enp_alpha, after_alpha):
    strategy.setup(3)
    x, y = torch.randn(4, 2), torch.tensor([0, 1, 2, 0])
    for in_enp, alpha in ((True, in_enp_alpha), (False, after_alpha)):
        assert strategy.alpha(in_enp) == alpha
        assert strategy.mixing(in_enp) == (alpha > 0)
        original = x.clone()
        np.random.seed(0)
        torch.manual_seed(0)
        x_out, target = strategy.prepare(x, y, in_enp)
        assert torch.equal(x, x_out) != (alpha > 0)  # mixed exactly when alpha > 0 ...
        assert torch.equal(x, original)  # ... and never in place
        if alpha > 0:  # ... at lambda drawn from Beta(alpha, alpha)
            np.random.seed(0)
            torch.manual_seed(0)
            lam, _ = draw_lambda(alpha, 0.0)
            torch.testing.assert_close(x_out, mix_inputs(x, torch.randperm(4), lam))


def test_pause_also_pauses_cutmix():
    s = MixupPause(alpha=0.0, cutmix_alpha=1.0)
    s.setup(3)
    assert not s.mixing(True) and s.mixing(False)


def test_high_loss_removal_drops_exactly_the_top_k_losses_in_the_enp():
    s = HighLossRemoval(drop_fraction=0.25)
    s.setup(10)
    losses = torch.tensor([0.1, 5.0, 0.3, 0.2, 4.0, 0.6, 0.7, 0.8])  # top 2 of 8: 5.0 and 4.0
    assert s.reduce(losses, in_enp=True).item() == pytest.approx(torch.tensor([0.1, 0.3, 0.2, 0.6, 0.7, 0.8]).mean().item())
    assert s.reduce(losses, in_enp=False).item() == pytest.approx(losses.mean().item())
    assert s.epoch_stats() == {"dropped": 2} and s.epoch_stats() == {"dropped": 0}
    whole = HighLossRemoval(drop_fraction=0.25, whole_run=True)
    assert whole.reduce(losses, in_enp=False).item() == pytest.approx(s.reduce(losses, True).item())
    losses.requires_grad_(True)
    s.reduce(losses, in_enp=True).backward()
    assert losses.grad[1] == 0 and losses.grad[4] == 0 and (losses.grad[[0, 2, 3, 5, 6, 7]] > 0).all()
    HighLossRemoval().check(127)  # no mixing: odd batches are fine
    assert HighLossRemoval(drop_fraction=0.29).num_dropped(100) == 29  # not 28.999... floored
    with pytest.raises(ValueError, match=r"drops floor\(0.05 x 16\) = 0 samples of a batch of 16: nothing would be removed"):
        HighLossRemoval(drop_fraction=0.05).check(16)
    HighLossRemoval(drop_fraction=0.0).check(16)  # a share of 0 is vanilla, on purpose
    with pytest.raises(ValueError):
        HighLossRemoval(drop_fraction=1.0)


@pytest.mark.parametrize("pairing", ["permutation", "flip"])
def test_manifold_mixup_mixes_hidden_states_after_the_drawn_stage(pairing):
    torch.manual_seed(0)
    model = cnn(3, (1, 8, 8)).eval()
    s = MixupStrategy(alpha=1.0, kind="manifold", pairing=pairing)
    s.setup(3, model)
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    layers = set()
    for seed in range(20):
        np.random.seed(seed)
        x_out, target = s.prepare(x, y, in_enp=False)
        lam, layer, partner = s._manifold_mix
        assert x_out is x  # the input itself is untouched
        assert pairing == "permutation" or partner.tolist() == [3, 2, 1, 0]
        layers.add(layer)
        with torch.no_grad():
            logits = s.forward(model, x)
            mix = lambda h: lam * h + (1 - lam) * h[partner]  # noqa: E731
            h = model.stem(mix(x) if layer == 0 else x)
            for i, stage in enumerate(model.stages, start=1):
                h = stage(h)
                h = mix(h) if i == layer else h
            torch.testing.assert_close(logits, model.forward_head(h))
        onehot = torch.nn.functional.one_hot(y, 3).float()
        torch.testing.assert_close(target, lam * onehot + (1 - lam) * onehot[partner])
    assert layers == {0, 1}  # the input, or after the first of the cnn's two stages
    with torch.no_grad():
        torch.testing.assert_close(s.forward(model, x), model(x))  # nothing pending: a plain forward


def test_manifold_mixup_needs_a_staged_model():
    from enlighten.models.vit import vit_tiny

    with pytest.raises(ValueError, match="stem/stages"):
        MixupStrategy(kind="manifold").setup(10, vit_tiny(10, (3, 32, 32), width=0.25))


def test_removal_controls_drop_the_lowest_or_random_losses_in_the_enp():
    from enlighten.strategies.high_loss_removal import LowLossRemoval, RandomRemoval

    losses = torch.arange(10, dtype=torch.float32)  # 0..9
    low = LowLossRemoval(drop_fraction=0.2)
    assert low.reduce(losses, in_enp=True).item() == pytest.approx(sum(range(2, 10)) / 8)  # 0 and 1 dropped
    assert low.reduce(losses, in_enp=False).item() == pytest.approx(4.5)  # after the ENP every sample counts
    rand = RandomRemoval(drop_fraction=0.3)
    torch.manual_seed(0)
    means = {round(rand.reduce(losses, in_enp=True).item(), 4) for _ in range(20)}
    assert len(means) > 1  # a different subset each time
    torch.manual_seed(0)
    again = {round(rand.reduce(losses, in_enp=True).item(), 4) for _ in range(20)}
    assert again == means  # drawn from torch's seeded generator
    assert rand.epoch_stats() == {"dropped": 3 * 40} and low.epoch_stats() == {"dropped": 2}
