"""Hydra callbacks (hydra.callbacks in conf/config.yaml): what a sweep says about itself, and the
launcher check.

- When the sweep ends, also after a failed job: one summary line per status and where the table is.
- A launcher chosen by the plugin's own name (`submitit_slurm`, `submitit_local`) lacks the defaults
  that requeue-and-resume depends on: `check_launcher` refuses it, pointing to ours (train.py calls it
  on the command line, `run()` on the composed choice; Hydra turns a callback's error into a warning).

No torch here: Hydra loads callbacks for every command.
"""

from __future__ import annotations

import atexit
import collections
import json
import os
import time
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from enlighten.compat import moved_diagnostics_setting
from enlighten.errors import UserError

OURS = {"submitit_slurm": "slurm", "submitit_local": "local"}


def check_launcher(choice: str | None) -> None:
    if choice in OURS:
        raise UserError(
            f"hydra/launcher={choice} is the plugin's own config, without our defaults (one GPU per job, "
            f"max_num_timeout=3, on which requeue-and-resume depends): use hydra/launcher={OURS[choice]}, which "
            f"builds on it (conf/hydra/launcher/{OURS[choice]}.yaml)."
        )


# Hydra's flags that take a value (`--cfg job`): that value is no override.
_FLAGS_WITH_VALUE = {
    "--cfg",
    "-c",
    "--package",
    "-p",
    "--config-name",
    "-cn",
    "--config-path",
    "-cp",
    "--config-dir",
    "-cd",
    "--info",
    "-i",
    "--experimental-rerun",
}


def check_override_syntax(args: list[str]) -> None:
    """Two shell slips Hydra answers with its grammar's errors: a value with spaces left unquoted (the
    shell splits it: 'paths.data_dir=/my' and 'data') and an unquoted value with non-ASCII letters (Hydra's
    lexer refuses them). Named, with the quoting that works."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for previous, arg in zip(["", *args], args):
        if previous in _FLAGS_WITH_VALUE or arg.startswith("-"):
            continue
        try:
            parser.parse_overrides([arg])
            continue  # Hydra reads it: whatever it is, it is not a slip
        except Exception:  # noqa: BLE001 - Hydra's grammar error: name the slip where it is one of these
            pass
        if "=" not in arg and not arg.startswith("~"):
            raise UserError(
                f"'{arg}' is not a key=value override: a value with spaces must be quoted for Hydra as "
                f"well as for the shell, e.g. 'paths.data_dir=\"/my data\"'"
                + (f" (after {previous})" if "=" in previous else "")
                + "."
            )
        key, _, value = arg.partition("=")
        if not value.isascii() and not value.startswith(("'", '"')):
            raise UserError(f"{arg}: Hydra reads an unquoted value as ASCII only; quote it: '{key}=\"{value}\"'.")


def explain_missing_setting(args: list[str], conf_dir: Path) -> str | None:
    """After a failed composition: where an override sets a key that the chosen option of its group
    lacks (`phase.threshold=0.3` under the default `phase=never`), Hydra suggests `+phase.threshold`,
    which our validation would refuse too. Say which option was chosen and which options have the key."""
    from hydra import compose, initialize_config_dir
    from omegaconf import DictConfig as Node

    def composes(overrides: list[str]):
        with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
            return compose("config", overrides, return_hydra_config=True)

    if any(a.lower() == "trainer.channels_last=auto" for a in args):  # the string choice of before 2026-12-07
        return "note: trainer.channels_last is true, false or null (null: on for conv nets, what auto was)."
    try:  # a hint must never add a traceback to Hydra's message
        overrides = [a for a in args if not a.startswith("-") and "=" in a and not a.startswith("hydra.")]
        try:
            composes(overrides)
            return None  # the failure was not a composition error (a bad setting, bad data, a signal)
        except Exception:  # noqa: BLE001 - it was: find an override that names a setting its option lacks
            pass
        groups = {p.name for p in conf_dir.iterdir() if p.is_dir()}
        for arg in overrides:
            key = arg.split("=", 1)[0]
            group, _, setting = key.partition(".")
            if group not in groups or not setting or key.startswith(("+", "~")):
                continue
            try:
                cfg = composes([a for a in overrides if a != arg])
            except Exception:  # noqa: BLE001 - something else is wrong too: leave Hydra's message alone
                return None
            node, first = cfg.get(group), setting.split(".")[0]
            if not isinstance(node, Node) or first in node:
                continue
            chosen = cfg.hydra.runtime.choices.get(group)
            if group == "diagnostics" and (moved := moved_diagnostics_setting(first)):
                return f"note: {key} is a setting of before 2026-12-07, when the measures became plug-ins: {moved}."
            having = sorted(p.stem for p in (conf_dir / group).glob("*.yaml") if f"\n{first}:" in "\n" + p.read_text())
            return (
                f"note: {key} is not a setting of {group}={chosen}, the option chosen for {group} (adding it with + "
                f"would be refused too). "
                + (
                    f"Options that have it: {', '.join(having)}, e.g. {group}={having[0]} {arg}."
                    if having
                    else f"No {group} option has it: see python train.py {group}=... --cfg job."
                )
            )
        return None
    except Exception:  # noqa: BLE001
        return None


def check_output_dir(key: str, value: str) -> None:
    """A `hydra.run.dir` / `hydra.sweep.dir` given on the command line that cannot be created (a name over
    the file system's 255 bytes, a file where a folder must be, a folder that cannot be written): refused
    before anything is launched, naming the setting (Hydra's own error is a traceback)."""
    if "${" in value:  # resolved by Hydra later
        return
    path = Path(value).expanduser().absolute()
    long = [part for part in path.parts if len(part.encode()) > 255]
    if long:
        raise UserError(
            f"{key}={value}: the name {long[0][:40]}... is {len(long[0].encode())} bytes, over the file "
            f"system's 255: choose a shorter {key}."
        )
    try:
        existing = next(p for p in (path, *path.parents) if p.exists())
    except OSError as e:  # a folder on the way that cannot be searched
        raise UserError(f"{key}={value}: {e.strerror} ({e.filename}): choose a {key} in a folder you can write.") from e
    if not existing.is_dir():
        raise UserError(f"{key}={value}: {existing} is a file, not a folder: choose another {key}.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{key}={value}: {existing} cannot be written: choose a {key} in a folder you can write.")


def swept_overrides(job_overrides: list[str], sweep_dir: Path) -> list[str]:
    """This job's overrides of the keys its sweep varies (`mix.alpha=0.2`, `seed=1`), from the sweep's
    own record (multirun.yaml: its command line and hydra.sweeper.params); constants left out. Without
    that record, all of the job's overrides."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:  # a name for W&B: never worth failing a run for
        sweep = OmegaConf.load(Path(sweep_dir) / "multirun.yaml")
        parser = OverridesParser.create()
        given = [
            *sweep.hydra.overrides.task,
            *(f"{k}={v}" for k, v in (sweep.hydra.sweeper.get("params") or {}).items()),
        ]
        swept = {o.key_or_group for o in parser.parse_overrides(given) if o.is_sweep_override()}
        return [o for o in job_overrides if parser.parse_override(o).key_or_group in swept]
    except Exception:  # noqa: BLE001 - no record, or one Hydra cannot parse
        return list(job_overrides)


def planned_jobs(config: DictConfig) -> int | None:
    """How many jobs the sweep launches: the product of its swept values (the command line over
    hydra.sweeper.params, as Hydra's basic sweeper takes them); None where it cannot be told."""
    if not str(config.hydra.sweeper.get("_target_", "")).endswith(("BasicSweeper", "SkipCompletedSweeper")):
        return None  # an optimizing sweeper runs trials, not the product of its values
    try:
        from enlighten.sweeps import grid

        return len(grid(dict(config.hydra.sweeper.get("params") or {}), list(config.hydra.overrides.task)))
    except Exception:  # noqa: BLE001 - another sweeper, a syntax it does not split: say nothing rather than wrong
        return None


def sweep_report(sweep_dir: Path, since: float = 0.0, planned: int | None = None) -> str:
    """One line: the jobs by status (a summary older than `since`, the sweep's start, is a job this
    invocation skipped, completed before), and where the tables come from; then a line per failed,
    diverged, interrupted (a time limit submitit gave up on) or refused job with the first line of its error."""
    from enlighten.analysis.runs import load_runs  # reads summaries only

    runs = load_runs([sweep_dir]) if sweep_dir.is_dir() else []
    refused = {}  # jobs refused in this invocation where an earlier run's summary.json stands (left as it was)
    for path in sorted(sweep_dir.glob("*/refused.json")) if sweep_dir.is_dir() else []:
        if path.stat().st_mtime >= since:
            refused[str(path.parent)] = str(json.loads(path.read_text()).get("error", "")).splitlines()[0]
    counts = collections.Counter(
        "refused (an earlier run kept)" if r["_dir"] in refused else r.get("status", "?") for r in runs
    )
    if planned is not None and planned > len(runs):  # an interrupted sweep: the jobs it never reached
        counts["not started"] = planned - len(runs)
    failed = [
        f"\n  {Path(r['_dir']).name}: "
        f"{str(r.get('error') or '').splitlines()[0] if r.get('error') else r.get('status')}"
        for r in runs
        if r.get("status") in ("failed", "diverged", "interrupted") and r["_dir"] not in refused
    ]
    failed += [
        f"\n  {Path(d).name}: refused ({error}); its earlier summary.json is unchanged" for d, error in refused.items()
    ]
    total = max(planned or 0, len(runs))
    runs = [r for r in runs if r["_dir"] not in refused]
    skipped = sum(
        1 for r in runs if r.get("status") == "completed" and (Path(r["_dir"]) / "summary.json").stat().st_mtime < since
    )
    statuses = ", ".join(
        f"{n} {status}" + (f" ({skipped} of them before: skipped)" if status == "completed" and skipped else "")
        for status, n in sorted(counts.items())
    )
    return (
        f"Sweep {sweep_dir}: {total} jobs ({statuses or 'none'}). Table: python scripts/make_tables.py "
        f"{sweep_dir}; one row per run: python scripts/collect.py {sweep_dir} --out runs.csv"
        + "".join(failed[:20])
        + (f"\n  and {len(failed) - 20} more" if len(failed) > 20 else "")
    )


class SweepReport(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        # atexit: Hydra ends a sweep with a failed job by raising, and on_multirun_end is then never called.
        # What the report reads is imported now: at exit, an import that registers its own exit handler
        # (torch, concurrent.futures) fails, and the report with it.
        import enlighten.analysis.runs  # noqa: F401

        since, planned = time.time(), planned_jobs(config)
        atexit.register(lambda: print(sweep_report(Path(config.hydra.sweep.dir), since, planned), flush=True))
