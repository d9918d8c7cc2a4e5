"""The strategies outside the paper, as a new one would be added: the README's worked example is the
shipped files, nothing else in the package names them, and both new presets train on schedule."""

from __future__ import annotations

import random
import re

import pytest

from tests.conftest import REPO, compose_cfg, options

EXAMPLE = {
    "python": REPO / "enlighten" / "strategies" / "late_off.py",
    "yaml": REPO / "conf" / "strategy" / "mixup_late_off.yaml",
}


def test_the_readme_example_is_the_shipped_strategy_and_needs_nothing_else():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Adding a strategy", 1)[1].split("\n## ", 1)[0]
    blocks = dict(re.findall(r"```(python|yaml)\n(.*?)```", section, flags=re.S))
    assert blocks == {kind: path.read_text() for kind, path in EXAMPLE.items()}
    # Adding it took these two files alone: no registry, no import elsewhere in the package or its configs.
    names = ("late_off", "MixupLateOff", "mixup_late_off")
    mentions = {
        p.relative_to(REPO)
        for p in [*(REPO / "enlighten").rglob("*.py"), *(REPO / "conf").rglob("*.yaml")]
        if any(n in p.read_text() for n in names)
    }
    assert mentions == {p.relative_to(REPO) for p in EXAMPLE.values()}


@pytest.mark.e2e
@pytest.mark.parametrize(
    "strategy, overrides, mixing",
    [
        # 5 epochs, Mixup off in the last 40%: epochs 3 and 4 train on clean batches
        ("mixup_late_off", ["strategy.schedule.off_share=0.4"], [1, 1, 1, 0, 0]),
        # 10 epochs: every step for 6, then the even epochs until 9, then the fade (epoch 9: a share of 1)
        ("mixup_without_hesitation", ["strategy.schedule.alternate_until=0.8"], [1, 1, 1, 1, 1, 1, 1, 0, 1, 0.5]),
    ],
)
def test_the_new_presets_train_on_their_schedules(tiny_run, strategy, overrides, mixing):
    epochs = len(mixing)
    metrics, summary = tiny_run(f"strategy={strategy}", f"trainer.epochs={epochs}", "diagnostics=off", *overrides)
    assert summary["status"] == "completed" and summary["epochs"] == epochs
    assert [m["mixing"] for m in metrics] == mixing  # each epoch's share of mixed steps, as the strategy reported
    assert [m["alpha"] for m in metrics] == mixing  # at mix.alpha = 1 whenever it mixed


@pytest.mark.parametrize(
    "preset, uses_the_enp",
    [
        ("vanilla", False),
        ("mixup", False),
        ("mixup_pause", True),
        ("alpha_boost", True),
        ("mixup_early", True),
        ("high_loss_removal", True),
        ("high_loss_removal_whole_run", False),
        ("mixup_late_off", False),
        ("mixup_without_hesitation", False),
        ("mixup_pause mix.alpha=0", False),
        ("mixup_pause mix.alpha=0 mix.cutmix_alpha=1", True),  # nothing to pause
        ("high_loss_removal removal.drop_fraction=0", False),
    ],
)  # drops nothing, in the ENP or after it
def test_a_strategy_says_whether_it_needs_an_enp(preset, uses_the_enp, tmp_path):
    from hydra.utils import instantiate

    from tests.conftest import compose_cfg

    name, *overrides = preset.split()
    cfg = compose_cfg([f"strategy={name}", *overrides], tmp_path)
    assert instantiate(cfg.strategy).uses_the_enp() == uses_the_enp


def test_a_strategy_that_needs_an_enp_under_a_detector_without_one_is_warned_of(tiny_run, caplog):
    with caplog.at_level("WARNING", logger="enlighten"):
        tiny_run("strategy=mixup_pause", "phase=never", "trainer.max_steps=2", "diagnostics=off", name="never")
        tiny_run(
            "strategy=mixup_pause",
            "phase=fixed_epochs",
            "phase.epochs=1",
            "trainer.max_steps=2",
            "diagnostics=off",
            name="fixed",
        )
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warned == [
        "strategy MixupPause changes training only in the ENP, but phase Never gives none: this run "
        "trains as after the ENP from the first step (the baseline of the paper's phase sweeps). For an "
        "ENP, choose a detector, e.g. phase=accuracy."
    ]


@pytest.mark.parametrize("name", options("strategy"))
def test_every_strategys_plan_is_a_function_of_the_phase_alone(name, tmp_path):
    """A schedule is pure: the plan for a phase is the same whenever and however often it is asked
    (the loop asks once per step; a resumed run asks from the middle), so it can keep no hidden state."""
    from hydra.utils import instantiate

    from enlighten.phase.base import Phase

    strategy = instantiate(compose_cfg([f"strategy={name}"], tmp_path).strategy)
    total, spe = 200, 10
    phases = [
        Phase(step, step // spe, spe, total, in_enp=step < 37, enp_end_step=None if step < 37 else 37)
        for step in range(total)
    ]
    in_order = [strategy.plan(p) for p in phases]
    shuffled = list(range(total))
    random.Random(0).shuffle(shuffled)
    for i in shuffled:
        assert strategy.plan(phases[i]) == in_order[i], (name, phases[i])
    assert [strategy.plan(p) for p in phases] == in_order
