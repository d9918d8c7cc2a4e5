"""Runs read back from their directories, and which runs are the same experiment.

A run is its summary.json as a dict, plus `_dir`. Two runs are *paired* for a comparison of KEY when
their configs agree on everything but KEY and the result-neutral settings (paths, logger, ...): the
seed included, so a pair is one seed's two arms. Runs that agree on everything, seed included, are
*duplicates*: counting both would count one seed twice.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from enlighten.compat import (
    CONFIG_VERSION,
    upgrade_config,
    upgrade_metrics_row,
    upgrade_summary,
    version_of,
    written_before_test_names,
)
from enlighten.config import RESULT_NEUTRAL_KEYS, flatten, under
from enlighten.results import RunDirLock

# Config groups whose options set keys outside their own subtree (`# @package _global_`): comparing
# two of their options compares everything they set. An arm (conf/arm/) sets the strategy and the
# Mixup alpha, which the diagnostics' alpha follows; tests/test_claims.py checks that every arm file
# sets nothing else.
SET_BY_GROUP = {"arm": ("strategy", "mix.alpha", "diagnostics.measures.interference.alpha")}


class DuplicateRuns(ValueError):
    """Runs that repeat another run's config and seed, which would count one seed twice."""


def load_runs(dirs) -> list[dict]:
    """Every summary.json under `dirs` (recursively), and every job that started (.hydra) but wrote
    none: {"status": "running"} while a live process holds its directory (another copy of the sweep),
    else {"status": "missing"}. A directory that does not exist is an error."""
    runs = []
    for d in dirs:
        root = Path(d)
        if not root.exists():
            raise FileNotFoundError(f"{root} does not exist")
        for hydra_dir in sorted(root.rglob(".hydra")):
            if not (hydra_dir.parent / "summary.json").exists():
                running = RunDirLock.held(hydra_dir.parent)
                runs.append(
                    {
                        "status": "running" if running else "missing",
                        "error": "a live process is training it" if running else "no summary.json",
                        "_dir": str(hydra_dir.parent),
                    }
                )
        for path in sorted(root.rglob("summary.json")):
            try:
                run = json.loads(path.read_text())
                if isinstance(run, dict):  # written by an earlier version: in today's names and layout
                    old_names = written_before_test_names(run)  # its rows are read under today's names too
                    run = {**upgrade_summary(run), **({"_old_names": True} if old_names else {})}
            except (OSError, json.JSONDecodeError) as e:
                run = {"status": "unreadable", "error": str(e)}
            if RunDirLock.held(path.parent):  # another copy of the sweep is running it again (a resume, a re-run)
                run = {**run, "status": "running", "error": "a live process is training it"}
            if "num_train" not in run and (size := _num_train_from_log(path.parent)) is not None:
                run["num_train"] = size  # summaries before 2026-12-07 did not record it; the start line did
            run["_dir"] = str(path.parent)
            runs.append(run)
    return runs


def is_ours(run: dict) -> bool:
    """Whether a run read by `load_runs` is one of ours (train.py's summary.json: a status and a config,
    or a job directory it started), not some other tool's summary.json that happens to lie below."""
    return run.get("status") in ("missing", "running", "unreadable") or (
        "status" in run and isinstance(run.get("config"), dict)
    )


def _num_train_from_log(run_dir: Path) -> int | None:
    """The training-set size on a run's start line in train.log ("... (1,437 training / 360 test samples)")."""
    log = run_dir / "train.log"
    if not log.is_file():
        return None
    found = re.search(r" \(([\d,]+) training / ", log.read_text(errors="replace"))
    return int(found.group(1).replace(",", "")) if found else None


def lookup(run: dict, key: str):
    """A group choice (`strategy`, `arm`) or a dotted config key (`mix.alpha`); None when absent."""
    if key in run.get("choices", {}):
        return run["choices"][key]
    node = run.get("config", {})
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def identity(run: dict, without: tuple[str, ...] = ()) -> tuple:
    """Everything in a run's config that can change its results, hashable: two runs with the same
    identity are the same experiment. `without` leaves keys out (a config group leaves out its
    choice and its whole subtree, an arm also what it sets): runs paired for a comparison agree on
    everything else, the seed included. The choice of a SET_BY_GROUP group is never part of it: the
    settings it sets are, so two arms that set the same values are the same experiment, and a
    comparison of strategies pairs runs whatever arm brought them there."""
    drop = (*RESULT_NEUTRAL_KEYS, *without, *(k for w in without for k in SET_BY_GROUP.get(w, ())))
    settings = {k: repr(v) for k, v in flatten(run.get("config", {})).items() if not under(k, drop)}
    choices = {
        f"choice {k}": v for k, v in run.get("choices", {}).items() if not under(k, drop) and k not in SET_BY_GROUP
    }
    return tuple(sorted({**settings, **choices}.items()))


def separating_keys(runs: list[dict], keys: list[str]) -> list[str]:
    """The keys to add to `keys` so that completed runs grouped by them (and their seed) are one experiment
    each: runs that share the values of `keys` and the seed but differ in anything else (an experiment's
    settings, another detector) must not be averaged as seeds of one cell. The experiment's `name` first,
    then the group choices, then single settings, fewest first; [] when `keys` already separate them."""
    done = [r for r in runs if r.get("status") == "completed"]
    groups: dict[tuple, list[dict]] = {}
    for run in done:
        groups.setdefault((*(str(lookup(run, k)) for k in keys), str(lookup(run, "seed"))), []).append(run)
    mixed = [g for g in groups.values() if len({identity(r) for r in g}) > 1]
    if not mixed:
        return []
    differing: set[str] = set()
    for group in mixed:
        for key in {k for r in group for k in [*flatten(r.get("config", {})), *r.get("choices", {})]}:
            if (
                not under(key, RESULT_NEUTRAL_KEYS)
                and key not in keys
                and len({repr(lookup(r, key)) for r in group}) > 1
            ):
                differing.add(key)
    order = sorted(differing, key=lambda k: (k != "name", k not in done[0].get("choices", {}), k.count("."), k))
    chosen: list[str] = []
    for key in order:  # fewest keys that give every identity of a group its own values
        chosen.append(key)
        if all(
            len({tuple(repr(lookup(r, k)) for k in chosen) for r in g}) == len({identity(r) for r in g}) for g in mixed
        ):
            return chosen
    return chosen


def drop_duplicates(runs: list[dict], keep_newest: bool = False) -> list[dict]:
    """Completed runs with one identity (seed included) once: re-running a sweep into a new directory
    and reading both must never double the seeds. Without `keep_newest` a duplicate raises
    DuplicateRuns naming the directories; with it, the newest summary is kept and the others are
    marked status 'duplicate'."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        if run.get("status") == "completed":
            groups.setdefault(identity(run), []).append(run)
    repeated = [g for g in groups.values() if len(g) > 1]
    if repeated and not keep_newest:
        listing = "\n".join("  " + " and ".join(r["_dir"] for r in g) for g in repeated)
        raise DuplicateRuns(
            f"{sum(len(g) - 1 for g in repeated)} run(s) repeat another run's config and seed, which would count one "
            f"seed twice:\n{listing}\nRead one copy of each (make_tables.py --keep-newest keeps the newest "
            "summary.json of "
            f"each and lists the others)."
        )
    for group in repeated:
        group.sort(key=lambda r: Path(r["_dir"], "summary.json").stat().st_mtime)
        for old in group[:-1]:
            old.update(status="duplicate", error=f"same config and seed as {group[-1]['_dir']}, which is newer")
    return runs


def completed_runs(dirs) -> list[dict]:
    """The completed runs under `dirs`, each config and seed once (a repeat is a `DuplicateRuns` error);
    a ValueError naming the folders when there is none (FileNotFoundError for a folder that is not)."""
    runs = [r for r in drop_duplicates(load_runs(dirs)) if r.get("status") == "completed"]
    if not runs:
        raise ValueError(f"no completed run under {', '.join(map(str, dirs))}")
    return runs


def pairs(members: list[dict], baseline: list[dict], keys: tuple[str, ...]) -> list[tuple[dict, dict]]:
    """(member, baseline run) for each member whose config equals a baseline run's in everything
    but `keys` (and what they set). Two baseline runs that differ only in `keys` would make the
    pairing ambiguous: an error naming both."""
    base: dict[tuple, dict] = {}
    for r in baseline:
        other = base.setdefault(identity(r, keys), r)
        if other is not r:
            raise ValueError(
                f"ambiguous pairing on {', '.join(keys)}: {other['_dir']} and {r['_dir']} differ only "
                f"in those keys, so a run cannot be paired with one of them"
            )
    return [(r, base[ident]) for r in members if (ident := identity(r, keys)) in base]


def read_rows(run: dict, name: str) -> list[dict]:
    """The rows of a run's metrics.jsonl, diagnostics.jsonl or detector.jsonl ([] when the file is
    absent), in today's names; for a run read from a data file (`load_runs_file`), the rows it kept."""
    if "_rows" in run:
        return run["_rows"].get(name, [])
    path = Path(run["_dir"]) / name
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [upgrade_metrics_row(row) for row in rows] if run.get("_old_names") else rows


# What a data file leaves out of a summary: how the run was made, not what it measured or was.
_NOT_EXPORTED = ("traceback", "attempts", "overrides", "pid", "resumed_from")


def _rounded(value, digits: int = 7):
    """Floats to `digits` significant digits (a data file holds what the analysis reads, compactly)."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {k: _rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v, digits) for v in value]
    return value


def export_runs(
    path: Path | str, runs: list[dict], rows: dict[str, tuple[str, ...]], wants_rows, root: Path | str, meta: dict
) -> None:
    """A compact, deterministic data file of `runs` (gzipped JSON lines, floats to 7 significant digits):
    `meta` first, then each run's summary and config, its directory relative to `root`, and for the runs
    `wants_rows(run, name)` accepts, the `rows[name]` keys of each row of those files. Reading it back
    (`load_runs_file`) gives runs the analysis reads as it reads run directories. Written atomically."""
    import gzip
    import io

    from enlighten.results import atomic_write

    lines = [json.dumps({"meta": meta}, sort_keys=True)]
    for run in sorted(runs, key=lambda r: r["_dir"]):
        kept = {k: v for k, v in run.items() if k not in _NOT_EXPORTED and not k.startswith("_")}
        kept["_dir"] = str(Path(run["_dir"]).resolve().relative_to(Path(root).resolve()))
        kept["_rows"] = {
            name: [{k: row[k] for k in keys if k in row} for row in read_rows(run, name)]
            for name, keys in rows.items()
            if wants_rows(run, name)
        }
        lines.append(json.dumps(_rounded(kept), sort_keys=True))
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as f:  # mtime 0: the same runs give the same bytes
        f.write(("\n".join(lines) + "\n").encode())
    atomic_write(path, lambda f: f.write(buffer.getvalue()))


def load_runs_file(path: Path | str) -> tuple[dict, list[dict]]:
    """(meta, runs) of a data file written by `export_runs`, each run's config in today's layout (the
    file keeps it as its runs wrote it; its names are today's already)."""
    import gzip

    with gzip.open(path, "rt") as f:
        records = [json.loads(line) for line in f if line.strip()]
    if not records or "meta" not in records[0]:
        raise ValueError(f"{path} is not a runs data file (its first line holds no meta)")
    runs = records[1:]
    for run in runs:
        if isinstance(run.get("config"), dict):
            run["config"] = upgrade_config(run["config"], version_of(run))
            run["config_version"] = CONFIG_VERSION
    return records[0]["meta"], runs


# Summary metrics a comparison can use: (column title, scale, digits); accuracies read in points.
METRICS = {
    "final_test_acc": ("final test acc (%)", 100.0, 2),
    "final_test_bpc": ("final test bpc", 1.0, 3),
    "final_test_loss": ("final test loss", 1.0, 3),
    "final_val_acc": ("final val acc (%)", 100.0, 2),  # the validation split (dataset.val_fraction)
    "test_acc_at_best_val": ("test acc at best val (%)", 100.0, 2),
}


def paired_stats(
    members: list[dict], baseline: list[dict], key: str, metric: str = "final_test_acc"
) -> tuple[int, float, float, float, float] | None:
    """(pairs, mean difference of `metric` (accuracy in points), 95% CI low, high, paired t-test p),
    each member paired with the baseline run that has the same config except `key` (the compared key),
    the seed included; None without a pair; CI and p are nan with fewer than 2 pairs."""
    scale = METRICS.get(metric, ("", 1.0, 3))[1]
    has = [r for r in baseline if r.get(metric) is not None]
    matched = pairs([r for r in members if r.get(metric) is not None], has, (key,))
    if not matched:
        return None
    from enlighten.analysis.stats import paired  # scipy: only when a comparison is asked for

    t = paired([scale * m[metric] for m, _ in matched], [scale * b[metric] for _, b in matched])
    if len(matched) >= 2 and t.ci_low != t.ci_low:  # identical differences (small test sets): no t-test
        return t.n, t.effect, t.effect, t.effect, float("nan")
    return t.n, t.effect, t.ci_low, t.ci_high, t.p


def plan_deviations(plan: Path | str) -> list[str]:
    """The lines of an analysis plan's "Deviations" section (the changes made after it was committed),
    as a report lists them; ["None."] when it has none."""
    text = Path(plan).read_text() if Path(plan).exists() else ""
    if "\n## Deviations" not in text:
        return ["None."]
    section = text.split("\n## Deviations", 1)[1].split("\n## ", 1)[0]
    return section.split("\n", 1)[1].strip().splitlines() or ["None."]
