"""When and on what the measures run during training (`diagnostics=default`; `diagnostics=off`).

The loop calls these hooks; the monitor never changes training (gradients through
`torch.autograd.grad`, batch-norm statistics restored, its own random generators, torch's forked):

    rows = monitor.start(phase)                     # before the first step: the rows of step 0
    rows = monitor.after_step(step, phase)          # every step: BENR's path; rows on the cadence
    rows = monitor.at_enp_end(step, epoch, phase)   # where the ENP ends (`phase`: the next step's)
    rows = monitor.read(rows)                       # at the epoch's end: values read in one go
    cols = monitor.end_epoch(epoch)                 # per-epoch columns for metrics.jsonl
    monitor.summary()                               # ENP means and dataset-scope values for summary.json

Measurements queue their work on the device and return 0-d tensors; the loop reads a whole epoch's
rows once (`read`), so measuring adds no host-device sync inside the epoch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Optional

import numpy as np
import torch
from torch import nn

from enlighten.diagnostics.base import PROBE_STREAM, Measure, Probe, stream_generator
from enlighten.diagnostics.measures import read_values
from enlighten.phase.base import Phase
from enlighten.strategies.mixing import PAIRINGS, partners


def on_grid(step: int, first: int = 1) -> bool:
    """The step grid every run shares: 0 (initialization) and the steps 1, 2, 5 x 10^k from `first` on
    (`first` 10: 10, 20, 50, 100, ...), dense early where the ENP is, a few rows per decade after."""
    if step == 0:
        return True
    if step < first:
        return False
    while step % 10 == 0:
        step //= 10
    return step in (1, 2, 5)


class Diagnostics:
    """The measures (`measures`: name -> a `Measure`, or None for one turned off; docs/diagnostics.md)
    on the probe, a fixed batch of `probe_size` training samples drawn from `seed`.

    Probe rows go to diagnostics.jsonl at the steps of the shared grid (`on_grid` from `grid_from`), every
    `enp_every_steps` steps during the ENP and every `every_steps` steps after it, at the ENP end,
    and at initialization (step 0); each measure adds its values to the row (`Measure.row`) and may
    write rows of its own (the dataset scope). The per-epoch columns go to metrics.jsonl. The monitor
    keeps the ENP's rows for the summary's ENP means (`Measure.enp_means`) and the measures' state for
    a resume.
    """

    def __init__(
        self,
        measures: Mapping[str, Optional[Measure]],
        every_steps: int = 1000,
        enp_every_steps: int = 50,
        probe_size: int = 64,
        seed: int = 0,
        grid_from: int = 10,
    ) -> None:
        for name, value in (
            ("every_steps", every_steps),
            ("enp_every_steps", enp_every_steps),
            ("grid_from", grid_from),
        ):
            if value < 1:
                raise ValueError(f"diagnostics.{name} must be >= 1, got {value}.")
        if probe_size < 2:
            raise ValueError(f"diagnostics.probe_size must be >= 2, got {probe_size}.")
        if seed < 0:
            raise ValueError(f"diagnostics.seed must be >= 0, got {seed}.")
        for name, measure in measures.items():
            if measure is not None and not isinstance(measure, Measure):
                raise ValueError(
                    f"diagnostics.measures.{name} is a {type(measure).__name__}, not a Measure "
                    f"(enlighten.diagnostics.base.Measure): give it a _target_ that builds one, or null to turn it off."
                )
        for name, measure in measures.items():  # a measure on the first `samples` of the probe
            if measure is not None and getattr(measure, "samples", 0) > probe_size:
                raise ValueError(
                    f"diagnostics.measures.{name}.samples={measure.samples} is more than the probe holds "
                    f"(diagnostics.probe_size={probe_size}): lower it, or raise diagnostics.probe_size."
                )
        self.measures = {name: m for name, m in measures.items() if m is not None}
        self.every_steps, self.enp_every_steps = every_steps, enp_every_steps
        self.probe_size, self.seed, self.grid_from = probe_size, seed, grid_from
        self.enp_rows: list[dict] = []
        self.enp_ended = False

    def check(self, strategy) -> None:
        """Settings the measures can check against the strategy, before the data is loaded."""
        for measure in self.measures.values():
            measure.check(strategy)

    def setup(self, model: nn.Module, data, strategy) -> None:
        # The probe and its pairs are fixed for the run (drawn from the run's seed): rows at different
        # steps differ only by the weights.
        g = stream_generator(self.seed, PROBE_STREAM)
        n = min(self.probe_size - self.probe_size % 2, data.num_train)
        idx = torch.randperm(data.num_train, generator=g)[:n]
        x, y = next(iter(data.eval_batches("train", n, idx)))
        probe_partners = {p: partners(n, p, x.device, g) for p in PAIRINGS}
        self.probe = Probe(model, data, strategy, x, y, probe_partners, self.seed)
        for measure in self.measures.values():
            measure.setup(self.probe)

    def _forked(self):
        """Torch's random streams as they were, afterwards (dropout in a measurement's forwards)."""
        x = self.probe.x
        return torch.random.fork_rng(devices=[x.device] if x.is_cuda else [])

    # ---------------------------------------------------------------------------------------- the rows
    def measure(self, phase: Phase) -> dict:
        row: dict = {}
        with self._forked():
            for measure in self.measures.values():
                row.update(measure.row(phase))
        return row

    def _own_rows(self, step: int, epoch: int, phase: Phase, enp_end: bool) -> list[dict]:
        return [r for m in self.measures.values() for r in m.own_rows(step, epoch, phase, enp_end)]

    def _rows(self, step: int, phase: Phase) -> list[dict]:
        rows = []
        grid = on_grid(step, self.grid_from)
        in_enp, epoch = phase.in_enp, phase.epoch
        if grid or step % (self.enp_every_steps if in_enp else self.every_steps) == 0:
            row = {"step": step, "epoch": epoch, "in_enp": in_enp, "grid": grid, **self.measure(phase)}
            rows.append(row)
            if in_enp:
                self.enp_rows.append(row)
        return rows + self._own_rows(step, epoch, phase, enp_end=False)

    def start(self, phase: Phase) -> list[dict]:
        """The rows of step 0 (at initialization, before the first step; `phase`: the first step's)."""
        return self._rows(0, phase)

    def after_step(self, step: int, phase: Phase) -> list[dict]:
        """`step`: the steps done; `phase`: the record the step just taken trained under."""
        for measure in self.measures.values():
            measure.after_step()
        return self._rows(step, phase)

    def at_enp_end(self, step: int, epoch: int, phase: Phase) -> list[dict]:
        """Where the ENP ended, at `step` of `epoch`: the probe measured as training goes on from here
        (`phase`: the next step's record)."""
        self.enp_ended = True
        rows = [{"step": step, "epoch": epoch, "event": "enp_end", **self.measure(phase)}]
        return rows + self._own_rows(step, epoch, phase, enp_end=True)

    def read(self, rows: list[dict]) -> list[dict]:
        """The epoch's rows with their values read from the device, in place and in one read."""
        return read_values([r for r in rows if r])

    @torch.no_grad()
    def end_epoch(self, epoch: int) -> dict:
        """This epoch's columns, each measured at the epoch's end, read in one go."""
        out: dict = {}
        for measure in self.measures.values():
            with self._forked():
                out.update(measure.end_epoch())
        return read_values([out])[0]

    # ------------------------------------------------------------------------------------- persistence
    def state_dict(self) -> dict:
        """The ENP rows (read), whether the ENP ended, and each measure's state (the probe and its
        pairs are drawn again from the seed)."""
        return {
            "enp_rows": self.enp_rows,
            "enp_ended": self.enp_ended,
            "measures": {name: m.state_dict() for name, m in self.measures.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        """Called after the model's weights are loaded (BENR starts from them)."""
        self.enp_rows = list(state["enp_rows"])
        self.enp_ended = state.get("enp_ended", False)
        for name, measure in self.measures.items():
            measure.load_state_dict(state["measures"].get(name, {}))

    def summary(self) -> dict:
        """Means over the probe rows measured during the ENP (null when the ENP never ended: a mean
        over a whole run is not an ENP mean), and the measures' own values."""
        out: dict = {}
        for key in (k for m in self.measures.values() for k in m.enp_means):
            values = [r[key] for r in self.enp_rows if r.get(key) is not None]
            out[f"enp_mean/{key}"] = float(np.mean(values)) if values and self.enp_ended else None
        for measure in self.measures.values():
            out.update(measure.summary())
        return out


class NoDiagnostics:
    """`diagnostics=off`: every hook does nothing."""

    def check(self, strategy) -> None:
        pass

    def setup(self, model, data, strategy) -> None:
        pass

    def start(self, phase) -> list[dict]:
        return []

    def after_step(self, step: int, phase) -> list[dict]:
        return []

    def at_enp_end(self, step: int, epoch: int, phase) -> list[dict]:
        return []

    def read(self, rows: list[dict]) -> list[dict]:
        return rows

    def end_epoch(self, epoch: int) -> dict:
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def summary(self) -> dict:
        return {}
