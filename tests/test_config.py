"""Every option of every config group composes and instantiates; bad config fails early and clearly."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from enlighten.config import GROUPS, ConfigError, validate, without_applied
from tests.conftest import FOLDER_SETS, REPO, SHARED_DATA, TORCHVISION_SETS, compose_cfg, options


def test_default_config_is_resnet18_mixup_cifar10(tmp_path):
    cfg = compose_cfg([], tmp_path)
    assert cfg.model._target_.endswith("resnet18")
    assert cfg.dataset.name == "cifar10"
    assert cfg.strategy.schedule._target_.endswith("EveryStep")
    assert cfg.logger.mode == "offline"
    validate(cfg)


@pytest.mark.e2e
@pytest.mark.parametrize("group", GROUPS)
def test_every_option_composes_validates_and_instantiates(group, tmp_path):
    for option in options(group):
        overrides = [f"{group}={option}"]
        if group == "dataset" and option in FOLDER_SETS:
            overrides.append("dataset.root=/nonexistent")
        cfg = compose_cfg(overrides, tmp_path)
        validate(cfg)
        node = without_applied(cfg, group)  # as the run builds it
        if group == "model" and option == "char_transformer":  # token ids [B, T] -> logits [B, T, vocab]
            model = instantiate(node, num_classes=10, input_shape=[32])
            assert model(torch.randint(0, 10, (2, 32))).shape == (2, 32, 10)
        elif group == "model":
            shape = [1, 96] if option in ("fcn1d", "resnet1d") else [3, 32, 32]  # time series: [channels, length]
            model = instantiate(node, num_classes=10, input_shape=shape)
            assert model(torch.randn(2, *shape)).shape == (2, 10)
        elif group == "dataset":
            if option in TORCHVISION_SETS or option in FOLDER_SETS:
                continue  # real files: covered by the data tests and the end-to-end tests
            if option in ("ucr", "tinyshakespeare"):
                if not (SHARED_DATA / option).exists():
                    continue
                node.root = str(SHARED_DATA)
            data = instantiate(node)
            assert data.num_train > 0 and data.num_classes == {"ucr": 2, "tinyshakespeare": 65}.get(option, 10)
        elif group == "optim":
            opt = instantiate(node, model=torch.nn.Linear(2, 2))
            assert isinstance(opt, torch.optim.Optimizer)
        elif group == "sched":
            opt = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
            instantiate(node, optimizer=opt, total_steps=100, steps_per_epoch=10)
        elif group == "logger":
            if node.get("mode") is not None:
                node.mode = "disabled"  # instantiation is tested; offline files in test_e2e
            logger = instantiate(node, run_dir=str(tmp_path), run_config={}, _recursive_=False)
            logger.finish()
        else:
            instantiate(node)


@pytest.mark.e2e
@pytest.mark.parametrize("name", options("experiment"))
def test_every_experiment_composes_and_validates(name, tmp_path):
    cfg = compose_cfg(
        [f"experiment={name}", "dataset.root=/x"] if name == "image_folder" else [f"experiment={name}"], tmp_path
    )
    assert cfg.name == name
    validate(cfg)


def test_each_option_that_is_its_callables_only_option_repeats_its_defaults_exactly():
    """A group option's YAML and its callable's signature both hold the defaults (YAML: what Hydra
    composes and overrides; the signature: what Python callers and the plan's static check read). Where
    a callable has one option the two must agree (each measure of the diagnostics too). Options that
    share a callable (the torchvision datasets) are presets of it."""
    by_target: dict[str, list[tuple[Path, dict]]] = {}
    for group in GROUPS:
        for path in sorted((REPO / "conf" / group).rglob("*.yaml")):
            node = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
            if isinstance(node, dict) and "_target_" in node:
                by_target.setdefault(node["_target_"], []).append((path, node))
    for path in sorted((REPO / "conf" / "diagnostics").glob("*.yaml")):  # the measures: parts of one option
        node = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        for part in (node.get("measures") or {}).values():
            if isinstance(part, dict) and "_target_" in part:
                by_target.setdefault(part["_target_"], []).append((path, part))
    compared, differ = 0, []
    for target, nodes in by_target.items():
        if len(nodes) > 1:
            continue
        ((path, node),) = nodes
        module, _, name = target.rpartition(".")
        parameters = inspect.signature(getattr(importlib.import_module(module), name)).parameters
        for key, value in node.items():
            default = parameters[key].default if key in parameters else inspect.Parameter.empty
            if key.startswith("_") or default is inspect.Parameter.empty or str(value).startswith(("${", "???")):
                continue
            compared += 1
            if (list(value) if isinstance(value, (list, tuple)) else value) != (
                list(default) if isinstance(default, (list, tuple)) else default
            ):
                differ.append(f"{path.relative_to(REPO)}: {key}: {value!r} in the YAML, {default!r} in {target}")
    assert compared > 100 and not differ, "\n".join(differ)


def test_every_option_of_every_group_is_in_the_docs_options_table():
    """docs/running.md's table lists each group's options: a new YAML file under conf/<group>/ must be
    added there (a newcomer finds the options in one place)."""
    rows = {}
    for line in (REPO / "docs" / "running.md").read_text().splitlines():
        cells = line.split("|")
        if len(cells) > 3 and cells[1].strip().startswith("`"):
            rows[cells[1].strip().strip("`")] = set(re.findall(r"`([^`]+)`", cells[2]))
    groups = sorted(p.name for p in (REPO / "conf").iterdir() if p.is_dir() and p.name != "hydra")
    missing = {g: sorted(set(options(g)) - rows.get(g, set())) for g in groups}
    assert not {g: m for g, m in missing.items() if m}, missing


@pytest.mark.parametrize(
    "override, message",
    [
        ("trainer.epocs=3", "epocs"),
        ("trainer.epochs=abc", "trainer.epochs"),
        ("mix.alpah=0.2", "alpah"),
        ("model.widht=2", "widht"),
    ],
)
def test_bad_override_fails_at_compose_naming_the_key(override, message, tmp_path):
    with pytest.raises(ConfigCompositionException) as e:
        compose_cfg([override], tmp_path)
    assert message in str(e.value) + str(e.value.__cause__)


@pytest.mark.parametrize(
    "override, message",
    [
        ("+model.widht=2", "Unknown key 'model.widht'"),
        ("model.width=abc", "model.width='abc' has the wrong type"),
        ("mix.alpha=-1", "mix.alpha must be >= 0"),
        ("mix.label_smoothing=1.0", "mix.label_smoothing must be in [0, 1)"),  # as the mixer would refuse it
        ("trainer.device=tpu", "trainer.device='tpu'"),
        ("+dataset.fractoin=0.5", "Unknown key 'dataset.fractoin'"),
    ],
)
def test_validate_names_the_key(override, message, tmp_path):
    cfg = compose_cfg([override], tmp_path)
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    assert message in str(e.value)


def test_data_dir_defaults_to_env(monkeypatch, tmp_path):
    monkeypatch.setenv("ENLIGHTEN_DATA_DIR", "/some/where")
    cfg = compose_cfg([], tmp_path)
    assert cfg.paths.data_dir == "/some/where"
    monkeypatch.delenv("ENLIGHTEN_DATA_DIR")
    assert compose_cfg([], tmp_path).paths.data_dir == "./data"


def test_resolved_config_is_plain_yaml(tmp_path):
    cfg = compose_cfg(["dataset=digits", "model=cnn"], tmp_path)
    text = OmegaConf.to_yaml(cfg, resolve=True)
    assert "digits" in text and Path(tmp_path).name in text


def test_output_stamp_is_fixed_in_a_process_and_differs_between_processes():
    import subprocess
    import sys

    code = (
        "from enlighten.config import register_configs; from omegaconf import OmegaConf; register_configs(); "
        "c = OmegaConf.create({'a': '${unique_stamp:}', 'b': '${unique_stamp:}'}); assert c.a == c.b; print(c.a)"
    )
    stamps = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        for _ in range(2)
    }
    assert len(stamps) == 2  # two sweeps started in the same second get different directories


PAPER = sorted(p.stem for p in (REPO / "conf" / "experiment" / "paper").glob("*.yaml"))


@pytest.mark.e2e
@pytest.mark.parametrize("name", PAPER)
def test_paper_experiment_composes_for_every_point_of_its_grid(name, tmp_path):
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, str(REPO / "train.py"), f"experiment=paper/{name}", "--cfg", "job"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    base = compose_cfg([f"experiment=paper/{name}"], tmp_path)
    phases = OmegaConf.load(REPO / "conf" / "experiment" / "paper" / f"{name}.yaml").hydra.sweeper.params.phase
    for phase in phases.split(","):
        cfg = compose_cfg([f"experiment=paper/{name}", f"phase={phase}"], tmp_path)
        validate(cfg)
        assert cfg.name == f"paper/{name}" and cfg.strategy._target_ == base.strategy._target_
        if phase.startswith("paper/fixed"):
            assert cfg.phase.epochs == int(phase.removeprefix("paper/fixed"))


@pytest.mark.e2e
@pytest.mark.parametrize("name", ["hlr/ucr", "hlr/charlm"])
def test_hlr_experiments_compose_and_build_for_every_point_of_their_grid(name, tmp_path):
    """Every strategy x share of the sweep composes, validates and builds; none mixes (the language
    model's token ids cannot be mixed); the share reaches every removal strategy and only them."""
    from hydra.utils import instantiate

    params = OmegaConf.load(REPO / "conf" / "experiment" / f"{name}.yaml").hydra.sweeper.params
    strategies = params.strategy.split(",")
    assert {"vanilla", "high_loss_removal", "random_removal", "low_loss_removal", "high_loss_removal_whole_run"} <= set(
        strategies
    )
    assert str(params["removal.drop_fraction"]) == "0.05,0.1,0.2"
    for strategy in strategies:
        for share in params["removal.drop_fraction"].split(","):
            cfg = compose_cfg(
                [f"experiment={name}", f"strategy={strategy}", f"removal.drop_fraction={share}"], tmp_path
            )
            validate(cfg)
            built = instantiate(cfg.strategy)
            built.check(cfg.trainer.batch_size)
            assert not built.may_mix()
            assert getattr(built.weighting, "drop_fraction", float(share)) == float(share)
            assert getattr(built.schedule, "whole_run", False) == (strategy == "high_loss_removal_whole_run")


def test_long_job_directory_names_are_cut_and_stay_distinct():
    from enlighten.config import short_name

    assert short_name("seed=1,strategy=mixup") == "seed=1,strategy=mixup"
    a, b = (short_name(",".join(f"key{i}=value{i}" for i in range(40)) + tail) for tail in ("x", "y"))
    assert len(a.encode()) <= 160 and len(b.encode()) <= 160 and a != b


@pytest.mark.e2e
@pytest.mark.parametrize("name", options("experiment"))
def test_debug_quick_shortens_every_experiment(name, tmp_path):
    """`debug=quick` is composed after the experiment: ten steps and no W&B, whatever the experiment sets."""
    cfg = compose_cfg([f"experiment={name}", "debug=quick"], tmp_path)
    validate(cfg)
    assert cfg.trainer.max_steps == 10 and cfg.logger._target_ == "enlighten.loggers.base.NoLogger"


def test_debug_quick_runs_ten_steps(tmp_path):
    from enlighten.run import run

    summary = run(compose_cfg(["dataset=digits", "model=cnn", "debug=quick", "trainer.device=cpu"], tmp_path))
    assert summary["status"] == "completed" and summary["steps"] == 10
