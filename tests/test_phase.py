"""Phase detectors on synthetic signal streams: fire at the right step, stay fired, honour bounds."""

from __future__ import annotations

import copy

import pytest
from hydra.utils import instantiate

from enlighten.phase.accuracy import AccuracyThreshold, ChanceAdjusted
from enlighten.phase.base import Progress
from enlighten.phase.fixed import FixedEpochs, Fraction
from enlighten.phase.loss_stage import LossStage
from enlighten.phase.never import Never
from tests.conftest import compose_cfg, options

SPE = 10  # steps per epoch


class Stream:
    """Scripted signals: accuracy and loss as functions of the step."""

    def __init__(self, step: int, acc=lambda s: 0.0, loss=lambda s: 1.0) -> None:
        self.step, self._acc, self._loss = step, acc, loss
        self.reads = 0

    def train_accuracy(self, n: int) -> float:
        self.reads += 1
        return self._acc(self.step)

    val_accuracy = train_accuracy

    def batch_accuracy(self) -> float:
        return self._acc(self.step)

    def loss(self) -> float:
        return self._loss(self.step)


def drive(detector, steps: int, num_classes: int = 10, first: int = 1, total=None, **signals) -> list[bool]:
    """Run a detector over steps `first`..`steps` of a run of `total` (default `steps`) steps; return
    in_enp as read before each step. From step 1 it is set up first; later, it goes on as it stands."""
    total = total or steps
    if first == 1:
        detector.setup(num_classes, SPE, total)
    trace, reads = [], 0
    for step in range(first, steps + 1):
        trace.append(detector.in_enp)
        stream = Stream(step, **signals)
        detector.observe(Progress(step, (step - 1) // SPE, SPE, total), stream)
        reads += stream.reads
    detector.reads = reads
    return trace


def ended_at(trace: list[bool]) -> int:
    """The step after which in_enp is False for good (asserts it stays over)."""
    end = trace.index(False) if False in trace else len(trace)
    assert not any(trace[end:]), "the ENP came back"
    return end


def test_accuracy_fires_at_the_first_check_at_or_over_threshold():
    det = AccuracyThreshold(threshold=0.5, check_every=5)
    trace = drive(det, 100, acc=lambda s: s / 60)  # crosses 0.5 at step 30
    assert ended_at(trace) == 30
    assert det.end.step == 30 and det.end.epoch == 2 and det.end.reason == "criterion"
    assert det.end.value == pytest.approx(0.5)
    assert det.reads == 6  # read only on check steps, and not after the end


def test_accuracy_check_cadence_delays_the_switch_to_the_next_check():
    det = AccuracyThreshold(threshold=0.5, check_every=7)
    assert ended_at(drive(det, 100, acc=lambda s: s / 60)) == 35


def test_accuracy_never_reached_ends_by_bound_or_not_at_all():
    det = AccuracyThreshold(threshold=0.9, max_epochs=3)
    trace = drive(det, 100, acc=lambda s: 0.2)
    assert ended_at(trace) == 30 and det.end.reason == "bound" and det.end.value is None
    det = AccuracyThreshold(threshold=0.9)
    assert all(drive(det, 50, acc=lambda s: 0.2)) and det.summary()["enp_end_reason"] == "none"


def test_min_steps_holds_the_enp_open():
    det = AccuracyThreshold(threshold=0.5, check_every=1, min_steps=25)
    assert ended_at(drive(det, 50, acc=lambda s: 0.9)) == 25


def test_ema_smooths_the_accuracy_signal():
    det = AccuracyThreshold(threshold=0.5, check_every=1, ema=0.8)
    # a one-step spike to 1.0 at step 3 only lifts the average to 0.2; from step 10 on the average
    # climbs 0.24, 0.39, 0.52: the ENP ends at step 12
    trace = drive(det, 20, acc=lambda s: 1.0 if s == 3 or s >= 10 else 0.0)
    assert ended_at(trace) == 12


def test_chance_adjusted_threshold_depends_on_the_number_of_classes():
    for k, expected_end in ((10, 55), (2, 75)):
        det = ChanceAdjusted(tau=0.5, check_every=1)
        assert ended_at(drive(det, 100, num_classes=k, acc=lambda s: s / 100)) == expected_end
        assert det.target() == pytest.approx(1 / k + 0.5 * (1 - 1 / k))


def test_fixed_epochs_and_fraction():
    det = FixedEpochs(epochs=3)
    assert ended_at(drive(det, 100)) == 30 and det.end.reason == "criterion" and det.end.epoch == 2
    assert ended_at(drive(FixedEpochs(epochs=0), 10)) == 0
    det = Fraction(fraction=0.04)
    assert ended_at(drive(det, 1000)) == 40
    assert ended_at(drive(FixedEpochs(epochs=5, max_epochs=2), 100)) == 20  # the bound wins


def test_loss_stage_fires_after_the_rapid_descent():
    # plateau at 2.3 until step 100, fast linear descent to 0.5 by step 200, then nearly flat
    def loss(s):
        if s < 100:
            return 2.3
        if s < 200:
            return 2.3 - 1.8 * (s - 100) / 100
        return 0.5 - 0.0005 * (s - 200)

    det = LossStage(check_every=10, ema=0.5, window=3, share=0.2, min_drop=0.1)
    end = ended_at(drive(det, 600, loss=loss))
    assert 200 < end <= 280, end
    assert det.end.reason == "criterion" and det.end.value < 0.2 * det.peak_rate


def test_loss_stage_ignores_a_noisy_plateau():
    det = LossStage(check_every=10, ema=0.0, window=2, share=0.2, min_drop=0.1)
    assert all(drive(det, 300, loss=lambda s: 2.3 + (0.05 if (s // 10) % 2 else -0.05)))


def test_never_has_no_enp_and_state_round_trips():
    det = Never()
    assert not any(drive(det, 10)) and det.summary()["enp_end_reason"] == "none"
    det = AccuracyThreshold(check_every=1)
    drive(det, 5, acc=lambda s: 0.9)
    fresh = AccuracyThreshold(check_every=1)
    fresh.load_state_dict(det.state_dict())
    assert not fresh.in_enp and fresh.end == det.end


def _rising_acc(s: int) -> float:
    return min(1.0, s / 400)


def _plateau_then_descent(s: int) -> float:
    return 2.3 if s < 100 else max(0.5, 2.3 - 1.8 * (s - 100) / 100) - 0.0005 * max(0, s - 200)


@pytest.mark.parametrize("cut", [60, 195, 300])  # loss-stage: on the plateau, in the descent, past its peak rate
@pytest.mark.parametrize("option", options("phase"))
def test_every_detector_resumed_from_its_state_mid_run_ends_where_it_would_have(option, cut, tmp_path):
    """Each conf/phase option, as composed: a detector saved at step `cut` and loaded into a fresh one (as
    a resumed run does) sees the rest of the run exactly as the uninterrupted one (its averages, windows
    and counters are in its state)."""
    signals = dict(acc=_rising_acc, loss=_plateau_then_descent)
    steps = 600
    node = compose_cfg([f"phase={option}"], tmp_path).phase
    whole, first, resumed = instantiate(node), instantiate(node), instantiate(node)

    reference = drive(whole, steps, **signals)
    drive(first, cut, total=steps, **signals)
    resumed.setup(10, SPE, steps)  # as a resumed run: set up, then its state loaded
    resumed.load_state_dict(copy.deepcopy(first.state_dict()))
    trace = drive(resumed, steps, first=cut + 1, **signals)
    assert trace == reference[cut:] and resumed.end == whole.end


@pytest.mark.parametrize("kwargs", [dict(threshold=1.0), dict(threshold=0.0), dict(source="test"), dict(check_every=0)])
def test_bad_detector_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        AccuracyThreshold(**kwargs)


def test_the_docs_example_of_a_new_detector_fires_where_its_loss_falls_below():
    """The detector docs/enp.md shows, run as written: it ends the ENP at the first step whose loss is
    under its threshold, and once only."""
    import re

    from tests.conftest import REPO

    docs = (REPO / "docs" / "enp.md").read_text().split("**Adding a detector**", 1)[1]
    code = re.search(r"```python\n(.*?)```", docs, flags=re.S).group(1)
    scope: dict = {}
    exec(code, scope)  # noqa: S102 - the documentation's own example, imports included
    det = scope["LossBelow"](loss=0.5)
    trace = drive(det, 50, loss=lambda s: 1.0 - s / 40)  # under 0.5 from step 21
    assert ended_at(trace) == 21 and det.end.reason == "criterion" and det.end.value == pytest.approx(1 - 21 / 40)
