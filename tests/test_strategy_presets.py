"""The strategies outside the paper, as a new one would be added: the README's worked example is the
shipped files, nothing else in the package names them, and both new presets train on schedule."""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO

EXAMPLE = {"python": REPO / "enlighten" / "strategies" / "late_off.py",
           "yaml": REPO / "conf" / "strategy" / "mixup_late_off.yaml"}


def test_the_readme_example_is_the_shipped_strategy_and_needs_nothing_else():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Adding a strategy", 1)[1].split("\n## ", 1)[0]
    blocks = dict(re.findall(r"```(python|yaml)\n(.*?)```", section, flags=re.S))
    assert blocks == {kind: path.read_text() for kind, path in EXAMPLE.items()}
    # Adding it took these two files alone: no registry, no import elsewhere in the package or its configs.
    names = ("late_off", "MixupLateOff", "mixup_late_off")
    mentions = {p.relative_to(REPO) for p in [*(REPO / "enlighten").rglob("*.py"), *(REPO / "conf").rglob("*.yaml")]
                if any(n in p.read_text() for n in names)}
    assert mentions == {p.relative_to(REPO) for p in EXAMPLE.values()}


@pytest.mark.parametrize("strategy, overrides, mixing", [
    # 5 epochs, Mixup off in the last 40%: epochs 3 and 4 train on clean batches
    ("mixup_late_off", ["strategy.schedule.off_share=0.4"], [1, 1, 1, 0, 0]),
    # 10 epochs: every step for 6, then the even epochs until 9, then the fade (epoch 9: a share of 1)
    ("mixup_without_hesitation", ["strategy.schedule.alternate_until=0.8"], [1, 1, 1, 1, 1, 1, 1, 0, 1, 0.5]),
])
def test_the_new_presets_train_on_their_schedules(tiny_run, strategy, overrides, mixing):
    epochs = len(mixing)
    metrics, summary = tiny_run(f"strategy={strategy}", f"trainer.epochs={epochs}", "diagnostics=off", *overrides)
    assert summary["status"] == "completed" and summary["epochs"] == epochs
    assert [m["mixing"] for m in metrics] == mixing  # each epoch's share of mixed steps, as the strategy reported
    assert [m["alpha"] for m in metrics] == mixing  # at mix.alpha = 1 whenever it mixed
