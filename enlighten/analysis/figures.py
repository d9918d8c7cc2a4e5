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
