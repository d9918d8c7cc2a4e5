"""Results and checkpoints of earlier versions read in today's layout (enlighten/compat.py): the
configs those versions composed (written by their code: tests/data) upgrade to exactly today's, so
their completed jobs are skipped, their checkpoints resume and their runs pair with today's."""

from __future__ import annotations

import json

from omegaconf import OmegaConf

from enlighten.compat import CONFIG_VERSION, upgrade_checkpoint, upgrade_config, upgrade_summary
from enlighten.config import config_differences, flatten
from tests.conftest import REPO, compose_cfg

# The defaults of then that changed on 2026-12-07 (the experiments with committed results pin them).
AS_THEN = ["diagnostics.grid_from=1", "diagnostics.measures.interference.lambdas=[0.1,0.2,0.3,0.4,0.5]"]


def today(overrides: list[str], tmp_path) -> dict:
    # paths.data_dir as the files were written without ENLIGHTEN_DATA_DIR (dataset.root follows it)
    new = OmegaConf.to_container(compose_cfg([*overrides, "paths.data_dir=./data"], tmp_path), resolve=True)
    new.pop("paths")
    return new


def test_configs_saved_before_the_strategy_contract_read_as_todays(tmp_path):
    """Every strategy preset as the code before the strategy contract composed it (both trained bitwise
    the same when the layout changed)."""
    saved = json.loads((REPO / "tests" / "data" / "configs_before_strategy_contract.json").read_text())
    assert len(saved) == 18  # 9 presets, with the defaults and with other mix/removal settings
    for overrides, old in saved.items():
        new = today([*overrides.split(), "trainer.sync_every=7", *AS_THEN], tmp_path)
        new["trainer"].pop("keep_checkpoints")  # added later, and changes no result (RESULT_NEUTRAL_KEYS)
        assert flatten(upgrade_config(old)) == flatten(new), overrides
        assert config_differences(upgrade_config(old), new) == []
        assert config_differences(upgrade_config(old), {**new, "seed": 1}) == ["seed: 0 -> 1"]  # a real one shows
    new["trainer"]["keep_checkpoints"] = 1
    assert upgrade_config(new, CONFIG_VERSION) == new  # today's layout is left as it is
    fixed = OmegaConf.to_container(compose_cfg(["phase=fixed_epochs"], tmp_path).phase, resolve=True)
    moved = {"phase": {**fixed, "_target_": "enlighten.phase.schedule.FixedEpochs"}}  # before fixed.py's rename
    assert upgrade_config(moved) == {"phase": fixed}


# What each command of tests/data/configs_before_measures.json is called today.
TODAYS_OVERRIDES = {
    "diagnostics.stiffness=true diagnostics.stiffness_samples=8": (
        "diagnostics=stiffness diagnostics.measures.stiffness.samples=8"
    ),
    "diagnostics.interference=false diagnostics.benr=false": (
        "diagnostics.measures.interference.probe=false diagnostics.measures.benr=null"
    ),
    "diagnostics.lambdas=[0.2,0.5] diagnostics.dataset_steps=[0,10] mix.cutmix_alpha=1.0 mix.pairing=flip": (
        "diagnostics.measures.interference.lambdas=[0.2,0.5] diagnostics.measures.interference.dataset_steps=[0,10] "
        "mix.cutmix_alpha=1.0 mix.pairing=flip"
    ),
}


def test_configs_saved_before_the_measures_became_plug_ins_read_as_todays(tmp_path):
    """The diagnostics' flat layout (before config_version 2), as the code of 3d1f6dc composed it for
    the presets, the claims and measurement experiments and single settings: upgraded, exactly today's
    (both measure bitwise the same: docs/results/README.md). A measurement of another mixing than
    training's, which today's layout cannot express, stays a difference."""
    saved = json.loads((REPO / "tests" / "data" / "configs_before_measures.json").read_text())
    assert len(saved) == 14
    for overrides, old in saved.items():
        if overrides == "diagnostics.pairing=flip":
            continue
        now = TODAYS_OVERRIDES.get(overrides, overrides).split()
        if "diagnostics=off" not in now:
            now += AS_THEN if "lambdas" not in overrides else AS_THEN[:1]
        new = today(now, tmp_path)
        assert flatten(upgrade_config(old)) == flatten(new), overrides
        summary = upgrade_summary({"status": "completed", "final_test_acc": 0.5, "config": old})
        assert summary["config_version"] == CONFIG_VERSION and config_differences(summary["config"], new) == []
    other = upgrade_config(saved["diagnostics.pairing=flip"])
    assert config_differences(other, today(AS_THEN, tmp_path)) == ["diagnostics.pairing: 'flip' -> '<absent>'"]
    defaults_of_then = upgrade_config(saved[""])
    assert config_differences(defaults_of_then, today([], tmp_path)) == [  # today's defaults measure otherwise
        "diagnostics.grid_from: 1 -> 10",
        "diagnostics.measures.interference.lambdas: [0.1, 0.2, 0.3, 0.4, 0.5] -> [0.1, 0.3, 0.5]",
    ]


def test_a_checkpoint_of_before_the_stamp_gets_one_state_per_measure():
    old = {
        "held_out": {},
        "config_json": json.dumps({"diagnostics": {"_target_": "enlighten.diagnostics.monitor.Diagnostics"}}),
        "diagnostics": {
            "enp_rows": [{"step": 0}],
            "enp_ended": True,
            "dataset_summary": {"init/data/clean_sq": 1.0},
            "prev_features": None,
            "benr": None,
        },
    }
    state = upgrade_checkpoint(old)
    assert state["config_version"] == CONFIG_VERSION
    assert state["diagnostics"] == {
        "enp_rows": [{"step": 0}],
        "enp_ended": True,
        "measures": {
            "interference": {"dataset_summary": {"init/data/clean_sq": 1.0}},
            "benr": {"benr": None},
            "atd": {"prev_features": None},
        },
    }
    assert "measures" in json.loads(state["config_json"])["diagnostics"]


def test_each_version_upgrades_only_what_changed_after_it():
    """A config stamped 2 (the measures' layout, before `grid_from`) gets the grid it ran with; one
    stamped 3 is left alone; a copy of a mixing setting compares with the mixer training used."""
    diagnostics = {"_target_": "enlighten.diagnostics.monitor.Diagnostics", "measures": {}}
    assert upgrade_config({"diagnostics": diagnostics}, 2)["diagnostics"]["grid_from"] == 1
    assert "grid_from" not in upgrade_config({"diagnostics": diagnostics}, 3)["diagnostics"]
    old = {
        "mix": {"pairing": "permutation"},
        "strategy": {"mixer": {"pairing": "flip"}},  # the mixer overridden directly: it measured permutation
        "diagnostics": {"_target_": "enlighten.diagnostics.monitor.Diagnostics", "pairing": "permutation"},
    }
    assert upgrade_config(old)["diagnostics"]["pairing"] == "permutation"  # kept: today it would measure flip
    old["strategy"]["mixer"]["pairing"] = "permutation"
    assert "pairing" not in upgrade_config(old)["diagnostics"]


def test_an_override_of_a_setting_that_moved_says_where_it_went(tmp_path):
    from enlighten.callbacks import explain_missing_setting

    conf = REPO / "conf"
    assert "it is diagnostics.measures.interference.lambdas" in explain_missing_setting(
        ["diagnostics.lambdas=[0.2]"], conf
    )
    assert "diagnostics=stiffness turns it on" in explain_missing_setting(["diagnostics.stiffness=true"], conf)


def test_tri_states_of_before_version_4_read_as_a_bool_or_null():
    for old, new in (("auto", None), ("true", True), ("false", False)):
        assert upgrade_config({"trainer": {"channels_last": old}}, 3) == {"trainer": {"channels_last": new}}
        assert upgrade_config({"dataset": {"in_memory": old}}, 3)["dataset"]["in_memory"] == new
    assert upgrade_config({"trainer": {"channels_last": True}}, 4) == {"trainer": {"channels_last": True}}


def test_configs_of_before_version_5_get_the_settings_the_run_applies_at_their_neutral_values():
    """model.init_scale and dataset.label_noise came with version 5: a run before it trained as 1 and 0."""
    old = {"model": {"_target_": "enlighten.models.cnn.cnn", "width": 1.0}, "dataset": {"name": "mnist"}}
    new = upgrade_config(old, 4)
    assert new["model"] == {**old["model"], "init_scale": 1.0}
    assert new["dataset"] == {**old["dataset"], "label_noise": 0.0}
    assert upgrade_config(new, 5) == new
