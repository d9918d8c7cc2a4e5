"""Results and checkpoints written by earlier versions, read in today's layout: the one place that
knows the history of the formats (CHANGELOG.md tells it).

Every summary.json and checkpoint carries `config_version` (CONFIG_VERSION when written). Whatever
was written before the stamp (version 1) is recognised by its shape; each change of layout since has
a version number, and a reader applies the changes after the version a file was written with. Every
layout change listed here trained and measured bitwise the same before and after it, so that a
completed job of an earlier version is still skipped, its checkpoints still resume and its runs still
pair with today's in tables, as long as its settings are today's: a setting whose default changed
(CHANGELOG.md) keeps the value the run had, and shows as a difference from today's default.

    upgrade_summary(summary)      # summary.json: today's names, its config in today's layout
    upgrade_checkpoint(state)     # a checkpoint: today's format, its config_json in today's layout
    upgrade_metrics_row(row)      # a metrics.jsonl / detector.jsonl row of a summary with `_old_names`
"""

from __future__ import annotations

import json

# 1: everything written before the stamp. 2 (2026-12-07): the diagnostics' measures as plug-ins
# (`diagnostics.measures.<name>`; the mixing settings read from the strategy's mixer). 3 (2026-12-07):
# the step grid's start a setting (`diagnostics.grid_from`; it was 1). 4 (2026-12-07):
# `trainer.channels_last` and `dataset.in_memory` a boolean or null (auto), not the string auto|true|false.
# 5 (2026-12-07): `model.init_scale` and `dataset.label_noise` added.
CONFIG_VERSION = 5


def version_of(record: dict) -> int:
    """The layout a summary or checkpoint was written in (1: before the stamp)."""
    return int(record.get("config_version", 1))


# --------------------------------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------------------------------

# The strategies before the strategy contract (2026-12-01): one class each, with flat keys.
_STRATEGIES_BEFORE = {
    "enlighten.strategies.vanilla.Vanilla": ("NoMixing", "Mean"),
    "enlighten.strategies.mixup.MixupStrategy": ("EveryStep", "Mean"),
    "enlighten.strategies.schedules.MixupPause": ("MixupPause", "Mean"),
    "enlighten.strategies.schedules.AlphaBoost": ("AlphaBoost", "Mean"),
    "enlighten.strategies.schedules.MixupEarly": ("MixupEarly", "Mean"),
    "enlighten.strategies.high_loss_removal.HighLossRemoval": ("WeighDuringEnp", "DropHighest"),
    "enlighten.strategies.high_loss_removal.LowLossRemoval": ("WeighDuringEnp", "DropLowest"),
    "enlighten.strategies.high_loss_removal.RandomRemoval": ("WeighDuringEnp", "DropRandom"),
}
# The loaders that hold a validation split (dataset.val_fraction, 2026-12-07; before it, none).
_LOADERS_WITH_VALIDATION = tuple(
    f"enlighten.data.{m}"
    for m in (
        "torchvision_sets.torchvision_dataset",
        "digits.digits",
        "synthetic.synthetic",
        "image_folder.image_folder",
        "ucr.ucr",
    )
)
_MIXER_KEYS = ("alpha", "cutmix_alpha", "label_smoothing", "mode", "prob", "switch_prob", "kind", "pairing")


def _before_the_stamp(config: dict) -> dict:
    """The changes before the stamp, each recognised by its shape: the strategy contract (a strategy's
    flat keys became its mixer, weighting and schedule), `trainer.log_every` renamed
    `trainer.sync_every`, enlighten/phase/schedule.py renamed fixed.py, and `dataset.val_fraction`
    added (0: no validation split, as before)."""
    phase = config.get("phase")
    if isinstance(phase, dict) and str(phase.get("_target_", "")).startswith("enlighten.phase.schedule."):
        config["phase"] = {**phase, "_target_": phase["_target_"].replace(".schedule.", ".fixed.", 1)}
    strategy = config.get("strategy")
    if isinstance(strategy, dict) and strategy.get("_target_") in _STRATEGIES_BEFORE:
        schedule, weighting = _STRATEGIES_BEFORE[strategy["_target_"]]
        mix = {**config.get("mix", {}), **{k: v for k, v in strategy.items() if k in _MIXER_KEYS}}
        weights = {k: strategy[k] for k in ("drop_fraction", "scope") if k in strategy}
        plan = {k: strategy[k] for k in ("boost_alpha", "whole_run") if k in strategy}
        config["strategy"] = {
            "_target_": "enlighten.strategies.Strategy",
            "mixer": {"_target_": "enlighten.strategies.mixer.Mixer", **{k: mix[k] for k in _MIXER_KEYS if k in mix}},
            "weighting": {"_target_": f"enlighten.strategies.weighting.{weighting}", **weights},
            "schedule": {"_target_": f"enlighten.strategies.schedules.{schedule}", **plan},
        }
    dataset = config.get("dataset")
    if (
        isinstance(dataset, dict)
        and dataset.get("_target_") in _LOADERS_WITH_VALIDATION
        and "val_fraction" not in dataset
    ):
        config["dataset"] = {**dataset, "val_fraction": 0.0}
    trainer = config.get("trainer")
    if isinstance(trainer, dict) and "log_every" in trainer:
        config["trainer"] = {("sync_every" if k == "log_every" else k): v for k, v in trainer.items()}
    return config


_DIAGNOSTICS = "enlighten.diagnostics.monitor.Diagnostics"
_MEASURE_TARGETS = {
    "interference": "enlighten.diagnostics.interference.Interference",
    "activations": "enlighten.diagnostics.activations.Activations",
    "benr": "enlighten.diagnostics.trajectories.BENR",
    "atd": "enlighten.diagnostics.trajectories.ATD",
    "stiffness": "enlighten.diagnostics.stiffness.Stiffness",
}
_INTERFERENCE_KEYS = (
    "alpha",
    "lambdas",
    "probe",
    "dataset_chunk_size",
    "dataset_steps",
    "dataset_at_enp_end",
    "dataset_pairings",
)
# The diagnostics' own copies of mix.* (interpolations of it in every preset), read from the mixer since.
_MIX_COPIES = ("cutmix_alpha", "switch_prob", "kind", "pairing", "label_smoothing")


def _version_2(config: dict) -> dict:
    """The measures as plug-ins: the diagnostics' flat switches and settings became
    `diagnostics.measures.<name>` nodes. A copy of mix.* that differed from mix.* (measuring another
    mixing than training's, which today's layout cannot express) is kept under its old name, so the
    config compares as different."""
    diagnostics = config.get("diagnostics")
    if not (
        isinstance(diagnostics, dict) and diagnostics.get("_target_") == _DIAGNOSTICS and "measures" not in diagnostics
    ):
        return config
    old, mix = dict(diagnostics), config.get("mix", {})
    new = {k: old.pop(k) for k in ("_target_", "every_steps", "enp_every_steps", "probe_size", "seed") if k in old}
    old["probe"] = old.pop("interference", True)  # the switch was the probe's: the dataset scope ran without it
    switches = {name: old.pop(name, name != "stiffness") for name in _MEASURE_TARGETS if name != "interference"}
    switches["interference"] = True
    interference = {
        "_target_": _MEASURE_TARGETS["interference"],
        **{k: old.pop(k) for k in _INTERFERENCE_KEYS if k in old},
    }
    stiffness = {"_target_": _MEASURE_TARGETS["stiffness"], "samples": old.pop("stiffness_samples", 16)}
    parts = {"interference": interference, "stiffness": stiffness}
    new["measures"] = {
        name: (parts.get(name, {"_target_": target}) if switches[name] else None)
        for name, target in _MEASURE_TARGETS.items()
    }
    mixer = (config.get("strategy") or {}).get("mixer") or {}  # what today's measurement reads
    for key in _MIX_COPIES:
        if key in old and old[key] == mixer.get(key, mix.get(key)):
            old.pop(key)
    config["diagnostics"] = {**new, **old}  # what is left differs from today's layout, and shows
    return config


def _version_3(config: dict) -> dict:
    """The step grid's start became a setting, `diagnostics.grid_from` (default 10); it was 1."""
    diagnostics = config.get("diagnostics")
    if isinstance(diagnostics, dict) and diagnostics.get("_target_") == _DIAGNOSTICS and "grid_from" not in diagnostics:
        config["diagnostics"] = {**diagnostics, "grid_from": 1}
    return config


def _version_4(config: dict) -> dict:
    """`trainer.channels_last` and `dataset.in_memory` became true, false or null (auto) from the strings
    "true", "false", "auto"."""
    for section, key in (("trainer", "channels_last"), ("dataset", "in_memory")):
        node = config.get(section)
        if isinstance(node, dict) and isinstance(node.get(key), str):
            value = {"true": True, "false": False, "auto": None}.get(node[key].lower(), node[key])
            config[section] = {**node, key: value}
    return config


def _version_5(config: dict) -> dict:
    """Two settings the run applies itself were added: `model.init_scale` (1: the initial weights as
    built) and `dataset.label_noise` (0: every label as given)."""
    for section, key, value in (("model", "init_scale", 1.0), ("dataset", "label_noise", 0.0)):
        node = config.get(section)
        if isinstance(node, dict) and key not in node:
            config[section] = {**node, key: value}
    return config


_CONFIG_CHANGES = {2: _version_2, 3: _version_3, 4: _version_4, 5: _version_5}


def moved_diagnostics_setting(name: str) -> str | None:
    """Where a `diagnostics.<name>` setting of before version 2 went (for the message about an override
    that no longer exists), or None."""
    if name in _INTERFERENCE_KEYS:
        return f"it is diagnostics.measures.interference.{name}"
    if name == "interference":
        return (
            "diagnostics.measures.interference.probe=false turns the probe's off, "
            "diagnostics.measures.interference=null all of it"
        )
    if name == "stiffness":
        return "diagnostics=stiffness turns it on"
    if name == "stiffness_samples":
        return "it is diagnostics.measures.stiffness.samples (with diagnostics=stiffness)"
    if name in _MEASURE_TARGETS:
        return f"diagnostics.measures.{name}=null turns it off"
    if name in _MIX_COPIES:
        return f"the measurement mixes as the strategy's mixer does: set mix.{name}"
    return None  # version -> the change that made it from the one before


def upgrade_config(config: dict, version: int = 1) -> dict:
    """A resolved config written with layout `version` (a summary's or checkpoint's `config_version`),
    in today's layout."""
    config = dict(config)
    if version < 2:
        config = _before_the_stamp(config)
    for v, change in sorted(_CONFIG_CHANGES.items()):
        if v > version:
            config = change(config)
    return config


# --------------------------------------------------------------------------------------------------
# Names in results: 2026-12-07, the numbers on the test split were named val_* (there was no validation
# split). Since then val_* is the validation split (dataset.val_fraction) and test_* the test split;
# results written before are recognised by their format (a row or summary without any test_* key).
# --------------------------------------------------------------------------------------------------

_TEST_ROW_NAMES = {"val_loss": "test_loss", "val_acc": "test_acc", "val_bpc": "test_bpc"}
_TEST_SUMMARY_NAMES = {
    "final_val_acc": "final_test_acc",
    "final_val_loss": "final_test_loss",
    "final_val_bpc": "final_test_bpc",
    "best_val_acc": "best_test_acc",
}


def upgrade_metrics_row(row: dict) -> dict:
    """A metrics.jsonl or detector.jsonl row of a run written before 2026-12-07 in today's names (see
    _TEST_ROW_NAMES): call it only for such runs (`written_before_test_names`), since a detector row of
    today with `val_acc` (the validation split) has no `test_acc` either."""
    return {_TEST_ROW_NAMES.get(k, k): v for k, v in row.items()}


def written_before_test_names(summary: dict) -> bool:
    """Whether a summary.json was written before the test split's numbers were named test_* (it has none
    of today's held-out or data-size keys)."""
    return not any(k in summary for k in ("final_test_acc", "num_test", "final_test_bpc"))


def upgrade_summary(summary: dict) -> dict:
    """A summary.json in today's names and layout. An old `best_val_acc` was the best test accuracy over
    the epochs, kept as `best_test_acc` (a selection on the test split: report only)."""
    version = version_of(summary)
    if written_before_test_names(summary):
        summary = {_TEST_SUMMARY_NAMES.get(k, k): v for k, v in summary.items()}
    if isinstance(summary.get("config"), dict):
        summary = {**summary, "config": upgrade_config(summary["config"], version)}
    return {**summary, "config_version": CONFIG_VERSION}


# --------------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------------


def upgrade_checkpoint(state: dict) -> dict:
    """A checkpoint an earlier version wrote, in today's format. 2026-12-01: the metrics column
    `images_per_sec` became `samples_per_sec`, and the epoch tally's `counters` (the strategy's,
    summed) its `dropped_summed`. 2026-12-07: the test split's numbers, named val_*, became test_*
    (the trainer's `held_out`); the diagnostics' state became one state per measure (version 2)."""
    version = version_of(state)
    results = state.get("results") or {}
    old_names = "held_out" not in state  # written before the test split's numbers were named test_*
    results["metrics"] = [
        {("samples_per_sec" if k == "images_per_sec" else k): v for k, v in row.items()}
        for row in results.get("metrics", [])
    ]
    if old_names:
        for name in ("metrics", "detector"):
            results[name] = [upgrade_metrics_row(row) for row in results.get(name, [])]
    if old_names and "final_val_acc" in state:
        state["held_out"] = {
            "final_test_acc": state.pop("final_val_acc"),
            "final_test_loss": state.pop("final_val_loss", None),
        }
        state.pop("best_val_acc", None)  # the best test accuracy: no longer kept (a selection on the test split)
    tally = state.get("tally")
    if tally and "counters" in tally:
        tally["dropped_summed"] = tally.pop("counters").get("dropped", 0)
    diagnostics = state.get("diagnostics")
    if version < 2 and isinstance(diagnostics, dict) and "enp_rows" in diagnostics and "measures" not in diagnostics:
        state["diagnostics"] = {
            "enp_rows": diagnostics["enp_rows"],
            "enp_ended": diagnostics.get("enp_ended", False),
            "measures": {
                "interference": {"dataset_summary": diagnostics.get("dataset_summary", {})},
                "benr": {"benr": diagnostics.get("benr")},
                "atd": {"prev_features": diagnostics.get("prev_features")},
            },
        }
    if "config_json" in state:
        state["config_json"] = json.dumps(upgrade_config(json.loads(state["config_json"]), version))
    state["config_version"] = CONFIG_VERSION
    return state
