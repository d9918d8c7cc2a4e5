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


def test_mixup_mixes_with_the_reversed_batch_at_numpy_lambda():
    s = MixupStrategy(alpha=0.4, label_smoothing=0.0)
    s.setup(num_classes=3)
    assert s.mixer.num_classes == 3 and s.mixer.label_smoothing == 0.0  # not timm's 1000 / 0.1
    x, y = torch.randn(4, 2, 5, 5), torch.tensor([0, 1, 2, 0])
    np.random.seed(7)
    np.random.rand()  # timm first draws whether to mix at all (mix.prob)
    lam = np.random.beta(0.4, 0.4)
    np.random.seed(7)
    xm, target = s.prepare(x.clone(), y, in_enp=False)
    torch.testing.assert_close(xm, lam * x + (1 - lam) * x.flip(0))
    onehot = torch.nn.functional.one_hot(y, 3).float()
    torch.testing.assert_close(target, lam * onehot + (1 - lam) * onehot.flip(0))
    assert s.mixing(False) and s.alpha(False) == 0.4


def test_mixup_with_zero_alpha_does_not_mix_and_odd_batches_are_refused():
    s = MixupStrategy(alpha=0.0)
    s.setup(10)
    x = torch.randn(4, 3)
    x_out, _ = s.prepare(x, torch.arange(4), in_enp=False)
    assert x_out is x and not s.mixing(False)
    with pytest.raises(ValueError, match="odd"):
        MixupStrategy(alpha=1.0).check(127)
    with pytest.raises(ValueError, match=">= 0"):
        MixupStrategy(alpha=-0.5)
