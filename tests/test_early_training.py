"""The settings and schedules of the early-training literature (issue 30): the initialization scale,
label noise, and schedules of weight decay, augmentation and a blur deficit, each checked against what
it must equal."""

from __future__ import annotations

import json
import math

import pytest
import torch

from enlighten.config import ConfigError, validate
from enlighten.data.synthetic import synthetic
from enlighten.phase.base import Phase
from enlighten.strategies.deficit import BlurDeficit
from enlighten.strategies.mixing import gaussian_blur
from enlighten.strategies.regularize_window import RegularizeInWindow
from tests.conftest import TINY, compose_cfg, outcome, read_run

AUGMENTED = ["dataset.crop_padding=2", "dataset.flip=true"]


def phase(in_enp: bool = True, epoch: int = 0, step: int = 0) -> Phase:
    return Phase(step=step, epoch=epoch, steps_per_epoch=10, total_steps=100, in_enp=in_enp)


# --------------------------------------------------------------------------------------------------
# model.init_scale and dataset.label_noise
# --------------------------------------------------------------------------------------------------


def test_init_scale_multiplies_the_weight_matrices_and_kernels_only(tmp_path):
    from enlighten.run import build_model

    data = synthetic(num_train=64, num_test=16, image_size=8)
    models = {s: build_model(compose_cfg([*TINY, f"model.init_scale={s}"], tmp_path), data) for s in (1.0, 0.25)}
    scaled = 0
    for a, b in zip(models[1.0].parameters(), models[0.25].parameters()):
        assert torch.equal(b, 0.25 * a) if a.ndim >= 2 else torch.equal(a, b)
        scaled += a.ndim >= 2
    assert scaled >= 4  # the three convolutions and the head


@pytest.mark.parametrize(
    "override, setting",
    [
        ("model.init_scale=0", "model.init_scale"),
        ("model.init_scale=-1", "model.init_scale"),
        ("model.init_scale=null", "model.init_scale"),
        ("dataset.label_noise=1.0", "dataset.label_noise"),
        ("dataset.label_noise=-0.1", "dataset.label_noise"),
    ],
)
def test_bad_init_scale_or_label_noise_fails_at_startup_naming_it(override, setting, tmp_path):
    with pytest.raises(ConfigError, match=setting):
        validate(compose_cfg([*TINY, override], tmp_path))


def test_label_noise_replaces_exactly_its_share_by_other_classes_and_leaves_the_rest():
    data = synthetic(num_train=400, num_test=50, image_size=8, val_fraction=0.1)
    clean_train, clean_val = data.train_y.clone(), data.val_y.clone()

    def noisy(seed: int):
        return data.with_label_noise(0.25, torch.Generator().manual_seed(seed))

    first, again, other = noisy(0), noisy(0), noisy(1)
    changed = (first.train_y != clean_train).nonzero().flatten()
    assert len(changed) == round(0.25 * data.num_train) == len(first.noisy_labels[0])
    assert torch.equal(changed, first.noisy_labels[0].sort().values)  # every drawn label is another class
    assert torch.equal(first.train_y[first.noisy_labels[0]], first.noisy_labels[1])
    assert torch.equal(first.train_y, again.train_y) and not torch.equal(first.train_y, other.train_y)
    assert torch.equal(data.train_y, clean_train) and torch.equal(first.val_y, clean_val)  # the original stays clean
    counts = torch.bincount(first.noisy_labels[1], minlength=data.num_classes)
    assert counts.min() > 0  # replacements over all the other classes


def test_label_noise_and_augmentation_schedules_refuse_data_they_cannot_change():
    """Both need training samples in memory with one label each: images and series pass; token streams
    are refused naming the setting and the data, before training."""
    from enlighten.data.text import CharText
    from enlighten.run import _needs_samples_in_memory

    _needs_samples_in_memory(synthetic(num_train=16, num_test=8, image_size=8), "dataset.label_noise=0.1")
    text = CharText(torch.randint(0, 5, (200,)), torch.randint(0, 5, (50,)), list("abcde"), 16, name="text")
    with pytest.raises(ConfigError, match=r"dataset.label_noise=0.1 .* text gives token sequences"):
        _needs_samples_in_memory(text, "dataset.label_noise=0.1")


@pytest.mark.e2e
def test_a_run_with_label_noise_records_what_it_replaced(tmp_path):
    from enlighten.run import run

    run(compose_cfg([*TINY, "dataset.label_noise=0.25", "seed=3"], tmp_path))
    summary = read_run(tmp_path)[1]
    record = json.loads((tmp_path / "label_noise.json").read_text())
    assert summary["label_noise_replaced"] == len(record["index"]) == round(0.25 * 256)
    assert summary["config"]["dataset"]["label_noise"] == 0.25


# --------------------------------------------------------------------------------------------------
# Schedules of regularization
# --------------------------------------------------------------------------------------------------


def test_regularize_in_window_regularizes_inside_only():
    enp = RegularizeInWindow(window="enp")
    inside, outside = enp.plan(phase(in_enp=True), 1.0), enp.plan(phase(in_enp=False), 1.0)
    assert (inside.alpha, inside.weight_decay_scale, inside.augment) == (None, 1.0, True)
    assert (outside.alpha, outside.weight_decay_scale, outside.augment) == (None, 0.0, False)
    late = RegularizeInWindow(window="after_enp", weight_decay_scale_outside=0.5)
    assert late.plan(phase(in_enp=True), 0.0).weight_decay_scale == 0.5 and late.plan(phase(in_enp=False), 0.0).augment
    epochs = RegularizeInWindow(window="epochs", epochs=(2, 4))
    assert [epochs.plan(phase(epoch=e), 0.0).augment for e in range(6)] == [False, False, True, True, False, False]
    with pytest.raises(ValueError, match="strategy.schedule.window"):
        RegularizeInWindow(window="early")
    with pytest.raises(ValueError, match="strategy.schedule.epochs"):
        RegularizeInWindow(window="epochs", epochs=(3, 3))


def test_a_schedule_that_turns_augmentation_off_must_say_so():
    """The loop asks for the plan before cutting the batch only when the schedule sets
    `schedules_augmentation`; a plan without augmentation from one that does not is refused, not ignored."""
    from enlighten.strategies.base import Plan, Schedule, Strategy
    from enlighten.strategies.mixer import Mixer
    from enlighten.strategies.weighting import Mean

    class Unannounced(Schedule):
        def plan(self, phase, alpha):
            return Plan(alpha=None, augment=False)

    strategy = Strategy(Mixer(), Mean(), Unannounced())
    strategy.setup(3)
    with pytest.raises(ValueError, match="schedules_augmentation"):
        strategy.prepare(torch.zeros(4, 1, 8, 8), torch.zeros(4, dtype=torch.long), phase())
    Unannounced.schedules_augmentation = True
    assert strategy.prepare(torch.zeros(4, 1, 8, 8), torch.zeros(4, dtype=torch.long), phase()).plan.augment is False


def test_blur_deficit_blurs_until_its_step_or_the_enp_end():
    at_step = BlurDeficit(sigma=1.5, until_step=20)
    assert [at_step.plan(phase(step=s, in_enp=False), 0.0).blur for s in (0, 19, 20)] == [1.5, 1.5, 0.0]
    at_enp = BlurDeficit(sigma=1.5)
    assert at_enp.plan(phase(in_enp=True), 0.0).blur == 1.5 and at_enp.plan(phase(in_enp=False), 0.0).blur == 0.0
    with pytest.raises(ValueError, match="sigma"):
        BlurDeficit(sigma=1.0).check_input((64,))  # a time series


def test_gaussian_blur_of_a_point_is_the_gaussian_and_of_a_constant_the_constant():
    """Known answers: a unit impulse away from the borders becomes the normalized separable kernel
    exp(-d^2 / (2 sigma^2)) of radius ceil(3 sigma); a constant image stays that constant."""
    sigma, size = 1.2, 17
    impulse = torch.zeros(1, 1, size, size, dtype=torch.float64)
    impulse[0, 0, 8, 8] = 1.0
    offsets = torch.arange(-4, 5, dtype=torch.float64)  # radius ceil(3 x 1.2) = 4
    k = torch.exp(-0.5 * (offsets / sigma) ** 2)
    k /= k.sum()
    expected = torch.zeros(size, size, dtype=torch.float64)
    expected[4:13, 4:13] = torch.outer(k, k)
    assert torch.allclose(gaussian_blur(impulse, sigma)[0, 0], expected, atol=1e-12)
    constant = torch.full((2, 3, 8, 8), 0.7, dtype=torch.float64)
    assert torch.allclose(gaussian_blur(constant, 2.0), constant, atol=1e-12)
    assert math.isclose(float(gaussian_blur(impulse, sigma).sum()), 1.0, rel_tol=1e-12)


def _outcome(tmp_path, name: str, *overrides: str):
    from enlighten.run import run

    run(compose_cfg([*TINY, "trainer.epochs=1", *overrides], tmp_path / name))
    return outcome(tmp_path / name)


@pytest.mark.e2e
def test_outside_its_window_a_step_trains_without_weight_decay_or_augmentation(tmp_path):
    """Known answers through the real loop: inside the window for the whole run, regularize_early
    trains exactly as vanilla with weight decay and augmentation; outside it for the whole run,
    exactly as vanilla with neither (one epoch: the augmentation's draws are then the only difference
    in what the data generator drew, and they come after the epoch's order)."""
    wd = ["optim.weight_decay=0.05"]
    always = ["strategy=regularize_early", "strategy.schedule.window=epochs", "strategy.schedule.epochs=[0,5]"]
    never = ["strategy=regularize_early", "strategy.schedule.window=epochs", "strategy.schedule.epochs=[3,5]"]
    plain = ["optim.weight_decay=0", "dataset.crop_padding=0", "dataset.flip=false"]

    def numbers(result):
        metrics, diagnostics = result[0], result[1]
        return [{k: v for k, v in m.items() if k not in ("alpha", "mixing")} for m in metrics], diagnostics, result[3]

    regularized = numbers(_outcome(tmp_path, "vanilla", "strategy=vanilla", *AUGMENTED, *wd))
    assert numbers(_outcome(tmp_path, "always", *always, *AUGMENTED, *wd)) == regularized
    bare = numbers(_outcome(tmp_path, "bare", "strategy=vanilla", *plain))
    assert numbers(_outcome(tmp_path, "never", *never, *AUGMENTED, *wd)) == bare
    assert bare != regularized


@pytest.mark.e2e
def test_a_blur_deficit_removed_at_step_0_is_vanilla_and_one_kept_is_not(tmp_path):
    vanilla = _outcome(tmp_path, "vanilla", "strategy=vanilla")
    assert _outcome(tmp_path, "removed", "strategy=blur_deficit", "strategy.schedule.until_step=0") == vanilla
    assert _outcome(tmp_path, "kept", "strategy=blur_deficit", "strategy.schedule.until_step=100")[3] != vanilla[3]
