"""Configuration schema and start-up validation.

Two layers catch bad input before any data is loaded:

1. The structured schema below (registered in Hydra's ConfigStore as ``base_config``) types every
   top-level section. Hydra rejects ``trainer.epocs=3`` (unknown key) and ``trainer.epochs=abc``
   (wrong type) while composing, naming the key.
2. :func:`validate` checks each ``_target_`` group (model, dataset, strategy, phase, optim, sched,
   logger) against the signature of the callable it names, so a misspelled key in a YAML file or an
   ``+override`` is reported with the list of valid keys, and annotated types are checked too.
"""

from __future__ import annotations

import collections.abc
import functools
import hashlib
import inspect
import math
import os
import secrets
import time
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from hydra.errors import InstantiationException
from hydra.utils import get_object, instantiate
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from enlighten.errors import UserError


class ConfigError(UserError, ValueError):
    """A configuration problem, reported before any work is done."""


# Settings that change where things go or how often they are written, not what is computed: a
# checkpoint resumes across them, a completed job is not re-run for them, and tables treat runs that
# differ only in them as the same experiment.
RESULT_NEUTRAL_KEYS = (
    "paths",
    "logger",
    "dataset.download",
    "trainer.resume",
    "trainer.skip_completed",
    "trainer.reuse_data",
    "trainer.checkpoint_every",
    "trainer.checkpoint_every_steps",
    "trainer.keep_checkpoints",
    "trainer.sync_every",
    "trainer.progress_every_s",
    "trainer.eval_batch_size",  # changes only the rounding of the evaluation's sums
)


def flatten(tree, prefix: str = "") -> dict:
    """A nested config (plain dicts) as {dotted key: value}."""
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: tree}


def config_differences(saved: dict, current: dict) -> list[str]:
    """`key: saved -> current` for every setting that differs, except those that change no result.
    `saved` in today's layout: read through `enlighten.compat` (summaries, checkpoints)."""
    a, b = flatten(saved), flatten(current)
    return [
        f"{k}: {a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r}"
        for k in sorted(set(a) | set(b))
        if not under(k, RESULT_NEUTRAL_KEYS) and a.get(k, "<absent>") != b.get(k, "<absent>")
    ]


def under(key: str, prefixes) -> bool:
    """Whether `key` is one of `prefixes` or inside one of them (`mix.alpha` is under `mix`)."""
    return any(key == p or key.startswith(p + ".") for p in prefixes)


# --------------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------------


@dataclass
class TrainerConfig:
    epochs: int = 200
    max_steps: Optional[int] = None  # exactly this many optimizer steps instead (step-based schedules; epochs ignored)
    batch_size: int = 128
    device: str = "auto"  # auto | cpu | cuda
    # auto (bf16 on CUDA where supported, else fp16; fp32 on CPU) | fp32 | bf16 | fp16 (with a gradient scaler)
    precision: str = "auto"
    eval_every: int = 1  # evaluate on the test set every N epochs (and always after the last)
    eval_batch_size: Optional[int] = None  # null: 1024 on CUDA, 128 on a CPU (cache-sized batches: 2-3x faster there)
    train_eval_samples: int = 10000  # clean training accuracy: size of the fixed probe subset (0 = all)
    grad_clip: Optional[float] = None  # max global grad norm; null = off
    # steps between the loop's host syncs: the non-finite loss check, and on several processes their
    # agreement on a stop signal
    sync_every: int = 50
    deterministic: bool = False
    channels_last: Optional[bool] = None  # null: on for conv nets, CPU and CUDA (docs/performance.md) | true | false
    compile: bool = False  # torch.compile the training step's model (once per process)
    checkpoint_every: int = 1  # epochs between checkpoints in <run dir>/checkpoints (0: only after the last epoch)
    checkpoint_every_steps: int = 0  # also every N steps within an epoch (0: off; for epochs of hours)
    keep_checkpoints: int = 1  # checkpoints kept once the run has completed: the newest N (0: none; while it runs, two)
    progress_every_s: float = 60.0  # within an epoch, a line this often in a log file (0: none); a terminal shows a bar
    # auto: continue from the run directory's last checkpoint | force: even if the config differs | never: afresh
    resume: str = "auto"
    reuse_data: bool = True  # the next job of a multirun reuses this process's loaded data (same dataset config)
    skip_completed: bool = (
        True  # a run directory whose summary.json says completed (same config) is not rerun (unless resume=never)
    )

    def total_steps(self, steps_per_epoch: int) -> int:
        """Optimizer steps of the whole run (what step-based schedules span)."""
        return self.max_steps or steps_per_epoch * self.epochs


@dataclass
class MixConfig:
    """Mixup settings shared by every strategy (a strategy decides when and at which alpha)."""

    alpha: float = 1.0
    cutmix_alpha: float = 0.0
    label_smoothing: float = 0.0
    mode: str = "batch"  # timm's Mixup mode: batch | pair | elem
    prob: float = 1.0
    switch_prob: float = 0.5
    kind: str = "input"  # input (Mixup/CutMix) | manifold (hidden states after a random stage; staged models)
    # permutation (a random partner per sample and step, the original Mixup) | flip (timm's reversed batch)
    pairing: str = "permutation"


@dataclass
class RemovalConfig:
    """High-Loss Removal and its controls read their share from here, so one sweep key varies it for
    all of them (as `mix.alpha` does for the Mixup strategies)."""

    drop_fraction: float = 0.1  # share of each batch left out of the loss during the ENP


@dataclass
class PathsConfig:
    data_dir: str = "${oc.env:ENLIGHTEN_DATA_DIR,./data}"
    cache_dir: str = "${oc.env:ENLIGHTEN_CACHE_DIR,${oc.env:HOME,.}/.cache/enlighten}"
    output_dir: Optional[str] = "${hydra:runtime.output_dir}"  # null until a run starts (--cfg job --resolve)


@dataclass
class EnlightenConfig:
    # Config groups: their keys depend on the chosen option, checked by `validate` via `_target_`.
    model: Any = MISSING
    dataset: Any = MISSING
    strategy: Any = MISSING
    phase: Any = MISSING
    optim: Any = MISSING
    sched: Any = MISSING
    logger: Any = MISSING
    diagnostics: Any = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    mix: MixConfig = field(default_factory=MixConfig)
    removal: RemovalConfig = field(default_factory=RemovalConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    seed: int = 0
    name: str = "default"  # experiment name, used in W&B tags and tables
    tags: list = field(default_factory=list)


GROUPS = ("model", "dataset", "strategy", "phase", "optim", "sched", "logger", "diagnostics")


def register_configs() -> None:
    """Store the schema and the resolvers (idempotent: multirun jobs import this repeatedly)."""
    ConfigStore.instance().store(name="base_config", node=EnlightenConfig)
    if not OmegaConf.has_resolver("unique_stamp"):
        OmegaConf.register_new_resolver("unique_stamp", unique_stamp, use_cache=True)
    if not OmegaConf.has_resolver("short_name"):
        OmegaConf.register_new_resolver("short_name", short_name)
    if not OmegaConf.has_resolver("job_dir_name"):
        OmegaConf.register_new_resolver("job_dir_name", lambda overrides: job_dir_name(list(overrides)))


@functools.cache
def unique_stamp() -> str:
    """`date/time_pid+random` for output directories: two sweeps started in the same second get
    different directories, while every use within one process resolves to the same value. The
    processes of one torchrun job all take the first process's stamp (so they share one directory):
    reading it joins the process group, which the run would join next anyway."""
    stamp = f"{time.strftime('%Y-%m-%d/%H-%M-%S')}_{os.getpid()}{secrets.token_hex(2)}"
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from enlighten.training import distributed

        distributed.init()
        stamp = distributed.broadcast_object(stamp)
    return stamp


def job_dir_name(overrides: list[str]) -> str:
    """A sweep job's directory name (conf/config.yaml's hydra.sweep.subdir): its overrides, sorted and
    joined by commas, without those of settings that change no result (RESULT_NEUTRAL_KEYS: paths, the
    logger, checkpointing, `dataset.download`, ...), so that adding `trainer.keep_checkpoints=0` to a
    sweep's command finds its jobs where they were; '/' (`experiment=paper/x`) becomes '_' (one folder
    per job); cut to fit with a hash (`short_name`). Not the job's number: a grown sweep keeps its names."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    kept = [
        o.input_line
        for o in OverridesParser.create().parse_overrides(overrides)
        if not under(o.key_or_group, RESULT_NEUTRAL_KEYS)
    ]
    return short_name(",".join(sorted(kept)).replace("/", "_"))


def short_name(name: str, limit: int = 160) -> str:
    """A job directory name that fits the file system (255 bytes): long override lists are cut and
    keep a hash of the whole, so names stay distinct. A job without overrides is `defaults`."""
    if not name:
        return "defaults"
    if len(name.encode()) <= limit:
        return name
    return name.encode()[: limit - 9].decode(errors="ignore") + "_" + hashlib.sha1(name.encode()).hexdigest()[:8]


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------

# Parameters the training code fills in when it instantiates a group: not expected in the config.
RUNTIME_ARGS = {
    "model": {"num_classes", "input_shape"},
    "dataset": set(),
    "strategy": set(),
    "phase": set(),
    "optim": {"model"},
    "sched": {"optimizer", "total_steps", "steps_per_epoch"},
    "logger": {"run_dir", "run_config", "resume_id"},
    "diagnostics": set(),
}

# Settings of a group that the run applies itself, not the group's callable: their defaults are in
# conf/config.yaml, and they are left out when the group is built (`without_applied`). model.init_scale
# multiplies the initial weights (`enlighten.run.build_model`); dataset.label_noise replaces a share of
# the training labels, drawn from the run's seed (`enlighten.data.base.InMemoryData.with_label_noise`).
APPLIED_BY_THE_RUN = {"model": ("init_scale",), "dataset": ("label_noise",)}


def without_applied(cfg: DictConfig, group: str) -> DictConfig:
    """`cfg[group]` without the settings the run applies itself (resolved), ready to build."""
    node, applied = cfg[group], APPLIED_BY_THE_RUN.get(group, ())
    if not any(key in node for key in applied):
        return node
    return OmegaConf.create({k: v for k, v in OmegaConf.to_container(node, resolve=True).items() if k not in applied})


_CHOICES = {
    "trainer.device": ("auto", "cpu", "cuda"),
    "trainer.resume": ("auto", "force", "never"),
    "trainer.precision": ("auto", "fp32", "bf16", "fp16"),
    "mix.mode": ("batch", "pair", "elem"),
    "mix.kind": ("input", "manifold"),
    "mix.pairing": ("permutation", "flip"),
}


def _check_applied(cfg: DictConfig) -> None:
    """model.init_scale and dataset.label_noise (APPLIED_BY_THE_RUN), before any work."""

    def given(group: str, key: str) -> bool:
        return isinstance(cfg.get(group), DictConfig) and key in cfg[group]

    def number(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    if given("model", "init_scale") and not (number(scale := cfg.model.init_scale) and scale > 0):
        raise ConfigError(f"model.init_scale must be a number > 0 (it multiplies the initial weights), got {scale!r}.")
    if given("dataset", "label_noise") and not (number(noise := cfg.dataset.label_noise) and 0 <= noise < 1):
        raise ConfigError(
            f"dataset.label_noise must be a number in [0, 1) (the share of training labels replaced), got {noise!r}."
        )


def check_fraction(fraction) -> None:
    """dataset.fraction, the one range check of it (every loader that subsets calls it too)."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise ConfigError(
            f"dataset.fraction must be a number in (0, 1], got {fraction!r} (the share of the training set kept)."
        )
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"dataset.fraction must be in (0, 1], got {fraction} (the share of the training set kept).")


def check_val_fraction(val_fraction) -> None:
    """dataset.val_fraction, the one range check of it (the loaders that hold a validation split call it too)."""
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0.0 <= val_fraction < 1.0:
        raise ConfigError(
            f"dataset.val_fraction must be a number in [0, 1), got {val_fraction!r} (the share of each "
            f"class of the training split held out for validation; 0: none)."
        )


def validate(cfg: DictConfig, resolve=get_object) -> None:
    """Raise ConfigError naming the offending key; called before any data is loaded. `resolve` finds
    the callable of a `_target_` (importing it; the sweep plan reads signatures from source instead,
    without torch: enlighten.sweeps.static_signature)."""
    for key, value in flatten(OmegaConf.to_container(cfg, resolve=False)).items():
        # NaN passes every range check below (`nan < 0` is false), and inf is no setting either.
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, float) and not math.isfinite(item) and not key.startswith("hydra."):
                raise ConfigError(
                    f"{key}={value} is not a finite number: give it a number (its default: python train.py --cfg job)."
                )
    for key, allowed in _CHOICES.items():
        value = str(OmegaConf.select(cfg, key))
        if value.lower() not in allowed:
            raise ConfigError(f"{key}={value!r} is not one of {list(allowed)}.")
        # Used as validated from here on: `trainer.precision=BF16` arrives as typed.
        OmegaConf.update(cfg, key, value.lower())
    if cfg.paths.output_dir is None:  # Hydra sets it when a run starts; the compose API does not
        raise ConfigError("paths.output_dir is null: run through train.py, or set paths.output_dir=DIR.")
    t = cfg.trainer
    for key in ("epochs", "batch_size", "eval_every", "sync_every"):
        if t[key] < 1:
            raise ConfigError(f"trainer.{key} must be >= 1, got {t[key]}.")
    if t.eval_batch_size is not None and t.eval_batch_size < 1:
        raise ConfigError(
            f"trainer.eval_batch_size must be >= 1 or null (1024 on CUDA, 128 on a CPU), got {t.eval_batch_size}."
        )
    if t.max_steps is not None and t.max_steps < 1:
        raise ConfigError(f"trainer.max_steps must be >= 1 or null (train trainer.epochs epochs), got {t.max_steps}.")
    if t.checkpoint_every < 0:
        raise ConfigError(
            f"trainer.checkpoint_every must be >= 0 (0: only after the last epoch), got {t.checkpoint_every}."
        )
    if t.keep_checkpoints < 0:
        raise ConfigError(
            f"trainer.keep_checkpoints must be >= 0 (0: remove them once the run has completed), got "
            f"{t.keep_checkpoints}."
        )
    if t.checkpoint_every_steps < 0:
        raise ConfigError(
            f"trainer.checkpoint_every_steps must be >= 0 (0: no checkpoints within an epoch), got "
            f"{t.checkpoint_every_steps}."
        )
    if t.train_eval_samples < 0:
        raise ConfigError("trainer.train_eval_samples must be >= 0 (0 means the whole training set).")
    if t.grad_clip is not None and t.grad_clip <= 0:
        raise ConfigError(f"trainer.grad_clip must be positive or null, got {t.grad_clip}.")
    m = cfg.mix
    for key in ("alpha", "cutmix_alpha"):
        if m[key] < 0:
            raise ConfigError(f"mix.{key} must be >= 0, got {m[key]} (0 turns it off).")
    for key in ("prob", "switch_prob"):
        if not 0.0 <= m[key] <= 1.0:
            raise ConfigError(f"mix.{key} must be in [0, 1], got {m[key]}.")
    if not 0.0 <= m.label_smoothing < 1.0:
        raise ConfigError(
            f"mix.label_smoothing must be in [0, 1) (1 leaves no label in the targets), got {m.label_smoothing}."
        )
    if not 0.0 <= cfg.removal.drop_fraction < 1.0:
        raise ConfigError(f"removal.drop_fraction must be in [0, 1), got {cfg.removal.drop_fraction}.")
    if not 0 <= cfg.seed < 2**32:  # numpy's range; its own error would not name the setting
        raise ConfigError(f"seed must be in [0, 2**32), got {cfg.seed}.")
    fraction = cfg.dataset.get("fraction") if isinstance(cfg.dataset, DictConfig) else None
    if fraction is not None:  # before any data is read (a download would come first)
        check_fraction(fraction)
    val_fraction = cfg.dataset.get("val_fraction", 0.0) if isinstance(cfg.dataset, DictConfig) else 0.0
    check_val_fraction(val_fraction)
    _check_applied(cfg)
    if isinstance(cfg.phase, DictConfig) and cfg.phase.get("source") == "val" and not val_fraction:
        raise ConfigError(
            "phase.source=val reads the validation split, and dataset.val_fraction is 0 (none): hold one "
            "out, e.g. dataset.val_fraction=0.1 (the test set is never used to decide anything)."
        )
    for group in GROUPS:
        node = cfg.get(group)
        if not isinstance(node, DictConfig) or "_target_" not in node:
            raise ConfigError(f"Config group '{group}' has no _target_; choose an option, e.g. {group}=<name>.")
        for key in _missing_keys(node, group):
            raise ConfigError(
                f"{key} has no value: the {group} option chosen requires it (??? in its YAML). Give it "
                f"on the command line, e.g. {key}=..."
            )
        check_target_node(group, node, RUNTIME_ARGS[group], resolve, skip=APPLIED_BY_THE_RUN.get(group, ()))
    if "wandb" in str(cfg.logger.get("_target_", "")):  # W&B refuses a tag over 64 characters, after the run began
        for tag in [cfg.name, *(cfg.logger.get("tags") or [])]:
            if len(str(tag)) > WANDB_TAG_LIMIT:
                which = "name" if tag == cfg.name else "tags"
                raise ConfigError(
                    f"{which}={str(tag)[:40]}... is {len(str(tag))} characters; W&B tags (the experiment's "
                    f"name is one) hold at most {WANDB_TAG_LIMIT}: shorten {which}, or use logger=none."
                )


CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def check_arm(cfg: DictConfig, choices: dict, conf_dir: Path = CONF_DIR) -> None:
    """An arm (conf/arm/) is a strategy with its alphas, composed before the experiment: an experiment
    (or an override) that sets the strategy or an alpha again would train something else under the
    arm's name. Refused, naming both, when any of the arm's settings does not hold in `cfg`."""
    arm = choices.get("arm")
    path = conf_dir / "arm" / f"{arm}.yaml"
    if not arm or not path.is_file():
        return
    spec = OmegaConf.to_container(OmegaConf.load(path))
    expected = {
        k.split("/")[-1]: v
        for d in spec.pop("defaults", [])
        if isinstance(d, dict)
        for k, v in d.items()
        if k.startswith("override /")
    }
    found = {group: choices.get(group) for group in expected}
    found.update({key: OmegaConf.select(cfg, key) for key in flatten(spec)})
    expected.update(flatten(spec))
    wrong = [f"{k}={found[k]} (the arm sets {v})" for k, v in expected.items() if found[k] != v]
    if wrong:
        experiment = choices.get("experiment")
        by = f"experiment={experiment} sets it after the arm" if experiment else "an override sets it after the arm"
        raise ConfigError(
            f"arm={arm} and {', '.join(wrong)}: {by}, so the run would train something else under the "
            f"arm's name. Combine arm= only with an experiment that leaves the strategy and its alphas to it "
            f"(e.g. experiment=claims/paper), or drop arm= and choose strategy= and mix.alpha= directly."
        )


WANDB_TAG_LIMIT = 64


def _missing_keys(node: DictConfig, prefix: str) -> list[str]:
    """Dotted keys under `node` that hold no value (`???`)."""
    out = []
    for key in node.keys():
        if OmegaConf.is_missing(node, key):
            out.append(f"{prefix}.{key}")
        elif isinstance(node[key], DictConfig):
            out += _missing_keys(node[key], f"{prefix}.{key}")
    return out


def check_target_node(
    prefix: str, node: DictConfig, runtime_args: set[str] = frozenset(), resolve=get_object, skip: tuple = ()
) -> None:
    """Check the keys (and annotated basic types) of a `_target_` node against its callable (`skip`: keys
    the run applies itself, checked by `validate`)."""
    target = node["_target_"]
    try:
        fn = resolve(target)
    except Exception as e:  # noqa: BLE001 - any import problem is a config problem here
        raise ConfigError(f"{prefix}._target_={target!r} cannot be imported: {e}") from e
    params, takes_kwargs, hints = _accepted_params(fn)
    keys = [k for k in node.keys() if not str(k).startswith("_") and k not in skip]
    for key in keys:
        if key in runtime_args:  # the build call would silently replace it with the value it computes
            raise ConfigError(
                f"{prefix}.{key} comes from the data and the run (the dataset's classes and input shape, "
                f"the schedule's length), so the value set here would be ignored: remove {prefix}.{key}."
            )
        if key not in params:
            if takes_kwargs:
                continue
            valid = sorted(k for k in params if k not in runtime_args and k not in ("self", "args", "kwargs"))
            known = f"Valid keys: {', '.join(valid)}." if valid else "It takes no settings."
            if prefix == "strategy":  # the flat keys of before the strategy contract
                known += (
                    " A strategy's settings are in strategy.mixer (from mix.*), strategy.weighting and "
                    "strategy.schedule: see them with python train.py strategy=<name> --cfg job."
                )
            raise ConfigError(f"Unknown key '{prefix}.{key}' for {target}. {known}")
        child = node[key] if not OmegaConf.is_missing(node, key) else None
        if isinstance(child, DictConfig) and "_target_" in child:  # a part built first (a strategy's mixer, ...)
            check_target_node(f"{prefix}.{key}", child, resolve=resolve)
        elif isinstance(child, DictConfig) and (_is_mapping(hints.get(key)) or _holds_parts(child)):  # named parts
            for name in child.keys():
                part = child[name] if not OmegaConf.is_missing(child, name) else None
                if part is None:
                    continue  # turned off
                if not (isinstance(part, DictConfig) and "_target_" in part):
                    raise ConfigError(
                        f"{prefix}.{key}.{name} must be a node with a _target_ (or null to turn it off), got {part!r}."
                    )
                check_target_node(f"{prefix}.{key}.{name}", part, resolve=resolve)
        elif key in hints and not OmegaConf.is_missing(node, key):
            _check_type(f"{prefix}.{key}", node[key], hints[key])
    for name, p in params.items():
        if p.default is inspect.Parameter.empty and name not in keys and name not in runtime_args:
            raise ConfigError(f"Missing key '{prefix}.{name}' required by {target}.")


def _accepted_params(fn: Any) -> tuple[dict, bool, dict]:
    """Parameters a callable accepts, following `**kwargs` of a class up to its base classes
    (a subclass that passes **kwargs on still has its keys checked), with their type hints."""
    params: dict = {}
    hints: dict = {}
    if inspect.isclass(fn):
        chain = [c.__init__ for c in inspect.getmro(fn) if "__init__" in vars(c) and c is not object]
    else:
        chain = [fn]
    takes_kwargs = False
    for f in chain:
        sig = inspect.signature(f)
        for name, p in sig.parameters.items():
            if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD) and name != "self":
                params.setdefault(name, p)
        try:
            hints = {**typing.get_type_hints(f), **hints}
        except Exception:  # noqa: BLE001 - unresolvable annotations: skip type checks for them
            pass
        takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
        if not takes_kwargs:
            break
    return params, takes_kwargs, hints


def _holds_parts(node: DictConfig) -> bool:
    """Whether every value of `node` is a `_target_` node or null (the diagnostics' measures)."""
    values = [None if OmegaConf.is_missing(node, k) else node[k] for k in node.keys()]
    return bool(values) and all(v is None or (isinstance(v, DictConfig) and "_target_" in v) for v in values)


def _is_mapping(hint: Any) -> bool:
    """Whether a type hint is a mapping (`Mapping[str, Measure]`, `dict[...]`)."""
    return typing.get_origin(hint) in (dict, collections.abc.Mapping) or hint in (dict, collections.abc.Mapping)


def _check_type(key: str, value: Any, hint: Any) -> None:
    """Check value against int/float/bool/str (optionally Optional[...]); other hints pass."""
    origin = typing.get_origin(hint)
    if origin in (list, tuple, collections.abc.Iterable, collections.abc.Sequence) and typing.get_args(hint)[:1] in (
        (int,),
        (float,),
    ):  # a list of numbers (milestones, lambdas)
        numbers = isinstance(value, (ListConfig, list, tuple)) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
        )
        if not numbers:
            raise ConfigError(f"{key} must be a list of numbers, e.g. [100, 150], got {value!r}.")
        return
    allowed = typing.get_args(hint) if origin in (typing.Union, types.UnionType) else (hint,)
    if value is None:
        if type(None) in allowed:
            return
        raise ConfigError(f"{key} must not be null.")
    basic = [a for a in allowed if a in (int, float, bool, str)]
    if not basic or len(basic) != len([a for a in allowed if a is not type(None)]):
        return  # a complex annotation (list, tuple, callable...): leave it to the callable
    if isinstance(value, (DictConfig, ListConfig)):
        raise ConfigError(f"{key} must be {' or '.join(a.__name__ for a in basic)}, got a {type(value).__name__}.")
    ok = any(
        (a is float and isinstance(value, (int, float)) and not isinstance(value, bool))
        or (a is int and isinstance(value, int) and not isinstance(value, bool))
        or (a is bool and isinstance(value, bool))
        or (a is str and isinstance(value, str))
        for a in basic
    )
    if not ok:
        raise ConfigError(f"{key}={value!r} has the wrong type: expected {' or '.join(a.__name__ for a in basic)}.")


def build(node, **kwargs):
    """`hydra.utils.instantiate`, raising the target's own error (a DataError, or a ValueError naming
    the setting and the fix) instead of Hydra's wrapper around it, so users read our message first."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        if e.__cause__ is not None:
            raise e.__cause__ from None
        raise
