"""When and on what the measures run during training (`diagnostics=default`; `diagnostics=off`).

The loop calls four hooks; the monitor never changes training (its own random generator, gradients
through `torch.autograd.grad`, batch-norm statistics restored, eval-mode probes):

    monitor.setup(model, data, strategy)      # once: fixed probe batch, parameter snapshots
    row = monitor.after_step(step, epoch, in_enp)  # every step: BENR path; on the cadence a row
    row = monitor.at_enp_end(step, epoch)     # activation revival where the ENP ends
    cols = monitor.end_epoch(epoch)           # per-epoch columns for metrics.jsonl
    monitor.summary()                         # means over the ENP for summary.json
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn

from enlighten.diagnostics.measures import (
    BatchEpochNormRatio,
    activation_stats,
    gradient_interference,
    mix_batch,
    penultimate_features,
    trajectory_distance,
)
from enlighten.diagnostics.stiffness import stiffness

ENP_MEAN_KEYS = ("diag/cos", "diag/r_perp_clean", "diag/zero_act")


class Diagnostics:
    """Gradient interference every `every_steps` steps (`enp_every_steps` during the ENP) on a fixed
    probe batch of `probe_size` training samples; activation revival on the same cadence, at the ENP
    end and every epoch; BENR and ATD every epoch; stiffness (off by default) on the cadence.

    `alpha` is Mixup's alpha for measuring interference while the strategy does not mix (vanilla,
    High-Loss Removal, a paused Mixup), so the effect is measured whatever the strategy does.
    """

    def __init__(
        self,
        alpha: float = 1.0,
        label_smoothing: float = 0.0,
        every_steps: int = 100,
        enp_every_steps: int = 25,
        probe_size: int = 64,
        seed: int = 0,
        interference: bool = True,
        activations: bool = True,
        benr: bool = True,
        atd: bool = True,
        stiffness: bool = False,
        stiffness_samples: int = 16,
    ) -> None:
        if every_steps < 1 or enp_every_steps < 1 or probe_size < 2:
            raise ValueError("diagnostics.every_steps and enp_every_steps must be >= 1, probe_size >= 2.")
        if alpha <= 0:
            raise ValueError(f"diagnostics.alpha must be > 0 (Mixup's alpha for measuring), got {alpha}.")
        self.alpha, self.label_smoothing = alpha, label_smoothing
        self.every_steps, self.enp_every_steps = every_steps, enp_every_steps
        self.probe_size, self.seed = probe_size, seed
        self.do_interference, self.do_activations = interference, activations
        self.do_benr, self.do_atd = benr, atd
        self.do_stiffness, self.stiffness_samples = stiffness, stiffness_samples
        self.rng = np.random.default_rng(seed)  # never numpy's global stream, which Mixup uses
        self.enp_rows: list[dict] = []
        self.epoch_rows: list[dict] = []
        self.prev_features: Optional[torch.Tensor] = None
        self.benr: Optional[BatchEpochNormRatio] = None

    def setup(self, model: nn.Module, data, strategy) -> None:
        self.model, self.strategy = model, strategy
        self.num_classes = data.num_classes
        # Token ids (language models) cannot be mixed and a sequence has no single class: interference,
        # stiffness and mixed-input activations are skipped there.
        self.can_mix = not data.tokens
        if not self.can_mix and (self.do_interference or self.do_stiffness):
            print(f"diagnostics: {data.name} gives token ids, which cannot be mixed: gradient interference, stiffness "
                  f"and the activations of mixed inputs are not measured (clean activations, BENR and ATD are).",
                  flush=True)
        n = min(self.probe_size - self.probe_size % 2, data.num_train)
        idx = torch.randperm(data.num_train, generator=torch.Generator().manual_seed(self.seed))[:n]
        self.x, self.y = next(iter(data.eval_batches("train", n, idx)))
        if self.do_benr:
            self.benr = BatchEpochNormRatio(list(model.parameters()))

    def _alpha(self, in_enp: bool) -> float:
        return self.strategy.alpha(in_enp) if self.strategy.mixing(in_enp) and self.strategy.alpha(in_enp) > 0 else self.alpha

    def _activations(self, lam: float) -> dict:
        clean = activation_stats(self.model, [self.x])
        if not self.can_mix:
            return clean
        x_mix, _ = mix_batch(self.x, self.y, lam, self.num_classes)
        return {**clean, **activation_stats(self.model, [x_mix], "diag/zero_act_mix")}

    def measure(self, in_enp: bool) -> dict:
        alpha = self._alpha(in_enp)
        lam = float(self.rng.beta(alpha, alpha))
        row: dict = {"diag/alpha": alpha, "diag/lam": lam}
        with torch.random.fork_rng(devices=[self.x.device] if self.x.is_cuda else []):
            if self.do_interference and self.can_mix:
                row.update(gradient_interference(self.model, self.x, self.y, lam, self.num_classes, self.label_smoothing))
            if self.do_activations:
                row.update(self._activations(lam))
            if self.do_stiffness and self.can_mix:
                row.update(stiffness(self.model, self.x[: self.stiffness_samples], self.y[: self.stiffness_samples]))
        return row

    def after_step(self, step: int, epoch: int, in_enp: bool) -> Optional[dict]:
        if self.benr is not None:
            self.benr.step()
        if (step - 1) % (self.enp_every_steps if in_enp else self.every_steps):
            return None  # measured after steps 1, 1 + every, ...: the first row is at initialization
        row = {"step": step, "epoch": epoch, "in_enp": in_enp, **self.measure(in_enp)}
        self.epoch_rows.append(row)
        if in_enp:
            self.enp_rows.append(row)
        return row

    def at_enp_end(self, step: int, epoch: int) -> dict:
        lam = float(self.rng.beta(self.alpha, self.alpha))
        with torch.random.fork_rng(devices=[self.x.device] if self.x.is_cuda else []):
            return {"step": step, "epoch": epoch, "event": "enp_end", **self._activations(lam)}

    @torch.no_grad()
    def end_epoch(self, epoch: int) -> dict:
        """This epoch's columns: the mean of its step-level measurements, then the end-of-epoch ones
        (activation revival of the clean probe at the epoch's end, BENR, ATD) on top."""
        keys = {k for r in self.epoch_rows for k in r if k.startswith("diag/")}
        out: dict = {k: float(np.mean([r[k] for r in self.epoch_rows if k in r])) for k in sorted(keys)}
        self.epoch_rows = []
        if self.do_activations:
            out.update(activation_stats(self.model, [self.x]))
        if self.benr is not None:
            out["diag/benr"] = self.benr.end_epoch()
        if self.do_atd:
            was_training = self.model.training
            self.model.eval()
            features = penultimate_features(self.model, self.x).float()
            self.model.train(was_training)
            if self.prev_features is not None:
                out.update(trajectory_distance(self.prev_features, features))
            self.prev_features = features
        return out

    def state_dict(self) -> dict:
        """At an epoch's end: the generator, the ENP rows and the features ATD compares with."""
        return {"rng": self.rng.bit_generator.state, "enp_rows": self.enp_rows, "prev_features": self.prev_features}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.enp_rows = list(state["enp_rows"])
        prev = state["prev_features"]  # checkpoints load onto the CPU
        self.prev_features = None if prev is None else prev.to(self.x.device)
        if self.benr is not None:  # at an epoch's end BENR's two copies both equal the current weights
            self.benr = BatchEpochNormRatio(list(self.model.parameters()))

    def summary(self) -> dict:
        """Means over the measurements taken during the ENP (null where there were none)."""
        out = {}
        for key in ENP_MEAN_KEYS:
            values = [r[key] for r in self.enp_rows if key in r]
            out[f"enp_mean/{key}"] = float(np.mean(values)) if values else None
        return out


class NoDiagnostics:
    """`diagnostics=off`: every hook does nothing."""

    def setup(self, model, data, strategy) -> None:
        pass

    def after_step(self, step: int, epoch: int, in_enp: bool) -> None:
        return None

    def at_enp_end(self, step: int, epoch: int) -> None:
        return None

    def end_epoch(self, epoch: int) -> dict:
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def summary(self) -> dict:
        return {}
