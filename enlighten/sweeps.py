"""Sweeps before and after they run: the jobs a command makes, how a job's directory is named, the
plan (each job composed, checked and found new / completed / interrupted / failed, without torch), and
moving sweeps named the old way.

A job's directory is named by its overrides that change a result (`config.job_dir_name`), as
conf/config.yaml sets `hydra.sweep.subdir`. The name does not depend on the
job's number, so a sweep grown by seeds or arms and run again into the same `hydra.sweep.dir` finds
its finished jobs where they were (each skipped: run() checks summary.json), and trains only the new
ones. Sweeps written before 2026-12-07 named their jobs `<job number>_<overrides>`; `migrate` renames
them to today's names.

No torch here: train.py's pre-launch check and scripts/sweep.py use it.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import re
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf, open_dict

from enlighten.config import CONF_DIR, check_arm, config_differences, job_dir_name, register_configs, validate
from enlighten.errors import UserError
from enlighten.results import earlier_summary

OLD_STYLE = re.compile(r"^\d+_")


def old_style_jobs(sweep_dir: Path) -> list[Path]:
    """Job directories named by job number (`3_seed=1,...`) that hold a job's record (`.hydra`)."""
    if not sweep_dir.is_dir():
        return []
    return sorted(
        p
        for p in sweep_dir.iterdir()
        if p.is_dir() and OLD_STYLE.match(p.name) and (p / ".hydra" / "overrides.yaml").is_file()
    )


def check_sweep_names(sweep_dir: Path) -> None:
    """Before a sweep is launched into `sweep_dir`: jobs there named the old way would not be found
    (each would train again beside its finished copy). Refused, with the command that renames them."""
    old = old_style_jobs(Path(sweep_dir))
    if old:
        raise UserError(
            f"hydra.sweep.dir={sweep_dir} holds {len(old)} job directories named by job number, as sweeps "
            f"were before 2026-12-07 (e.g. {old[0].name}); jobs are now named by their overrides, so these "
            f"would train again. Rename them first: python scripts/sweep.py migrate {sweep_dir}"
        )


def migrate(sweep_dir: Path, dry_run: bool = False) -> list[tuple[Path, Path]]:
    """Rename the old-style job directories of `sweep_dir` to the names today's config gives them
    (from each job's own `.hydra/overrides.yaml`). All or nothing: refused when a new name exists
    already or two jobs would share one."""
    moves = [
        (old, old.with_name(job_dir_name(list(OmegaConf.load(old / ".hydra" / "overrides.yaml")))))
        for old in old_style_jobs(Path(sweep_dir))
    ]
    targets = [new for _, new in moves]
    clashes = sorted({str(new) for new in targets if new.exists() or targets.count(new) > 1})
    if clashes:
        raise UserError(
            f"{sweep_dir}: cannot rename, these names exist already or would be given twice: "
            f"{', '.join(clashes[:5])}{' ...' if len(clashes) > 5 else ''}. Nothing was renamed."
        )
    if not dry_run:
        for old, new in moves:
            old.rename(new)
    return moves


@contextlib.contextmanager
def one_line_errors():
    """For the scripts that compose a command's jobs: a bad setting (ours or Hydra's composition error)
    ends the script with one line, as train.py prints it, never a traceback."""
    try:
        yield
    except UserError as e:
        raise SystemExit(f"error: {e}") from None
    except Exception as e:  # noqa: BLE001 - Hydra's and OmegaConf's errors are the user's: others are bugs
        if type(e).__module__.startswith(("hydra", "omegaconf")):
            raise SystemExit(f"error: {e}") from None
        raise


def compose_job(overrides: list[str]):
    """One job's config as train.py composes it (the Hydra part included: the job's directory name)."""
    from hydra import compose, initialize_config_dir

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides, return_hydra_config=True)


def grid(params: dict, overrides: list[str]) -> list[list[str]]:
    """The jobs Hydra's basic sweeper makes of `hydra.sweeper.params` and the command line's overrides
    (which win over params of the same key): each job's overrides."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    given = {o.key_or_group for o in parser.parse_overrides(list(overrides))}
    lines = [*(f"{k}={v}" for k, v in params.items() if k not in given), *overrides]
    return [job for batch in BasicSweeper.split_arguments(parser.parse_overrides(lines), None) for job in batch]


def expand(overrides: list[str]) -> list[list[str]]:
    """The jobs of a train.py -m command. As Hydra does, `hydra.sweeper.params` is read from the config
    composed without the swept overrides (an experiment's own grid counts only where it is not swept)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    fixed = [
        o.input_line for o in OverridesParser.create().parse_overrides(list(overrides)) if not o.is_sweep_override()
    ]
    return grid(compose_job(fixed).hydra.sweeper.get("params") or {}, overrides)


def static_signature(target: str):
    """A stand-in for the callable `target` names, with its parameters read from our source by `ast`
    (no import, so no torch): what `validate` needs to check a node's keys. Keys only: the values'
    types are checked when the run starts (the stand-in has no annotations). Outside `enlighten` it
    accepts any key."""
    module, _, name = target.rpartition(".")
    path = CONF_DIR.parent / Path(*module.split("."))
    source = path.with_suffix(".py") if path.with_suffix(".py").is_file() else path / "__init__.py"

    def accepts_anything(**kwargs):
        pass

    if not module.startswith("enlighten") or not source.is_file():
        return accepts_anything
    tree = ast.parse(source.read_text())
    for imported in (n for n in tree.body if isinstance(n, ast.ImportFrom)):  # a name the module re-exports
        for alias in imported.names:
            if (alias.asname or alias.name) == name:
                package = module if source.name == "__init__.py" else module.rpartition(".")[0]
                base = package.rsplit(".", imported.level - 1)[0] if imported.level > 1 else package
                origin = f"{base}.{imported.module}" if imported.level else imported.module
                return static_signature(f"{origin}.{alias.name}")
    node = next((n for n in tree.body if getattr(n, "name", None) == name), None)
    if node is None:
        raise ImportError(f"{source} defines no {name}")
    if isinstance(node, ast.ClassDef):
        init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
        bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
        if init is None:  # the base class's __init__, or object's (no settings)
            return static_signature(f"{module}.{bases[0]}") if bases else (lambda: None)
        if init.args.kwarg is not None:  # its own keys and, passed on, its base class's (as _accepted_params)
            base = static_signature(f"{module}.{bases[0]}") if bases else accepts_anything
            own = _parameters(init.args)
            inherited = [p for p in inspect.signature(base).parameters.values() if p.name not in {q.name for q in own}]
            return _stand_in(own + inherited)
        node = init
    if not isinstance(node, ast.FunctionDef):
        return accepts_anything
    if node.args.kwarg is not None:
        return accepts_anything
    return _stand_in(_parameters(node.args))


def _parameters(args: ast.arguments) -> list[inspect.Parameter]:
    """A function's parameters from its source (defaults as placeholders: only whether one exists counts)."""
    positional = [*args.posonlyargs, *args.args]
    defaults = [inspect.Parameter.empty] * (len(positional) - len(args.defaults)) + [0] * len(args.defaults)
    params = [
        inspect.Parameter(a.arg, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=d)
        for a, d in zip(positional, defaults)
        if a.arg != "self"
    ]
    return params + [
        inspect.Parameter(a.arg, inspect.Parameter.KEYWORD_ONLY, default=inspect.Parameter.empty if d is None else 0)
        for a, d in zip(args.kwonlyargs, args.kw_defaults)
    ]


def _stand_in(params: list[inspect.Parameter]):
    def stand_in(*a, **k):
        pass

    stand_in.__signature__ = inspect.Signature(params)
    return stand_in


@dataclass
class PlannedJob:
    name: str  # the job's directory name
    status: str  # new | completed | interrupted | failed | diverged | other config (refused when run)
    error: str | None = None  # the setting a job would be refused for, before anything is queued


def plan(overrides: list[str]) -> tuple[Path | None, list[PlannedJob]]:
    """Every job of the command, composed and checked as train.py would (no torch, no data), with its
    state in the sweep directory (`hydra.sweep.dir`; None where the command leaves it to a new stamp)."""
    named = any(o.startswith("hydra.sweep.dir=") for o in overrides)  # else each launch makes a new folder
    sweep_dir, jobs = None, []
    for job in expand(overrides):
        cfg = compose_job(job)
        name = str(cfg.hydra.sweep.subdir)
        sweep_dir = Path(str(cfg.hydra.sweep.dir)) if named else None  # the same for every job
        error = None
        try:
            check_job(cfg, (sweep_dir or Path("multirun")) / name)
        except UserError as e:
            error = f"{type(e).__name__}: {e}"
        jobs.append(PlannedJob(name, job_state(cfg, sweep_dir / name) if sweep_dir else "new", error))
    return sweep_dir, jobs


def check_job(cfg, job_dir: Path) -> None:
    """`validate` a composed job as run() will (its output directory set), reading the callables'
    parameters from source: no torch. Raises ConfigError naming the setting."""
    with open_dict(cfg):
        cfg.paths.output_dir = str(job_dir)
    validate(cfg, resolve=static_signature)
    if "hydra" in cfg:
        check_arm(cfg, dict(cfg.hydra.runtime.choices))


def run_config(cfg, job_dir: Path) -> dict:
    """A composed job's config as run() records it in summary.json: without Hydra's own part, resolved."""
    task = cfg.copy()
    with open_dict(task):
        task.pop("hydra", None)
        task.paths.output_dir = str(job_dir)
    return OmegaConf.to_container(task, resolve=True)


def job_state(cfg, job_dir: Path) -> str:
    """new (no readable summary.json), or its summary's status (completed, failed, interrupted, ...),
    or `other config` where the summary is of another config than the composed job `cfg`."""
    saved = earlier_summary(job_dir)
    if saved is None:
        return "new"
    differs = saved.get("config") is not None and config_differences(saved["config"], run_config(cfg, job_dir))
    return "other config" if differs else str(saved.get("status"))
