"""One run, from a composed config to its result files: validate, build, train, summarize.

`train.py` calls `run(cfg)`; tests call it too, with configs from Hydra's compose API.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import random
import resource
import socket
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from enlighten.callbacks import check_launcher, swept_overrides
from enlighten.compat import CONFIG_VERSION
from enlighten.config import ConfigError, build, check_arm, config_differences, validate, without_applied
from enlighten.console import into_log_files, log, result_line, show_messages
from enlighten.data.base import InMemoryData
from enlighten.data.reuse import load_dataset
from enlighten.diagnostics.base import LABEL_NOISE_STREAM, stream_generator
from enlighten.diagnostics.monitor import NoDiagnostics
from enlighten.errors import Interrupted, UserError
from enlighten.loggers.base import Logger, NoLogger
from enlighten.models.layers import is_weight
from enlighten.provenance import provenance
from enlighten.results import (
    SUMMARY_FILE,
    RunDirectoryBusy,
    RunDirLock,
    RunResults,
    completed_before,
    earlier_summary,
    write_json,
)
from enlighten.training import distributed
from enlighten.training.checkpoint import CheckpointError, load_latest, prune_checkpoints, set_aside_checkpoints
from enlighten.training.loop import Diverged, EpochHook, Runtime, Trainer
from enlighten.training.stopping import StopRequests

# Set by SLURM in a job that was given GPUs: there, `auto` finding no CUDA is a mistake to shout about.
GPU_JOB_VARIABLES = ("SLURM_GPUS_ON_NODE", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        given = [f"{v}={os.environ[v]}" for v in GPU_JOB_VARIABLES if os.environ.get(v)]
        if given:
            log.warning(
                f"trainer.device=auto found no CUDA device although this job was given GPUs ({', '.join(given)}): "
                f"it trains on the CPU, likely far slower. Check the CUDA build of torch and the driver on this "
                f"node, or use trainer.device=cuda to fail instead."
            )
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("trainer.device=cuda but no CUDA device is available; use trainer.device=cpu or auto.")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> str:
    """`auto`: bf16 on a GPU that supports it, else fp16 (with a gradient scaler) on a GPU; fp32 on a CPU."""
    if name != "auto":
        return name
    if device.type != "cuda":
        return "fp32"
    # bf16 in hardware from compute capability 8 (A100, H100); older GPUs (V100, T4) emulate it slowly
    return "bf16" if torch.cuda.get_device_capability(device) >= (8, 0) else "fp16"


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, numpy (timm's Mixup draws lambda there) and torch; every seed, 0 included."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    # Set both ways: a multirun runs its jobs in one process, and the previous job's mode must not leak.
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic


def params_digest(model: torch.nn.Module) -> str:
    """SHA-1 of the parameters' bytes: equal digests mean equal weights (runs paired by seed start
    from the same point)."""
    digest = hashlib.sha1()
    for p in model.parameters():
        digest.update(p.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def peak_memory(device: torch.device) -> dict:
    """Peak resident memory of this process so far (in a multirun: of all its jobs up to this one)
    and, on CUDA, this run's peak allocated and reserved device memory, in MiB."""
    peak = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}  # KiB on Linux
    if device.type == "cuda":
        peak["peak_cuda_allocated_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        peak["peak_cuda_reserved_mb"] = round(torch.cuda.max_memory_reserved(device) / 2**20, 1)
    return peak


def _hydra_info() -> dict:
    """Chosen group options and overrides when running under Hydra and, in a multirun, the sweep's
    directory (else empty)."""
    if not HydraConfig.initialized():
        return {}
    hc = HydraConfig.get()
    return {
        "choices": {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra/")},
        "overrides": list(hc.overrides.task),
        "sweep_dir": Path(hc.sweep.dir) if hc.mode == RunMode.MULTIRUN else None,
    }


def build_group(cfg: DictConfig, group: str, **runtime_args):
    """`build(cfg[group])`, where a value the callable refuses (torch's "Invalid learning rate: -1", a
    model's "width must be > 0") is a ConfigError naming the group, not a traceback."""
    try:
        return build(without_applied(cfg, group), **runtime_args)
    except (ValueError, TypeError) as e:
        if isinstance(e, UserError):
            raise
        raise ConfigError(f"{group}={cfg[group]._target_}: {str(e).rstrip('.')}. Fix the {group}.* setting.") from e


def choice(cfg: DictConfig, group: str) -> str:
    """The option chosen for a group (`cnn`), or outside Hydra the name its `_target_` ends in (every
    strategy is a `Strategy`: its schedule's, and its weighting's unless `Mean`)."""
    chosen = HydraConfig.get().runtime.choices.get(group) if HydraConfig.initialized() else None
    if chosen:
        return chosen
    name = lambda node: node._target_.rsplit(".", 1)[-1]  # noqa: E731
    if group == "strategy" and "schedule" in cfg.strategy and "weighting" in cfg.strategy:
        return "+".join(n for n in (name(cfg.strategy.schedule), name(cfg.strategy.weighting)) if n != "Mean")
    return name(cfg[group])


def build_logger(cfg: DictConfig, run_dir: Path, config: dict, info: dict, resume_id: str | None = None) -> Logger:
    """Unset logger.group, job_type and name become the sweep (its folder's last two parts: date and
    time), the strategy, and the job's swept overrides (a single run: the experiment's `name`); `name`
    is a tag too. The logger's config records what was chosen, the group options, and where and with
    what this attempt runs (`provenance`, as in summary.json's attempts)."""
    sweep, experiment = info.get("sweep_dir"), (cfg.name if cfg.name != "default" else None)
    defaults = {
        "group": "/".join(sweep.parts[-2:]) if sweep else None,
        "job_type": choice(cfg, "strategy"),
        "name": ",".join(swept_overrides(info["overrides"], sweep)) if sweep else experiment,
    }
    extra = {k: v for k, v in defaults.items() if k in cfg.logger and cfg.logger[k] is None and v is not None}
    if "tags" in cfg.logger:
        extra["tags"] = list(dict.fromkeys([*(cfg.logger.tags or []), *([experiment] if experiment else [])]))
    run_config = {
        **config,
        "choices": info.get("choices", {}),
        "logger": {**config["logger"], **extra},
        "provenance": provenance(),
    }
    if resume_id is not None:
        extra["resume_id"] = resume_id
    return build(cfg.logger, run_dir=str(run_dir), run_config=run_config, _recursive_=False, _convert_="all", **extra)


def run(cfg: DictConfig, on_epoch_end: Sequence[EpochHook] = ()) -> dict:
    """Train one configuration; return its summary (also written to summary.json). `on_epoch_end`:
    functions called with the Trainer and the epoch's metrics row after each epoch is logged
    (scripts/bench.py times a bare loop between the run's epochs this way).

    One process per run directory: a second one stops at once naming the first (in a multirun it
    skips the job instead, so two copies of one sweep share its jobs rather than train each twice)."""
    try:
        validate(cfg)
        show_messages()
        if HydraConfig.initialized():  # a plugin launcher chosen in a config file (train.py checks the command line)
            check_launcher(HydraConfig.get().runtime.choices.get("hydra/launcher"))
            check_arm(cfg, HydraConfig.get().runtime.choices)
    except UserError as e:
        record_refusal(cfg, e)
        raise
    group = distributed.init()  # several processes (torchrun, a multi-task SLURM job): one run, data-parallel
    run_dir = Path(cfg.paths.output_dir)
    lock = RunDirLock(run_dir)
    busy = None  # the main process takes the lock; the others follow its outcome (one run, one decision)
    if group.main:
        try:
            if earlier := lock.acquire():
                log.info(f"Taking over {run_dir} from a process that ended without letting go of it: {earlier}")
        except RunDirectoryBusy as e:
            busy = str(e)
    if busy := distributed.broadcast_object(busy):
        if not _in_multirun():
            raise RunDirectoryBusy(busy)
        log.info(f"Skipping {run_dir}: {busy}")
        return {"status": "skipped", "error": busy}
    try:
        results = RunResults(run_dir, write=group.main)  # only the main process writes results
        if group.main:  # what a process killed while writing left (nobody else can be writing here now)
            results.remove_leftovers()
            prune_checkpoints(run_dir)
        with StopRequests() as stop:
            return _run_locked(cfg, group, results, stop, on_epoch_end)
    finally:
        lock.release()


REFUSED_FILE = "refused.json"  # a refusal where an earlier run's summary.json stands (it is never touched)


def record_refusal(cfg: DictConfig, error: BaseException, locked: bool = False) -> None:
    """A run refused before it started (a bad setting, a directory holding another config's run) still
    says so where its results would be: the error in its train.log and, where the run directory holds
    no summary.json, one with status failed and the error, so a sweep names the failed job instead of
    calling it missing; where an earlier run's summary.json stands, that is never touched and the
    refusal goes to refused.json, which the sweep's report reads. Nothing is written in a directory
    another live process holds (`locked`: this process holds it)."""
    into_log_files(f"{type(error).__name__}: {error}" if not isinstance(error, UserError) else str(error))
    try:
        run_dir = Path(cfg.paths.output_dir)
    except Exception:  # noqa: BLE001 - no output directory to speak of (outside Hydra, an unresolvable path)
        return
    lock = RunDirLock(run_dir)
    try:
        if not locked:
            lock.acquire()
        if (run_dir / SUMMARY_FILE).exists():  # checked once the directory is ours: a run may just have ended
            write_json(
                run_dir / REFUSED_FILE,
                {
                    "error": f"{type(error).__name__}: {error}",
                    "pid": os.getpid(),
                    "time": datetime.datetime.now().isoformat(timespec="seconds"),
                },
            )
            return
        try:
            config = OmegaConf.to_container(cfg, resolve=True)
        except Exception:  # noqa: BLE001 - a setting that cannot even be resolved: record it as written
            config = OmegaConf.to_container(cfg, resolve=False)
        info = _hydra_info()
        write_json(
            run_dir / SUMMARY_FILE,
            {
                "status": "failed",
                "error": f"{type(error).__name__}: {error}",
                "refused_before_start": True,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "choices": info.get("choices", {}),
                "overrides": info.get("overrides", []),
                "config": config,
                "config_version": CONFIG_VERSION,
            },
        )
    except (UserError, OSError):  # busy or unwritable: the console still shows the error
        return
    finally:
        lock.release()


def _in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _run_locked(
    cfg: DictConfig, group, results: RunResults, stop: StopRequests, on_epoch_end: Sequence[EpochHook]
) -> dict:
    """The run, once its directory is ours: checks and objects that need no data, skip or resume,
    then data, model and trainer, training, and the summary whatever happens."""
    config = OmegaConf.to_container(cfg, resolve=True)
    try:  # a refusal here says so in the run directory (record_refusal), never over an earlier run's summary
        device = _device(cfg.trainer.device, group)
        strategy, detector, diagnostics = _check_and_build_before_data(cfg, group)
        previous, resumed, notes = _skip_or_resume(cfg.trainer, config, group, results, device)
    except UserError as e:
        if group.main:
            record_refusal(cfg, e, locked=True)
        raise
    if previous is not None:
        return previous
    seed_everything(cfg.seed, cfg.trainer.deterministic)
    info = _hydra_info()
    attempts = Attempts(resumed[1].get("attempts", []) if resumed else [], device, notes)
    summary: dict = {"status": "failed", "error": None}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    logger: Logger = NoLogger()
    trainer = interrupted = None
    try:
        if group.main:  # one W&B run per job
            logger = build_logger(
                cfg, results.run_dir, config, info, resume_id=resumed[1].get("wandb_id") if resumed else None
            )
        data = _load_data(cfg, device, group, strategy)
        checkpoint_meta = (
            (lambda: {"config_json": json.dumps(config), "wandb_id": logger.run_id, "attempts": attempts.so_far()})
            if group.main
            else None
        )  # the main process writes them
        trainer = _build_trainer(
            cfg,
            data,
            device,
            group,
            strategy,
            detector,
            diagnostics,
            results,
            logger,
            stop,
            checkpoint_meta,
            summary,
            on_epoch_end,
        )
        if resumed:
            path, state = resumed
            trainer.load_state_dict(state)
            resumed = state = None  # free the CPU copy of the weights and optimizer state
            summary["resumed_from"] = str(path)
            log.info(f"Resuming from {path}: {trainer.epoch} of {trainer.num_epochs} epochs done, step {trainer.step}.")
        summary.update(trainer.fit(), status="completed")
        if group.enabled:  # every process says where it stands: the ENP must have ended at one step for all
            log.info(f"[rank {group.rank}] finished at step {summary['steps']}; ENP end step {summary['enp_end_step']}")
    except Diverged as e:
        summary.update(status="diverged", error=str(e), diverged_step=e.step, epochs=e.epoch)
    except Interrupted as e:
        summary.update(status="interrupted", error=str(e), interrupted_step=e.step, signal=e.signal_name)
        interrupted = e
    except BaseException as e:
        _record_failure(summary, e, trainer)
        raise
    finally:
        _write_summary(summary, info, config, group, device, attempts, results, logger)
    if summary["status"] == "completed" and group.main:  # after summary.json: a crash in between only keeps more
        prune_checkpoints(results.run_dir, newest=cfg.trainer.keep_checkpoints)
    if summary["status"] == "diverged":
        raise Diverged(summary["diverged_step"], summary["epochs"])
    if interrupted:  # the process ends, also in a multirun: the signal was for all of it
        print(interrupted, file=sys.stderr, flush=True)
        raise SystemExit(128 + interrupted.signum)
    return summary


def _device(name: str, group) -> torch.device:
    device = resolve_device(name)
    return torch.device("cuda", group.local_rank) if device.type == "cuda" and group.enabled else device


def _check_and_build_before_data(cfg: DictConfig, group) -> tuple:
    """What can be checked and built without the data, so that bad settings fail before it is loaded:
    the strategy, the phase detector and the diagnostics, and what several processes cannot do."""
    t = cfg.trainer
    if t.batch_size % group.world_size:
        raise ConfigError(
            f"trainer.batch_size={t.batch_size} is the global batch and must split evenly over the {group.world_size} "
            f"processes: use a multiple of {group.world_size}."
        )
    interference = OmegaConf.select(cfg, "diagnostics.measures.interference")
    if group.enabled and interference and (interference.get("dataset_steps") or interference.get("dataset_at_enp_end")):
        raise ConfigError(
            "The diagnostics' dataset scope (diagnostics.measures.interference.dataset_steps, "
            "diagnostics.measures.interference.dataset_at_enp_end) runs on one "
            "process: the others would wait in their next collective for its passes over the whole training set. "
            "Measure it in a one-process run (same seed, same weights at initialization), or use diagnostics=default."
        )
    try:
        strategy = build(cfg.strategy)
        strategy.check(t.batch_size // group.world_size)  # the batch one process sees
        detector = build(cfg.phase)
        diagnostics = build(cfg.diagnostics) if group.main else NoDiagnostics()  # same weights everywhere
        diagnostics.check(strategy)
    except (ValueError, TypeError) as e:
        raise ConfigError(str(e)) from e
    if group.main and not detector.in_enp and strategy.uses_the_enp():
        log.warning(
            f"strategy {choice(cfg, 'strategy')} changes training only in the ENP, but phase {choice(cfg, 'phase')} "
            f"gives none: this run trains as after the ENP from the first step (the baseline of the paper's "
            f"phase sweeps). For an ENP, choose a detector, e.g. phase=accuracy."
        )
    if group.enabled and strategy.may_mix() and strategy.mixer.kind == "manifold":
        raise ConfigError(
            "mix.kind=manifold calls the model's stages one by one, which bypasses DistributedDataParallel's "
            "gradient averaging: use mix.kind=input when training on several processes."
        )
    return strategy, detector, diagnostics


def _skip_or_resume(t: DictConfig, config: dict, group, results: RunResults, device: torch.device) -> tuple:
    """(the summary of a completed run of this config here, to return as it is, None, []) or (None, the
    checkpoint to resume as (path, state), or None: a fresh start, which sets the earlier run's files
    aside; what changes this run's numbers, said in train.log: a forced resume, a fallback to an older
    checkpoint, another thread count or device than the attempt before). A run of another config is never
    replaced unless asked (trainer.resume=never or force)."""
    run_dir = results.run_dir
    # trainer.resume=never starts afresh, also over a completed run of the same config.
    previous = completed_before(run_dir, config, t)
    if previous is not None:
        log.info(f"Skipping {run_dir}: summary.json says completed, with the same config.")
        return previous, None, []
    notes: list[str] = []
    try:  # before any work: a checkpoint of another config is refused here
        resumed = None if t.resume == "never" else load_latest(run_dir, config, force=t.resume == "force", notes=notes)
    except CheckpointError as e:
        raise ConfigError(str(e)) from e
    before = (resumed[1].get("attempts") or [{}])[-1] if resumed else {}
    now = {"torch_threads": torch.get_num_threads(), "device": device.type, "device_name": device_name(device)}
    changed = [f"{k} {before[k]} -> {now[k]}" for k in now if k in before and before[k] != now[k]]
    if changed:
        notes.append(
            f"Resuming on another machine setup than the attempt before ({', '.join(changed)}): floating-point "
            f"sums run in another order, so the results can differ from an uninterrupted run's (bitwise "
            f"equality holds on the same thread count and device)."
        )
    for note in notes:
        log.warning(note)
    if resumed is not None and resumed[1].get("world_size", 1) != group.world_size:
        log.info(
            f"Resuming a checkpoint of {resumed[1].get('world_size', 1)} processes on {group.world_size}: the "
            f"global batch is the same; per-process batch statistics and pairings follow the new split."
        )
    earlier = earlier_summary(run_dir) if resumed is None and t.resume == "auto" else None
    if earlier is not None and not earlier.get("refused_before_start"):  # a refused run has nothing to protect
        # where the data lives may change between attempts (node-local staging): not another experiment
        diffs = [
            d
            for d in config_differences(earlier.get("config") or {}, config)
            if not d.startswith(("dataset.root:", "dataset.cache_dir:"))
        ]
        if diffs:  # as a checkpoint of another config is refused: its checkpoints may have been deleted (quota)
            shown = "; ".join(diffs[:8]) + (f"; and {len(diffs) - 8} more" if len(diffs) > 8 else "")
            raise ConfigError(
                f"{run_dir} holds a {earlier.get('status', 'unknown')} run of a different config ({shown}). "
                "Use another "
                f"output directory (hydra.run.dir=..., hydra.sweep.dir=...), or replace it with trainer.resume=never "
                f"(its files are renamed *.replaced-<time>, not deleted)."
            )
    stamp = f"{datetime.datetime.now().strftime('%Y%m%d-%H%M%S-%f')}-{os.getpid()}"  # never the same twice
    if resumed is None and group.main and (moved := set_aside_checkpoints(run_dir, stamp) + results.set_aside(stamp)):
        log.info(
            f"Starting afresh in {run_dir}: the earlier run's files are set aside as "
            f"{', '.join(sorted({p.relative_to(run_dir).as_posix() for p in moved}))}."
        )
    return None, resumed, notes


def device_name(device: torch.device) -> str:
    """The accelerator's model (a requeue from an A100 to an H100 changes the numbers), or the CPU."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


class Attempts:
    """The run's attempts: the earlier ones (each up to its last checkpoint, from that checkpoint),
    then this one, timed from its start: where it ran (host, thread count, device), with what
    (`provenance`: git commit, package versions, SLURM ids) and what changed its numbers (`warnings`:
    a forced resume, an older checkpoint, another thread count)."""

    def __init__(self, earlier: list[dict], device: torch.device | None = None, warnings: list[str] = ()) -> None:
        self.earlier, self.start = list(earlier), time.perf_counter()
        self.this = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": datetime.datetime.now().isoformat(timespec="seconds"),
            "torch_threads": torch.get_num_threads(),
            "device": device.type if device is not None else None,
            "device_name": device_name(device) if device is not None else None,
            "provenance": provenance(),
            **({"warnings": list(warnings)} if warnings else {}),
        }

    def so_far(self) -> list[dict]:
        return [*self.earlier, {**self.this, "wall_time_s": time.perf_counter() - self.start}]


def _load_data(cfg: DictConfig, device: torch.device, group, strategy):
    t = cfg.trainer
    if group.enabled and not group.main:
        torch.distributed.barrier()  # the main process loads (and downloads) first: one download
    try:
        data = load_dataset(without_applied(cfg, "dataset"), device, reuse=t.reuse_data)
    finally:  # also when loading fails: the others then load, fail with the same error and exit
        if group.enabled and group.main:
            torch.distributed.barrier()
    if data.steps_per_epoch(t.batch_size) == 0:
        raise ConfigError(
            f"trainer.batch_size={t.batch_size} is larger than the training set ({data.num_train} samples)."
        )
    if data.tokens and strategy.may_mix():
        raise ConfigError(
            f"strategy {choice(cfg, 'strategy')} mixes inputs, but {data.name} gives token ids, which cannot be "
            f"mixed: use strategy=vanilla, high_loss_removal or its controls (with strategy.mixer.alpha=0)."
        )
    if strategy.schedule.schedules_augmentation:
        _needs_samples_in_memory(data, f"strategy {choice(cfg, 'strategy')} (it turns augmentation on and off)")
    if cfg.dataset.label_noise:  # on a copy: a reused dataset stays clean for the next job
        _needs_samples_in_memory(data, f"dataset.label_noise={cfg.dataset.label_noise}")
        data = data.with_label_noise(cfg.dataset.label_noise, stream_generator(cfg.seed, LABEL_NOISE_STREAM))
    return data


def _needs_samples_in_memory(data, what: str) -> None:
    """A ConfigError unless `data` holds its training samples in memory, each with one label: what
    turning augmentation off per step and replacing labels work on."""
    if isinstance(data, InMemoryData) and not data.tokens:
        return
    why = (
        "gives token sequences, which have no single label and are not augmented"
        if data.tokens
        else "streams its images from disk (for an image folder: dataset.in_memory=true)"
    )
    raise ConfigError(f"{what} needs training samples held in memory, each with one label; {data.name} {why}.")


def build_model(cfg: DictConfig, data) -> torch.nn.Module:
    """The model at its initial weights, on the CPU. They depend on the seed and the model only, not on
    the data (its size, a reused copy): a sweep over dataset sizes starts every size from the same point."""
    torch.manual_seed(cfg.seed)
    model = build_group(cfg, "model", num_classes=data.num_classes, input_shape=list(data.input_shape))
    if cfg.model.init_scale != 1.0:  # the weight matrices and kernels, not biases or normalization scales
        with torch.no_grad():
            for p in model.parameters():
                if is_weight(p):
                    p.mul_(cfg.model.init_scale)
    return model


def uses_channels_last(cfg: DictConfig, model: torch.nn.Module) -> bool:
    """trainer.channels_last, `auto` being: for a model with convolutions. Faster convolutions on CUDA
    (tensor cores) and on a CPU too (oneDNN's NHWC kernels: 1.1-1.7x for training, up to 3x for
    evaluation, measured in docs/performance.md)."""
    has_conv = any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    chosen = cfg.trainer.channels_last
    return has_conv if chosen is None else bool(chosen)


def build_optimization(cfg: DictConfig, model: torch.nn.Module, steps_per_epoch: int) -> tuple:
    """(optimizer, learning-rate schedule) of `model` (already on its device) for the whole run."""
    optimizer = build_group(cfg, "optim", model=model)
    total_steps = OmegaConf.to_object(cfg.trainer).total_steps(steps_per_epoch)
    scheduler = build_group(cfg, "sched", optimizer=optimizer, total_steps=total_steps, steps_per_epoch=steps_per_epoch)
    return optimizer, scheduler


def _build_trainer(
    cfg: DictConfig,
    data,
    device: torch.device,
    group,
    strategy,
    detector,
    diagnostics,
    results: RunResults,
    logger: Logger,
    stop: StopRequests,
    checkpoint_meta,
    summary: dict,
    on_epoch_end: Sequence[EpochHook],
) -> Trainer:
    """The model (its size and initial digest into `summary`), optimizer, schedule, what the `auto` settings became,
    what `auto` chose (`summary["runtime"]`), the start line, and the Trainer."""
    t = cfg.trainer
    model = build_model(cfg, data)
    try:
        strategy.setup(data.num_classes, model, data.input_shape)
    except ValueError as e:
        raise ConfigError(f"strategy {choice(cfg, 'strategy')}: {e}") from None
    summary["num_params"] = sum(p.numel() for p in model.parameters())
    summary.update(num_train=data.num_train, num_val=getattr(data, "num_val", 0), num_test=data.num_test)
    summary["init_params_sha1"] = params_digest(model)
    if isinstance(data, InMemoryData) and data.noisy_labels is not None:  # what dataset.label_noise replaced
        index, label = data.noisy_labels
        summary["label_noise_replaced"] = len(index)
        if group.main:
            write_json(results.run_dir / "label_noise.json", {"index": index.tolist(), "label": label.tolist()})
    channels_last = uses_channels_last(cfg, model)
    model = model.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    steps_per_epoch = data.steps_per_epoch(t.batch_size)
    optimizer, scheduler = build_optimization(cfg, model, steps_per_epoch)
    precision = resolve_precision(t.precision, device)
    runtime = Runtime(
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        channels_last=channels_last,
        eval_batch_size=t.eval_batch_size or (1024 if device.type == "cuda" else 128),
    )
    trainer_cfg = OmegaConf.to_object(t)  # the typed TrainerConfig, plain attribute reads in the loop
    summary["runtime"] = {"device": str(device), "torch_threads": torch.get_num_threads(), **asdict(runtime)}
    if group.main:
        validation = f"{summary['num_val']:,} validation / " if summary["num_val"] else ""
        log.info(
            f"Run {results.run_dir}: {choice(cfg, 'model')} ({summary['num_params']:,} parameters) on {data.name} "
            f"({data.num_train:,} training / {validation}{data.num_test:,} test samples), "
            f"strategy {choice(cfg, 'strategy')}, "
            f"phase {choice(cfg, 'phase')}; {trainer_cfg.total_steps(steps_per_epoch):,} steps of {t.batch_size} "
            f"({steps_per_epoch:,} per epoch); {device}, {precision}"
            f"{', channels_last' if channels_last else ''}{', compiled' if t.compile else ''}"
        )
    return Trainer(
        trainer_cfg,
        model,
        data,
        strategy,
        detector,
        optimizer,
        scheduler,
        results,
        logger,
        generator=torch.Generator().manual_seed(cfg.seed),
        device=device,
        diagnostics=diagnostics,
        checkpoint_meta=checkpoint_meta,
        stop=stop,
        runtime=runtime,
        on_epoch_end=on_epoch_end,
    )


def _record_failure(summary: dict, error: BaseException, trainer: Trainer | None) -> None:
    summary["error"] = f"{type(error).__name__}: {error}"
    summary["traceback"] = traceback.format_exc()
    if trainer is not None and trainer.interrupted:  # a stop signal's earlier handler ended it (submitit's requeue)
        summary.update(status="interrupted", signal=trainer.interrupted, interrupted_step=trainer.step)
    elif isinstance(error, KeyboardInterrupt):  # Ctrl-C: no checkpoint (it may have struck mid-step)
        summary.update(status="interrupted", signal="SIGINT", interrupted_step=trainer.step if trainer else None)


def _write_summary(
    summary: dict,
    info: dict,
    config: dict,
    group,
    device: torch.device,
    attempts: Attempts,
    results: RunResults,
    logger: Logger,
) -> None:
    """summary.json whatever happened, the end line, and the logger finished (also on failure: in a
    multirun the next job must get a fresh W&B run)."""
    summary["attempts"] = attempts.so_far()
    summary["wall_time_s"] = sum(a["wall_time_s"] for a in summary["attempts"])  # every attempt's share
    summary["host"], summary["pid"] = socket.gethostname(), os.getpid()
    summary.update(peak_memory(device))
    summary["choices"] = info.get("choices", {})
    summary["overrides"] = info.get("overrides", [])
    summary["config"] = config
    summary["config_version"] = CONFIG_VERSION  # the layout of `config` (enlighten.compat)
    if group.enabled:
        summary["world_size"] = group.world_size
    results.write_summary(summary)
    if group.main:
        job = f"[job {HydraConfig.get().job.num}] " if _in_multirun() else ""
        log.info(f"{job}{result_line(summary)}  ({results.run_dir})")
    logger.log_summary(summary)
    logger.finish(exit_code=0 if summary["status"] == "completed" else 1)
