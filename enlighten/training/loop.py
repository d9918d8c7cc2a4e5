"""The training loop, the project's only one (scripts/bench.py times this one, through run()).

Before each step the loop asks the phase detector for the step's phase record, and the strategy what
the batch becomes under it and how per-sample losses are reduced; after the step it reads what the
strategy did. Neither reaches into the loop. Metrics accumulate on the device and are read once per
`sync_every` steps and once per epoch, so the step has no host-device synchronization.

Data-parallel (several processes, `enlighten.training.distributed`): each process trains on its slice
of every global batch through DistributedDataParallel; everything a decision rests on (the loss and
accuracies a detector reads, evaluation, the epoch's metrics) is reduced over the processes, so every
process takes the same decisions at the same step.
"""

from __future__ import annotations

import contextlib
import math
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from enlighten.compat import CONFIG_VERSION
from enlighten.config import TrainerConfig
from enlighten.console import EpochProgress, log
from enlighten.diagnostics.monitor import NoDiagnostics
from enlighten.errors import Diverged, Interrupted
from enlighten.loggers.base import Logger
from enlighten.phase.base import Phase, PhaseDetector, Progress
from enlighten.results import RunResults
from enlighten.strategies.base import StepReport, Strategy, soft_cross_entropy
from enlighten.training import distributed
from enlighten.training.checkpoint import rng_state, save_checkpoint, set_rng_state
from enlighten.training.stopping import StopRequests


def bits(loss_nats: Optional[float]) -> Optional[float]:
    """Cross-entropy in nats per token -> bits per token (per character for a character-level model)."""
    return None if loss_nats is None else loss_nats / math.log(2)


class StepSignals:
    """What a phase detector may read after a step (`enlighten.phase.base.Signals`), from this
    trainer. Each value is computed only when asked for, and at most once per step."""

    def __init__(self, trainer: Trainer, loss: Tensor, x_clean: Tensor, y: Tensor) -> None:
        self._trainer, self._loss, self._x, self._y = trainer, loss, x_clean, y
        self._cache: dict = {}

    def _once(self, key, fn):
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    def loss(self) -> float:
        """The step's training loss (the objective as optimized; the mean over the processes)."""
        return self._once("loss", lambda: self._trainer.mean_over_processes(self._loss))

    def train_accuracy(self, n: int) -> float:
        """Clean accuracy (eval mode) on the first `n` samples of the fixed training probe."""
        t = self._trainer
        return self._once(("train", n), lambda: t.evaluate("train", t.train_probe[:n])[1])

    def val_accuracy(self, n: int) -> float:
        """Accuracy on the first `n` samples of the validation split (held out of the training images;
        never the test split, which decides nothing)."""
        t = self._trainer
        return self._once(("val", n), lambda: t.evaluate("val", t.val_probe[:n])[1])

    def batch_accuracy(self) -> float:
        """Clean accuracy (eval mode) on this step's training batch before any mixing (the global batch)."""
        return self._once("batch", lambda: self._trainer.batch_accuracy(self._x, self._y))

    def measured(self) -> dict:
        """What was asked for so far this step, by name (`train_acc` on a probe of `probe_size`)."""
        out = {}
        for key, value in self._cache.items():
            name, size = (key, None) if isinstance(key, str) else key
            out[{"loss": "train_loss", "batch": "batch_acc"}.get(name, f"{name}_acc")] = value
            if size is not None:
                out["probe_size"] = size
        return out


# Called on every process with the trainer and an epoch's metrics row once it is logged (before the epoch's
# checkpoint; `trainer.epoch` still counts the epochs before it), under its own random state.
EpochHook = Callable[["Trainer", dict], None]


@contextlib.contextmanager
def isolated_rng(data_generator: torch.Generator, device: torch.device):
    """Every random stream a run draws from (those a checkpoint saves) restored on exit, also when the
    body raises."""
    state = rng_state(data_generator, device)
    try:
        yield
    finally:
        set_rng_state(state, data_generator, device)


@dataclass(frozen=True)
class Runtime:
    """What the `auto` trainer settings became on this device and model (run() decides; the summary
    records it under `runtime`). Every other setting the Trainer reads from the trainer config itself."""

    bf16: bool = False
    fp16: bool = False  # float16 autocast with a gradient scaler (GPUs without bf16: V100, T4)
    channels_last: bool = False
    eval_batch_size: int = 1024


@dataclass
class HeldOut:
    """The held-out numbers of a run so far: the test split's last evaluation and, where the data hold
    a validation split, its last and best evaluation and the test accuracy at that best (what choosing
    the epoch on the validation split gives). The test split is never used to choose anything."""

    final_test_acc: Optional[float] = None
    final_test_loss: Optional[float] = None
    final_val_acc: Optional[float] = None
    final_val_loss: Optional[float] = None
    best_val_acc: Optional[float] = None
    best_val_step: Optional[int] = None
    test_acc_at_best_val: Optional[float] = None

    def update(self, step: int, test: tuple[float, float], val: Optional[tuple[float, float]]) -> None:
        """An evaluation at `step`: (loss, accuracy) on the test split, and on the validation split or None."""
        self.final_test_loss, self.final_test_acc = test
        if val is not None:
            self.final_val_loss, self.final_val_acc = val
            if self.best_val_acc is None or val[1] > self.best_val_acc:  # the first of equal bests
                self.best_val_acc, self.best_val_step, self.test_acc_at_best_val = val[1], step, test[1]

    def summary(self, has_val: bool, tokens: bool) -> dict:
        out = {
            "final_test_acc": self.final_test_acc,
            "final_test_loss": self.final_test_loss,
            **({"final_test_bpc": bits(self.final_test_loss)} if tokens else {}),
        }
        if has_val:
            out.update({k: v for k, v in vars(self).items() if k not in out})
        return out


@dataclass
class EpochTally:
    """What an epoch accumulates for its metrics row. A checkpoint taken within the epoch saves it, with
    the data-order generator as it was at the epoch's start: a resume draws the epoch's batches again
    and skips the `steps` already trained."""

    data_state: Tensor
    loss_sum: Tensor
    steps: int = 0
    enp_steps: int = 0
    mixing_steps: int = 0
    alpha_sum: float = 0.0
    dropped: int = 0  # samples left out of the loss by this process (since the last checkpoint within the epoch)
    dropped_summed: int = 0  # ... and by every process up to that checkpoint
    lr: float = 0.0
    diag_rows: list = field(default_factory=list)
    detector_rows: list = field(default_factory=list)  # what the phase detector measured, by step

    def add(self, phase: Phase, report: StepReport) -> None:
        """Count a step: its phase, and what the strategy reported it did."""
        self.enp_steps += phase.in_enp
        self.mixing_steps += report.mixed
        self.alpha_sum += report.alpha
        self.dropped += report.dropped

    def state_dict(self) -> dict:
        return {**vars(self), "loss_sum": self.loss_sum.cpu()}

    @classmethod
    def from_state(cls, state: dict, device: torch.device) -> EpochTally:
        return cls(**{**state, "loss_sum": state["loss_sum"].to(device)})


class Trainer:
    """Trains `model` on `data` for `cfg.epochs` epochs; `fit()` returns the summary numbers."""

    def __init__(
        self,
        cfg: TrainerConfig,
        model: nn.Module,
        data,
        strategy: Strategy,
        detector: PhaseDetector,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        results: RunResults,
        logger: Logger,
        generator: torch.Generator,
        device: torch.device,
        diagnostics=None,
        checkpoint_meta: Optional[Callable[[], dict]] = None,
        stop: Optional[StopRequests] = None,
        runtime: Runtime = Runtime(),
        on_epoch_end: Sequence[EpochHook] = (),
    ) -> None:
        self.cfg, self.model, self.data, self.runtime = cfg, model, data, runtime
        self.on_epoch_end = list(on_epoch_end)
        self.dist = distributed.current()
        # Only the training step runs through DDP (gradients averaged over the processes) and
        # compiled: evaluation (other batch sizes, eval mode) and the diagnostics use the plain
        # module, which shares its parameters, so nothing recompiles. Dynamo reuses the compiled graph
        # for a new instance of the same architecture, so the next job of a multirun in this process
        # does not compile again.
        train_model = model
        if self.dist.enabled:
            train_model = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
        self.train_model = torch.compile(train_model) if cfg.compile else train_model
        self.strategy, self.detector = strategy, detector
        self.optimizer, self.scheduler = optimizer, scheduler
        # Each parameter group's weight decay as configured: a step's plan multiplies it (Plan.weight_decay_scale).
        self.base_weight_decay = [g.get("weight_decay", 0.0) for g in optimizer.param_groups]
        # fp16's gradients underflow unless the loss is scaled up first; the scaler adapts the scale
        # (its state is in every checkpoint, so a resume continues with the same scale). Off: a no-op.
        self.scaler = torch.amp.GradScaler(device.type, enabled=runtime.fp16)
        self.results, self.logger = results, logger
        self.generator, self.device = generator, device
        self.steps_per_epoch = data.steps_per_epoch(cfg.batch_size)
        self.total_steps = cfg.total_steps(self.steps_per_epoch)
        self.num_epochs = math.ceil(self.total_steps / self.steps_per_epoch)  # with max_steps the last may be partial
        # Token data (language models): a sample is a sequence, accuracy is per token, and validation
        # also reports bits per token (per character for character-level models).
        self.tokens = data.tokens
        self.step = 0
        self.epoch = 0  # epochs finished
        self.elapsed_s = 0.0  # wall time of the finished epochs (carried over a resume)
        # Clean training accuracy is measured on a fixed probe subset of the training set,
        # un-augmented and un-mixed: accuracy on mixed batches is ill-defined.
        n = data.num_train if cfg.train_eval_samples == 0 else min(cfg.train_eval_samples, data.num_train)
        # Fixed random orders (seed 0, not the run's seed): a detector's probe is the first n of them.
        self.train_probe = torch.randperm(data.num_train, generator=torch.Generator().manual_seed(0))[:n]
        self.has_val = getattr(data, "num_val", 0) > 0  # a validation split (dataset.val_fraction)
        self.val_probe = torch.randperm(data.num_val if self.has_val else 0, generator=torch.Generator().manual_seed(0))
        self.enp_end_train_acc: Optional[float] = None
        self.held_out = HeldOut()
        # What run() stores with each checkpoint (its config, W&B id, attempts); None: write no checkpoints.
        self.checkpoint_meta = checkpoint_meta
        self.stop = stop or StopRequests()  # never entered: no signal is ever noted
        self.resumed_tally: Optional[EpochTally] = None  # a checkpoint taken within an epoch: where it stood
        self.interrupted: Optional[str] = None  # the name of the stop signal being acted on, if any (read by run())
        self.detector.setup(data.num_classes, self.steps_per_epoch, self.total_steps)
        self.diagnostics = diagnostics if diagnostics is not None else NoDiagnostics()
        self.diagnostics.setup(model, data, strategy)

    def state_dict(self, tally: Optional[EpochTally] = None) -> dict:
        """Everything needed to continue exactly as if never stopped: after the last finished epoch, or,
        with the `tally` of the epoch in progress, at the current step within it."""
        return {
            **(self.checkpoint_meta() if self.checkpoint_meta else {}),
            "config_version": CONFIG_VERSION,  # the layout of its config and state (enlighten.compat)
            "tally": tally.state_dict() if tally else None,
            "world_size": self.dist.world_size,
            "epoch": self.epoch,
            "step": self.step,
            "elapsed_s": self.elapsed_s,
            "held_out": vars(self.held_out).copy(),
            "enp_end_train_acc": self.enp_end_train_acc,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            **({"scaler": self.scaler.state_dict()} if self.runtime.fp16 else {}),
            "scheduler": self.scheduler.state_dict(),
            "detector": self.detector.state_dict(),
            "diagnostics": self.diagnostics.state_dict(),
            "rng": rng_state(self.generator, self.device),
            "results": {
                "metrics": self.results.metrics,
                "diagnostics": self.results.diagnostics,
                "detector": self.results.detector,
            },
        }

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.step, self.elapsed_s = state["epoch"], state["step"], state["elapsed_s"]
        self.held_out = HeldOut(**state["held_out"])
        self.enp_end_train_acc = state["enp_end_train_acc"]
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.runtime.fp16 and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.detector.load_state_dict(state["detector"])
        self.diagnostics.load_state_dict(state["diagnostics"])  # after the model: BENR starts from its weights
        set_rng_state(state["rng"], self.generator, self.device)
        self.results.restore(
            state["results"]["metrics"], state["results"]["diagnostics"], state["results"].get("detector", [])
        )
        self.resumed_tally = EpochTally.from_state(state["tally"], self.device) if state.get("tally") else None

    def autocast(self):
        if self.runtime.bf16 or self.runtime.fp16:
            return torch.autocast(
                device_type=self.device.type, dtype=torch.bfloat16 if self.runtime.bf16 else torch.float16
            )
        return contextlib.nullcontext()

    def _to_model_layout(self, x: Tensor) -> Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.runtime.channels_last and x.ndim == 4 else x

    def mean_over_processes(self, value: Tensor) -> float:
        """A per-process scalar averaged over the processes (a host read)."""
        (total,) = distributed.all_reduce_sum(value.detach().float())
        return total.item() / self.dist.world_size

    def _sync_buffers(self) -> None:
        """Every process takes the main process's batch-norm statistics before evaluating (each has
        updated its own copy on its own slice since DDP last broadcast them)."""
        if self.dist.enabled:
            for b in self.model.buffers():
                torch.distributed.broadcast(b, 0)

    @torch.no_grad()
    def batch_accuracy(self, x: Tensor, y: Tensor) -> float:
        self.model.eval()
        with self.autocast():
            acc = (self.model(self._to_model_layout(x)).argmax(-1) == y).float().mean()
        self.model.train()
        return self.mean_over_processes(acc)

    @torch.no_grad()
    def evaluate(self, split: str, indices: Optional[Tensor] = None) -> tuple[float, float]:
        """(mean cross-entropy, accuracy) on clean inputs with hard labels; for token data both are
        per token (every position of every sequence counts once)."""
        if indices is None:
            indices = torch.arange(
                {"train": self.data.num_train, "val": getattr(self.data, "num_val", 0), "test": self.data.num_test}[
                    split
                ]
            )
        if self.dist.enabled:  # each process evaluates its share; the sums are reduced
            indices = indices[self.dist.rank :: self.dist.world_size]
            self._sync_buffers()
        self.model.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        count = 0
        for x, y in self.data.eval_batches(split, self.runtime.eval_batch_size, indices):
            with self.autocast():
                logits = self.model(self._to_model_layout(x))
            loss_sum += F.cross_entropy(logits.flatten(0, -2).float(), y.flatten(), reduction="sum")
            correct += (logits.argmax(-1) == y).sum()
            count += y.numel()
        self.model.train()
        loss_sum, correct, count = distributed.all_reduce_sum(
            loss_sum, correct, torch.tensor(count, device=self.device)
        )
        return loss_sum.item() / count.item(), correct.item() / count.item()

    def train_step(self, x: Tensor, y: Tensor, phase: Phase) -> tuple[Tensor, StepReport]:
        """One optimizer step on the batch the strategy prepares for `phase`: the loss (on the device)
        and what the step did."""
        batch = self.strategy.prepare(x, y, phase)
        for group, base in zip(self.optimizer.param_groups, self.base_weight_decay):
            group["weight_decay"] = base * batch.plan.weight_decay_scale
        with self.autocast():
            logits = batch.forward(self.train_model, self._to_model_layout(batch.x))
        loss = batch.reduce(soft_cross_entropy(logits, batch.target))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.grad_clip:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.optimizer)  # skipped (and the scale lowered) when a gradient is not finite
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        return loss.detach(), batch.report()

    def _phase(self, epoch: int) -> Phase:
        """The phase record of the next step (one of `epoch`)."""
        return self.detector.phase(Progress(self.step, epoch, self.steps_per_epoch, self.total_steps))

    def _summed(self, counters: dict) -> dict:
        """Per-process counters (samples dropped, ...) summed over the processes."""
        if not self.dist.enabled or not counters:
            return counters
        totals = distributed.all_reduce_sum(
            torch.tensor(list(counters.values()), dtype=torch.float64, device=self.device)
        )[0]
        return {k: int(v) if isinstance(counters[k], int) else v for k, v in zip(counters, totals.tolist())}

    def _periodic_check(self, tally: EpochTally, epoch: int) -> Optional[int]:
        """Every `sync_every` steps: divergence, and on several processes the stop signal they agree on
        (in the same collective, so that all stop at the same step). One process acts on a signal after
        any step: that is a Python attribute read."""
        if self.step % self.cfg.sync_every:
            return None if self.dist.enabled else self.stop.received
        if not self.dist.enabled:
            if not torch.isfinite(tally.loss_sum):
                raise Diverged(self.step, epoch)
            return self.stop.received
        total, noted = distributed.all_reduce_sum(tally.loss_sum, self.stop.as_tensor(self.device))
        if not torch.isfinite(total):
            raise Diverged(self.step, epoch)
        return self.stop.agreed(noted)

    def _checkpoint_within(self, epoch: int, tally: EpochTally, start: float) -> Optional[str]:
        """A checkpoint at the current step of the epoch in progress (written by the main process; every
        process takes part, since the epoch's sums are reduced first)."""
        # What the processes summed so far: every process resumes with the mean loss (the epoch's mean
        # over processes is then exact) and the summed counters (added once, at the epoch's end).
        tally.loss_sum = torch.tensor(self.mean_over_processes(tally.loss_sum), device=self.device)
        tally.dropped_summed += self._summed({"dropped": tally.dropped})["dropped"]
        tally.dropped = 0
        if self.checkpoint_meta is None:
            return None
        tally.diag_rows = self.diagnostics.read(tally.diag_rows)  # plain values: the checkpoint holds no pending work
        self.elapsed_s = time.perf_counter() - start
        return str(save_checkpoint(self.results.run_dir, epoch, self.state_dict(tally), step=self.step))

    def _on_stop_signal(self, signum: int, epoch: int, tally: EpochTally, start: float) -> None:
        """Checkpoint here, then let the signal's earlier handler act (submitit: requeue and exit), or
        end the run when there was none."""
        self.stop.received = None
        name = signal.Signals(signum).name
        self.interrupted = name
        path = self._checkpoint_within(epoch, tally, start)
        if self.dist.main:
            log.info(f"{name} received: checkpoint at step {self.step} written to {path}.")
        if not self.stop.pass_on(signum):
            raise Interrupted(signum, self.step, path)
        self.interrupted = None  # the earlier handler let the run go on

    def _at_enp_end(self, epoch: int, tally: EpochTally, signals: StepSignals) -> None:
        """The ENP ended at this step: the clean training accuracy here, and the diagnostics' ENP-end rows."""
        self.enp_end_train_acc = signals.train_accuracy(len(self.train_probe))
        after = self._phase(epoch + (tally.steps >= self.steps_per_epoch))  # the next step's record
        tally.diag_rows += self.diagnostics.at_enp_end(self.step, epoch, after)
        rank = f"[rank {self.dist.rank}] " if self.dist.enabled else ""
        log.info(f"{rank}ENP ended at step {self.step} (epoch {epoch}, {self.detector.end.reason})")

    def _epoch_row(
        self, epoch: int, tally: EpochTally, train_loss: float, train_acc: float, test, val, dropped: int, diag_cols
    ) -> dict:
        """The epoch's metrics.jsonl row, without its timings (added by the caller)."""
        return {
            "epoch": epoch,
            "step": self.step,
            "lr": tally.lr,
            "train_loss": train_loss,
            "train_acc": train_acc,
            **({"val_loss": val[0], "val_acc": val[1]} if self.has_val else {}),
            "test_loss": test[0],
            "test_acc": test[1],
            **({"test_bpc": bits(test[0])} if self.tokens else {}),
            "alpha": tally.alpha_sum / tally.steps,
            "mixing": tally.mixing_steps / tally.steps,
            "in_enp": tally.enp_steps / tally.steps,
            "dropped": dropped,
            **diag_cols,
        }

    def _publish(self, epoch: int, row: dict, diag_rows: list[dict], detector_rows: list[dict]) -> None:
        """The epoch's rows to the run's files, the logger and the console."""
        # in step order: W&B drops a row logged at a step before its latest
        for r in sorted(diag_rows + [{**r, "event": "detector"} for r in detector_rows], key=lambda r: r["step"]):
            self.logger.log_probe(r)
        self.results.log_diagnostics(diag_rows)
        self.results.log_detector(detector_rows)
        self.results.log_epoch(row)
        self.logger.log_metrics(row, step=self.step)
        held_out = "".join(
            f"  {k} {row[k]:.{3 if k.endswith('bpc') else 4}f}"
            for k in ("val_acc", "test_acc", "test_bpc")
            if row.get(k) is not None
        )
        if self.dist.main:  # one line per epoch, not one per process
            log.info(
                f"epoch {epoch} of {self.num_epochs}  step {self.step}  loss {row['train_loss']:.4f}  train_acc "
                f"{row['train_acc']:.4f}{held_out}  {row['samples_per_sec']:.0f} samples/s"
            )

    def fit(self) -> dict:
        progress = EpochProgress(
            self.steps_per_epoch, self.num_epochs, self.cfg.progress_every_s, enabled=self.dist.main
        )
        with progress:
            return self._fit(progress)

    def _fit(self, progress: EpochProgress) -> dict:
        cfg = self.cfg
        start = time.perf_counter() - self.elapsed_s
        self.model.train()
        # Step 0: the diagnostics at initialization, before the first step (never again on a resume).
        initial_rows = self.diagnostics.start(self._phase(0)) if self.step == 0 else []
        for epoch in range(self.epoch, self.num_epochs):
            tally, self.resumed_tally = self.resumed_tally, None
            if tally is None:
                tally = EpochTally(
                    self.generator.get_state(), torch.zeros((), device=self.device), diag_rows=initial_rows
                )
            else:  # within the epoch: its batches are drawn again from where they were drawn the first time
                self.generator.set_state(tally.data_state)
            initial_rows = []
            t0, steps_before = time.perf_counter(), tally.steps
            progress.start(epoch, tally.steps)
            shard = (self.dist.rank, self.dist.world_size)
            # A schedule that turns augmentation off is asked before each batch is cut (the draws stay the same).
            augment = (
                {"augment": lambda epoch=epoch: self.strategy.plan(self._phase(epoch)).augment}
                if self.strategy.schedule.schedules_augmentation
                else {}
            )
            for x, y in self.data.train_batches(cfg.batch_size, self.generator, shard, start=tally.steps, **augment):
                if self.step >= self.total_steps:  # trainer.max_steps reached inside this epoch
                    break
                tally.steps += 1
                phase = self._phase(epoch)
                tally.lr = self.optimizer.param_groups[0]["lr"]
                loss, report = self.train_step(x, y, phase)
                tally.add(phase, report)
                tally.loss_sum += loss
                progress.step()
                signals = StepSignals(self, loss, x, y)
                self.detector.observe(Progress(self.step, epoch, self.steps_per_epoch, self.total_steps), signals)
                if measured := signals.measured():
                    tally.detector_rows.append({"step": self.step, "epoch": epoch, **measured})
                tally.diag_rows += self.diagnostics.after_step(self.step, phase)
                if phase.in_enp and not self.detector.in_enp:  # the ENP ended at this step
                    self._at_enp_end(epoch, tally, signals)
                if (signum := self._periodic_check(tally, epoch)) is not None:
                    self._on_stop_signal(signum, epoch, tally, start)
                elif (
                    cfg.checkpoint_every_steps
                    and self.step % cfg.checkpoint_every_steps == 0
                    and tally.steps < self.steps_per_epoch
                    and self.step < self.total_steps
                ):  # not at an epoch's end
                    self._checkpoint_within(epoch, tally, start)
            progress.close()
            if tally.steps == 0:  # a forced resume (other batch size or max_steps) found the budget already spent
                break
            train_loss = self.mean_over_processes(tally.loss_sum) / tally.steps  # the epoch's one sync
            train_time = time.perf_counter() - t0
            if not math.isfinite(train_loss):
                raise Diverged(self.step, epoch)
            _, train_acc = self.evaluate("train", self.train_probe)
            diag_rows = self.diagnostics.read(tally.diag_rows)  # the epoch's measurements, read in one go
            diag_cols = self.diagnostics.end_epoch(epoch)
            # The budget can run out before num_epochs when a forced resume changed the batch size.
            last = epoch == self.num_epochs - 1 or self.step >= self.total_steps
            test = val = (None, None)  # (loss, accuracy), null on epochs without evaluation
            if (epoch + 1) % cfg.eval_every == 0 or last:
                test, val = self.evaluate("test"), (self.evaluate("val") if self.has_val else None)
                self.held_out.update(self.step, test, val)
            dropped = self._summed({"dropped": tally.dropped})["dropped"] + tally.dropped_summed  # a collective
            row = self._epoch_row(epoch, tally, train_loss, train_acc, test, val, dropped, diag_cols)
            # samples (sequences for token data) per second, over the steps this process trained
            row["samples_per_sec"] = (tally.steps - steps_before) * cfg.batch_size / train_time
            row["wall_time_s"] = time.perf_counter() - start
            self._publish(epoch, row, diag_rows, tally.detector_rows)
            for hook in self.on_epoch_end:
                with isolated_rng(self.generator, self.device):  # a hook never changes what training draws next
                    hook(self, row)
            self.epoch, self.elapsed_s = epoch + 1, row["wall_time_s"]
            if self.checkpoint_meta is not None and (
                last or (cfg.checkpoint_every and self.epoch % cfg.checkpoint_every == 0)
            ):
                save_checkpoint(self.results.run_dir, self.epoch, self.state_dict())
            if last:
                break
        return {
            **self.held_out.summary(self.has_val, self.tokens),
            "epochs": self.epoch,  # trained, normally num_epochs
            "steps": self.step,
            **self.detector.summary(),
            "enp_end_train_acc": self.enp_end_train_acc,
            **self.diagnostics.summary(),
        }
