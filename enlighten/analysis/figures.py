"""Pieces the figures share (the claims report, scripts/plot_tradeoff.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def band(ax, series: list[dict[int, float]], label: str, scale: float = 1.0, every_run: bool = True, **style) -> None:
    """Mean ± sd over runs at the steps every run measured (`every_run=False`: at every step some run
    measured, over the runs that did; series that stop at different steps, such as a detector's)."""
    series = [s for s in series if s]
    if not series:
        return
    steps = sorted(set.intersection(*(set(s) for s in series)) if every_run else set.union(*(set(s) for s in series)))
    if not steps:
        return
    at = [[scale * s[t] for s in series if t in s] for t in steps]
    mean = np.array([np.mean(v) for v in at])
    sd = np.array([np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in at])
    (line,) = ax.plot(steps, mean, label=f"{label} ({len(series)} seeds)", **style)
    ax.fill_between(steps, mean - sd, mean + sd, color=line.get_color(), alpha=0.2)


def save(fig, out_dir: Path, stem: str) -> str:
    """The figure as out_dir/stem.png, written atomically; returns the file name."""
    from enlighten.results import atomic_write

    fig.tight_layout()
    atomic_write(Path(out_dir) / f"{stem}.png", lambda f: fig.savefig(f, format="png", dpi=110))
    fig.clf()
    return f"{stem}.png"


def measure_keys(runs: list[dict]) -> list[str]:
    """Every measure in the runs' probe rows (`diag/<name>` with numbers), without the variants of one
    (per group `diag/<name>/<group>`, per lambda `diag/<name>@<lambda>`) and the rows' labels (the
    alpha measured at, `diag/pairing`, ...)."""
    from enlighten.analysis.runs import read_rows

    rows = [row for r in runs for row in read_rows(r, "diagnostics.jsonl")]
    numbers = {k for row in rows for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return sorted(
        k for k in numbers if k.startswith("diag/") and k.count("/") == 1 and "@" not in k and k != "diag/alpha"
    )


def measures_against_step(ax_of, groups: dict[str, list[dict]], keys: list[str], log_x: bool = True) -> None:
    """For each measure `keys[i]`, on the axes `ax_of(i)`: its probe rows against the step, mean ± sd over
    each group's runs (label: the group's name), and the group's ENP end, the median over its runs of
    `enp_end_step`, as a dotted line of the group's colour (none where no run's ENP ended)."""
    from enlighten.analysis.runs import read_rows

    for i, key in enumerate(keys):
        ax = ax_of(i)
        for name, runs in groups.items():
            series = [
                {
                    row["step"]: row[key]
                    for row in read_rows(r, "diagnostics.jsonl")
                    if "event" not in row and row.get(key) is not None
                }
                for r in runs
            ]
            if log_x:  # step 0 has no place on a log axis: initialization is drawn at step 0.5
                series = [{(0.5 if step == 0 else step): v for step, v in s.items()} for s in series]
            band(ax, series, name, every_run=False)
            ends = [r["enp_end_step"] for r in runs if r.get("enp_end_step") is not None]
            if ends and ax.lines:
                ax.axvline(float(np.median(ends)), color=ax.lines[-1].get_color(), linestyle=":", linewidth=1.2)
        ax.set_title(key)
        ax.set_xlabel("step (initialization at 0.5; dotted: the ENP end)" if log_x else "step (dotted: the ENP end)")
        if log_x:
            ax.set_xscale("log")
