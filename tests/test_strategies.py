"""Strategies: targets, the per-sample loss, timm's Mixup wired from mix.*, and each schedule's plan by
phase (a strategy is a mixer, a sample weighting and a schedule: enlighten/strategies/base.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from timm.loss import SoftTargetCrossEntropy

from enlighten.phase.base import Phase
from enlighten.strategies.base import Plan, StepReport, Strategy, soft_cross_entropy
from enlighten.strategies.mixer import Mixer
from enlighten.strategies.schedules import AlphaBoost, EveryStep, MixupEarly, MixupPause, NoMixing, WeighDuringEnp
from enlighten.strategies.weighting import DropHighest, DropLowest, DropRandom, Mean


def phase(in_enp: bool = False, epoch: int = 0, step: int = 0, steps_per_epoch: int = 10, epochs: int = 10) -> Phase:
    return Phase(
        step=step, epoch=epoch, steps_per_epoch=steps_per_epoch, total_steps=steps_per_epoch * epochs, in_enp=in_enp
    )


def strategy(schedule=None, weighting=None, num_classes: int = 3, model=None, **mixer) -> Strategy:
    s = Strategy(Mixer(**mixer), weighting or Mean(), schedule or EveryStep())
    s.setup(num_classes, model)
    return s


def test_per_sample_loss_mean_is_timms_soft_target_cross_entropy():
    logits, target = torch.randn(8, 5), torch.softmax(torch.randn(8, 5), -1)
    per_sample = soft_cross_entropy(logits, target)
    assert per_sample.shape == (8,)
    torch.testing.assert_close(per_sample.mean(), SoftTargetCrossEntropy()(logits, target))


def test_vanilla_is_cross_entropy_with_label_smoothing():
    y = torch.tensor([0, 2, 1, 3])
    logits = torch.randn(4, 4)
    for smoothing in (0.0, 0.1):
        s = strategy(NoMixing(), num_classes=4, label_smoothing=smoothing, cutmix_alpha=1.0)  # CutMix too: never
        x = torch.randn(4, 3)
        batch = s.prepare(x, y, phase())
        assert batch.x is x and batch.report() == StepReport(alpha=0.0, mixed=False, dropped=0) and not s.may_mix()
        torch.testing.assert_close(
            batch.reduce(soft_cross_entropy(logits, batch.target)),
            torch.nn.functional.cross_entropy(logits, y, label_smoothing=smoothing),
        )


@pytest.mark.parametrize("alpha, cutmix_alpha, smoothing", [(0.4, 0.0, 0.0), (0.0, 1.0, 0.1), (0.8, 1.0, 0.1)])
def test_flip_pairing_reproduces_timms_mixup_and_cutmix_bitwise(alpha, cutmix_alpha, smoothing):
    from timm.data.mixup import Mixup

    s = strategy(alpha=alpha, cutmix_alpha=cutmix_alpha, label_smoothing=smoothing, pairing="flip")
    timm_mixup = Mixup(mixup_alpha=alpha, cutmix_alpha=cutmix_alpha, label_smoothing=smoothing, num_classes=3)
    x, y = torch.randn(4, 2, 8, 8), torch.tensor([0, 1, 2, 0])
    for seed in range(10):
        np.random.seed(seed)
        ours = s.prepare(x, y, phase())
        np.random.seed(seed)
        theirs = timm_mixup(x.clone(), y)
        assert torch.equal(ours.x, theirs[0]) and torch.equal(ours.target, theirs[1])
        # mixed, unless CutMix's box came out empty (lambda corrected to 1: the batch is clean)
        assert ours.report() == StepReport(alpha=alpha, mixed=not torch.equal(ours.x, x), dropped=0)


@pytest.mark.parametrize("mode", ["pair", "elem"])
def test_timms_per_pair_and_per_sample_modes_mix_each_sample_with_its_mirror_at_its_own_lambda(mode):
    """mix.mode=pair|elem run through timm's Mixup: sample i is mixed with sample B-1-i at its own
    lambda, the soft target at the same lambda, the input batch untouched."""
    s = strategy(alpha=1.0, mode=mode, pairing="flip", num_classes=4)
    x, y = torch.randn(6, 3), torch.tensor([0, 1, 2, 3, 1, 2])
    original = x.clone()
    np.random.seed(0)
    batch = s.prepare(x, y, phase())
    x_out, target = batch.x, batch.target
    assert torch.equal(x, original) and batch.report().mixed
    lam = target[torch.arange(6), y]  # where the two labels differ, the weight of the sample's own label
    mirrored = x.flip(0)
    for i in range(6):
        if y[i] != y.flip(0)[i]:
            torch.testing.assert_close(x_out[i], lam[i] * x[i] + (1 - lam[i]) * mirrored[i])
    lams = {round(float(v), 6) for v, a, b in zip(lam, y, y.flip(0)) if a != b}
    assert len(lams) > 1  # a lambda of its own per pair or sample, not one for the batch
    if mode == "pair":  # a pair shares its lambda
        assert all(abs(lam[i] - lam[5 - i]) < 1e-6 for i in range(3) if y[i] != y[5 - i])


def test_permutation_pairing_mixes_each_sample_with_a_fresh_random_partner():
    from enlighten.strategies.mixing import draw_lambda

    s = strategy(alpha=0.4, label_smoothing=0.1, pairing="permutation")
    x, y = torch.randn(6, 5), torch.tensor([0, 1, 2, 0, 1, 2])
    original = x.clone()
    partners_seen = set()
    for seed in range(5):
        np.random.seed(seed)
        torch.manual_seed(seed)
        batch = s.prepare(x, y, phase())
        xm, target = batch.x, batch.target
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
    strategy(alpha=1.0, pairing="permutation").check(127)  # any batch size pairs
    with pytest.raises(ValueError, match="mix.pairing=flip with it"):
        strategy(alpha=1.0, mode="pair", pairing="permutation").check(8)
    strategy(NoMixing(), mode="pair", pairing="permutation").check(8)  # checked only where it mixes
    with pytest.raises(ValueError, match="mix.pairing must be one of"):
        Mixer(alpha=1.0, pairing="reversed")


def test_mixup_with_zero_alpha_does_not_mix_and_odd_batches_are_refused():
    s = strategy(alpha=0.0, num_classes=10)
    x = torch.randn(4, 3)
    batch = s.prepare(x, torch.arange(4), phase())
    assert batch.x is x and not batch.report().mixed and not s.may_mix()
    with pytest.raises(ValueError, match="odd"):
        strategy(alpha=1.0, pairing="flip").check(127)
    strategy(NoMixing(), alpha=1.0, pairing="flip").check(127)  # never mixes: any batch will do
    strategy(MixupPause(), alpha=0.0, cutmix_alpha=1.0, pairing="flip").check(128)
    with pytest.raises(ValueError, match="odd"):  # Alpha Boost mixes in the ENP even at mix.alpha 0
        strategy(AlphaBoost(boost_alpha=2.0), alpha=0.0, pairing="flip").check(127)
    with pytest.raises(ValueError, match=">= 0"):
        Mixer(alpha=-0.5)


from enlighten.models.cnn import cnn  # noqa: E402
from enlighten.strategies.mixing import draw_lambda, mix_inputs  # noqa: E402


@pytest.mark.parametrize(
    "schedule, alpha, in_enp_alpha, after_alpha",
    [
        (EveryStep(), 0.4, 0.4, 0.4),
        (MixupPause(), 0.4, None, 0.4),
        (AlphaBoost(boost_alpha=2.0), 0.4, 2.0, 0.4),
        (MixupEarly(), 0.4, 0.4, None),
        (NoMixing(), 0.4, None, None),
        (WeighDuringEnp(), 0.0, 0.0, 0.0),  # High-Loss Removal: Mixup at alpha 0 is no Mixup
    ],
)
def test_schedules_mix_at_the_right_alpha_in_each_phase(schedule, alpha, in_enp_alpha, after_alpha):
    s = strategy(schedule, alpha=alpha)
    x, y = torch.randn(4, 2), torch.tensor([0, 1, 2, 0])
    for in_enp, planned in ((True, in_enp_alpha), (False, after_alpha)):
        assert s.plan(phase(in_enp)).alpha == planned
        mixes = bool(planned)
        original = x.clone()
        np.random.seed(0)
        torch.manual_seed(0)
        batch = s.prepare(x, y, phase(in_enp))
        x_out = batch.x
        assert batch.report() == StepReport(alpha=planned or 0.0, mixed=mixes, dropped=0)  # what the step did
        assert torch.equal(x, x_out) != mixes  # mixed exactly when the plan has an alpha > 0 ...
        assert torch.equal(x, original)  # ... and never in place
        if mixes:  # ... at lambda drawn from Beta(alpha, alpha)
            np.random.seed(0)
            torch.manual_seed(0)
            lam, _ = draw_lambda(planned, 0.0)
            torch.testing.assert_close(x_out, mix_inputs(x, torch.randperm(4), lam))


def test_with_mix_prob_below_one_the_report_says_which_batches_were_mixed():
    """mix.prob=0.5: about half the batches come out clean (lambda 1), and the step report (what the
    epoch's `mixing` share counts) says so for each one."""
    s = strategy(EveryStep(), alpha=1.0, prob=0.5)
    x, y = torch.randn(8, 2), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    np.random.seed(0)
    reported = []
    for _ in range(40):
        batch = s.prepare(x, y, phase(in_enp=True))
        assert batch.report().mixed == (not torch.equal(batch.x, x))
        reported.append(batch.report().mixed)
    assert 5 < sum(reported) < 35


def test_pause_also_pauses_cutmix():
    s = strategy(MixupPause(), alpha=0.0, cutmix_alpha=1.0)
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    assert not s.prepare(x, y, phase(in_enp=True)).report().mixed
    np.random.seed(0)  # a lambda whose box is not empty on 8x8 (an empty one leaves the batch clean)
    after = s.prepare(x, y, phase(in_enp=False)).report()
    assert after == StepReport(alpha=0.0, mixed=True, dropped=0)  # CutMix mixes at Mixup alpha 0


def test_the_phase_record_cannot_be_changed_by_a_strategy():
    p = phase(in_enp=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.in_enp = False
    with pytest.raises(dataclasses.FrozenInstanceError):
        Plan(alpha=1.0).alpha = 2.0


def test_high_loss_removal_drops_exactly_the_top_k_losses_in_the_enp():
    s = strategy(WeighDuringEnp(), DropHighest(drop_fraction=0.25), num_classes=10, alpha=0.0)
    losses = torch.tensor([0.1, 5.0, 0.3, 0.2, 4.0, 0.6, 0.7, 0.8])  # top 2 of 8: 5.0 and 4.0
    x, y = torch.randn(8, 2), torch.arange(8)

    def reduce(in_enp: bool, s=s, losses=losses, reports=None) -> torch.Tensor:
        batch = s.prepare(x, y, phase(in_enp))
        loss = batch.reduce(losses)
        if reports is not None:
            reports.append(batch.report())
        return loss

    reports = []
    assert reduce(True, reports=reports).item() == pytest.approx(
        torch.tensor([0.1, 0.3, 0.2, 0.6, 0.7, 0.8]).mean().item()
    )
    assert reduce(False, reports=reports).item() == pytest.approx(losses.mean().item())
    assert [r.dropped for r in reports] == [2, 0]
    whole = strategy(WeighDuringEnp(whole_run=True), DropHighest(drop_fraction=0.25), num_classes=10, alpha=0.0)
    assert reduce(False, whole).item() == pytest.approx(reduce(True).item())
    losses.requires_grad_(True)
    reduce(True).backward()
    assert losses.grad[1] == 0 and losses.grad[4] == 0 and (losses.grad[[0, 2, 3, 5, 6, 7]] > 0).all()
    s.check(127)  # no mixing: odd batches are fine
    assert DropHighest(drop_fraction=0.29).num_dropped(100) == 29  # not 28.999... floored
    with pytest.raises(
        ValueError, match=r"drops floor\(0.05 x 16\) = 0 samples of a batch of 16: nothing would be removed"
    ):
        DropHighest(drop_fraction=0.05).check(16)
    DropHighest(drop_fraction=0.0).check(16)  # a share of 0 is vanilla, on purpose
    with pytest.raises(ValueError, match="strategy.weighting.drop_fraction"):
        DropHighest(drop_fraction=1.0)


@pytest.mark.parametrize("pairing", ["permutation", "flip"])
def test_manifold_mixup_mixes_hidden_states_after_the_drawn_stage(pairing):
    torch.manual_seed(0)
    model = cnn(3, (1, 8, 8)).eval()
    s = strategy(alpha=1.0, kind="manifold", pairing=pairing, model=model)
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    layers = set()
    for seed in range(20):
        np.random.seed(seed)
        batch = s.prepare(x, y, phase())
        x_out, target = batch.x, batch.target
        lam, layer, partner = batch.manifold
        assert x_out is x  # the input itself is untouched
        assert pairing == "permutation" or partner.tolist() == [3, 2, 1, 0]
        layers.add(layer)
        with torch.no_grad():
            logits = batch.forward(model, x)
            mix = lambda h: lam * h + (1 - lam) * h[partner]  # noqa: E731
            h = model.stem(mix(x) if layer == 0 else x)
            for i, stage in enumerate(model.stages, start=1):
                h = stage(h)
                h = mix(h) if i == layer else h
            torch.testing.assert_close(logits, model.forward_head(h))
        onehot = torch.nn.functional.one_hot(y, 3).float()
        torch.testing.assert_close(target, lam * onehot + (1 - lam) * onehot[partner])
    assert layers == {0, 1}  # the input, or after the first of the cnn's two stages
    with torch.no_grad():  # a clean batch of the same strategy: a plain forward, nothing left from the last
        torch.testing.assert_close(strategy(NoMixing(), model=model).prepare(x, y, phase()).forward(model, x), model(x))


def test_manifold_mixup_needs_a_staged_model_only_when_it_mixes():
    from enlighten.models.vit import vit_tiny

    vit = vit_tiny(10, (3, 32, 32), width=0.25)
    with pytest.raises(ValueError, match="stem/stages"):
        strategy(kind="manifold", num_classes=10, model=vit)
    strategy(WeighDuringEnp(), DropHighest(), kind="manifold", alpha=0.0, num_classes=10, model=vit)  # never mixes


def test_removal_controls_drop_the_lowest_or_random_losses_in_the_enp():
    losses = torch.arange(10, dtype=torch.float32)  # 0..9
    x, y = torch.randn(10, 2), torch.arange(10)

    dropped = []

    def reduce(s: Strategy, in_enp: bool) -> float:
        batch = s.prepare(x, y, phase(in_enp))
        loss = batch.reduce(losses).item()
        dropped.append(batch.report().dropped)
        return loss

    low = strategy(WeighDuringEnp(), DropLowest(drop_fraction=0.2), num_classes=10, alpha=0.0)
    assert reduce(low, True) == pytest.approx(sum(range(2, 10)) / 8) and dropped[-1] == 2  # 0 and 1 dropped
    assert reduce(low, False) == pytest.approx(4.5)  # after the ENP every sample counts
    rand = strategy(WeighDuringEnp(), DropRandom(drop_fraction=0.3), num_classes=10, alpha=0.0)
    torch.manual_seed(0)
    means = {round(reduce(rand, True), 4) for _ in range(20)}
    assert len(means) > 1 and dropped[-1] == 3  # a different subset each time
    torch.manual_seed(0)
    again = {round(reduce(rand, True), 4) for _ in range(20)}
    assert again == means  # drawn from torch's seeded generator


def test_late_switch_off_mixes_until_the_last_share_of_the_steps():
    from enlighten.strategies.late_off import MixupLateOff

    def planned(off_share: float, total: int) -> list:
        return [
            MixupLateOff(off_share).plan(phase(step=s, epoch=s // 10, epochs=total // 10), 1.0).alpha
            for s in range(total)
        ]

    assert planned(0.2, 100) == [1.0] * 80 + [None] * 20  # the last 20 of 100 steps are clean
    assert planned(0.7, 100).count(None) == 70  # not 69: (1 - 0.7) x 100 is 30.000000000000004
    assert planned(0.1, 20).count(None) == 2  # a short run switches off too
    assert planned(0.0, 10) == [1.0] * 10 and planned(1.0, 10) == [None] * 10
    with pytest.raises(ValueError, match="off_share"):
        MixupLateOff(off_share=1.5)


def test_mixup_without_hesitation_mixes_every_step_then_every_other_epoch_then_fades():
    from enlighten.strategies.mwh import MixupWithoutHesitation

    s = MixupWithoutHesitation(every_until=0.6, alternate_until=0.9)
    epochs, spe = 20, 10
    mixed = [
        [s.plan(phase(epoch=e, step=e * spe + i, epochs=epochs), 1.0).alpha is not None for i in range(spe)]
        for e in range(epochs)
    ]
    assert all(all(m) for m in mixed[:12])  # the first 60%: every step
    assert [all(m) for m in mixed[12:18]] == [True, False] * 3 and not any(mixed[13])  # then the even epochs only
    assert sum(mixed[18]) == 10 and sum(mixed[19]) == 5  # then shares 1 and 1/2 of the steps (linear to 0) ...
    assert mixed[19] == [False, True] * 5  # ... spread evenly
    late = MixupWithoutHesitation(every_until=0.55, alternate_until=0.9)
    hundred = [late.plan(phase(epoch=e, step=e * spe, epochs=100), 1.0).alpha is not None for e in range(100)]
    assert hundred[:55] == [True] * 55 and hundred[55:57] == [False, True]  # 0.55 x 100 is 55.00000000000001
    with pytest.raises(ValueError, match="every_until <= alternate_until"):
        MixupWithoutHesitation(every_until=0.9, alternate_until=0.6)


def test_the_dose_matched_pause_withholds_its_dose_right_after_the_enp():
    """An ENP of 7 steps (steps 0-6 trained in it): Mixup Pause withholds those 7, the control the next
    7 (steps 7-13), and both mix on every other step; with `steps`, the control withholds that many
    after its own ENP; an ENP that never ends: the control is Mixup."""
    from enlighten.strategies.dose_matched import DoseMatchedPause

    def planned(schedule, end: int | None, total: int = 30) -> list:
        return [
            schedule.plan(
                Phase(
                    step=s,
                    epoch=0,
                    steps_per_epoch=total,
                    total_steps=total,
                    in_enp=end is None or s < end,
                    enp_end_step=None if end is None or s < end else end,
                ),
                1.0,
            ).alpha
            for s in range(total)
        ]

    control, pause = planned(DoseMatchedPause(), 7), planned(MixupPause(), 7)
    assert control == [1.0] * 7 + [None] * 7 + [1.0] * 16
    assert pause == [None] * 7 + [1.0] * 23
    assert control.count(None) == pause.count(None)  # the same dose
    # `steps`: the dose of another run (Pause's ENP was 5 steps; this run's own ENP lasted 9)
    assert planned(DoseMatchedPause(steps=5), 9) == [1.0] * 9 + [None] * 5 + [1.0] * 16
    assert planned(DoseMatchedPause(steps=0), 9) == [1.0] * 30
    assert planned(DoseMatchedPause(), None) == [1.0] * 30 and planned(DoseMatchedPause(steps=5), None) == [1.0] * 30
    with pytest.raises(ValueError, match="strategy.schedule.steps"):
        DoseMatchedPause(steps=-1)
    assert strategy(DoseMatchedPause()).uses_the_enp() is False  # its first step mixes in and after the ENP alike
