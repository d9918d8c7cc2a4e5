"""One row per run, for pandas: where it is, how it ended, its group choices, the settings that vary
between the runs collected, and the summary's numbers.

    rows = collect(load_runs(["multirun/2026-12-01/10-00-00_48213a1f2"]))

Columns: `run_dir`, `status`; each group choice under its group's name (`strategy`, `model`, ...);
each config key whose value differs between the runs under its dotted name (`mix.alpha`, `seed`;
result-neutral settings such as paths and the logger left out); then every scalar of summary.json
under its own name (`final_test_acc`, `enp_end_step`, `enp_mean/diag/zero_act`, `runtime.device`, ...);
then where the last attempt ran and with what (`provenance.code.commit`, `provenance.code.dirty`,
`provenance.software.torch`, `provenance.slurm.job_id`, ..., and `device_name`, `attempts`: their number).
Lists and dicts in a setting are written as JSON text. Jobs that started but wrote no summary are
rows with status `missing`.

`curves(runs)`: the learning curves in long format, one row per run, file, step and measure:
`run_dir`, the group choices and the varying settings (as above), then `file` (`metrics` or
`diagnostics`), `step`, `epoch`, `measure` (`test_acc`, `diag/zero_act`, ...) and `value`; for
plotting and modelling with pandas (`df.pivot_table(...)`, seaborn's `hue=`).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from enlighten.analysis.runs import read_rows
from enlighten.config import RESULT_NEUTRAL_KEYS, flatten, under
from enlighten.results import RUN_RECORD_KEYS, atomic_write, atomic_write_text

# Summary entries that are not results: the config (its varying keys are columns already), the
# choices (columns of their own), and bookkeeping too long for a cell.
FORMATS = (".csv", ".parquet")


def _cell(value):
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def _identities(runs: list[dict]) -> list[dict]:
    """Per run: `run_dir`, the group choices and the settings that vary between `runs` (dotted names)."""
    settings = [flatten(run.get("config") or {}) for run in runs]
    known = [s for s in settings if s]  # a job that wrote no summary has no config: it sweeps nothing
    swept = sorted(
        k
        for k in set().union(*known)
        if not under(k, RESULT_NEUTRAL_KEYS) and len({json.dumps(s.get(k), sort_keys=True) for s in known}) > 1
    )
    return [
        {"run_dir": run["_dir"], **run.get("choices", {}), **{k: _cell(setting.get(k)) for k in swept}}
        for run, setting in zip(runs, settings)
    ]


def _same_columns(rows: list[dict]) -> list[dict]:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    return [{c: row.get(c) for c in columns} for row in rows]


def collect(runs: list[dict]) -> list[dict]:
    """The rows, in the order of `runs`; every row has every column (None where a run has no value)."""
    rows = []
    for run, identity in zip(runs, _identities(runs)):
        results = flatten({k: v for k, v in run.items() if k not in (*RUN_RECORD_KEYS, "_dir")})
        last = (run.get("attempts") or [{}])[-1]
        rows.append(
            {
                "run_dir": identity["run_dir"],
                "status": run.get("status"),
                **identity,
                **{k: v for k, v in results.items() if k != "status" and not isinstance(v, (list, dict))},
                **(
                    {"attempts": len(run["attempts"]), "device_name": last.get("device_name")}
                    if run.get("attempts")
                    else {}
                ),
                **flatten({"provenance": last.get("provenance") or {}}),
            }
        )
    return _same_columns(rows)


CURVE_FILES = {"metrics": "metrics.jsonl", "diagnostics": "diagnostics.jsonl"}
_NOT_MEASURES = {"step", "epoch"}


def curves(runs: list[dict]) -> list[dict]:
    """The learning curves in long format (see the module's docstring): numbers only (a null, a flag
    such as `in_enp` true/false as 1/0, never a string)."""
    rows = []
    for run, identity in zip(runs, _identities(runs)):
        for file, name in CURVE_FILES.items():
            for row in read_rows(run, name):
                where = {"file": file, "step": row.get("step"), "epoch": row.get("epoch")}
                rows += [
                    {**identity, **where, "measure": key, "value": float(value)}
                    for key, value in row.items()
                    if key not in _NOT_MEASURES and isinstance(value, (int, float))
                ]
    return _same_columns(rows)


def _numeric_columns_as_float(rows: list[dict]) -> None:
    """A column of ints and floats (alpha 1 and 0.2) as floats: Parquet holds one type per column."""
    for column in rows[0] if rows else ():
        values = [r[column] for r in rows if r[column] is not None]
        if (
            values
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            and any(isinstance(v, float) for v in values)
        ):
            for r in rows:
                r[column] = None if r[column] is None else float(r[column])


def write_rows(rows: list[dict], path: Path | str) -> None:
    """CSV or Parquet by the file's suffix, written atomically."""
    path = Path(path)
    if path.suffix == ".csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["run_dir", "status"])
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(path, out.getvalue())
    elif path.suffix == ".parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as e:
            raise SystemExit(f"{path}: Parquet needs pyarrow (pip install pyarrow), or write .csv instead.") from e
        _numeric_columns_as_float(rows)
        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows), buffer)
        atomic_write(path, lambda f: f.write(buffer.getbuffer()))
    else:
        raise SystemExit(f"{path}: the output must end in {' or '.join(FORMATS)}.")
