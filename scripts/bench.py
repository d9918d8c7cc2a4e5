"""Benchmarks. Every figure is a ratio (or a rate) measured in this one run, so it holds on a noisy
machine; timed sections alternate and keep each side's best.

    python scripts/bench.py [--quick] [--only loop,pipeline,diagnostics,sweep,throughput,cpu] [--out FILE]

Sections (all on `--device`, default: CUDA when present, else CPU):
  loop         steps/s of the project's loop (run(), logging on: metrics.jsonl and offline W&B) over a
               bare PyTorch loop with the same model, batch, optimizer, schedule and device-resident
               data and nothing else; with diagnostics off (`loop_ratio`) and at their default cadence
               (`loop_ratio_diagnostics`). Vanilla strategy, no ENP: the loop's own cost only.
  pipeline     images/s of the device-resident batched augmentation (crop with padding 4, flip,
               normalize) over a torchvision DataLoader with per-sample transforms (RandomCrop,
               RandomHorizontalFlip, ToTensor, Normalize) on the same uint8 CIFAR-size images at the
               same batch size; the DataLoader gets 0 or all-core workers, whichever is faster.
  diagnostics  whole-run time with diagnostics at their default cadence over `diagnostics=off` (cnn on
               10% of MNIST through its ENP); the seconds of one probe row and of one dataset-scope
               measurement against a training step of the same model, and the overhead that means at the
               default cadence during the ENP (`diagnostics_enp_overhead`, target <= 0.10) and after it;
               the seconds inside the diagnostics over the rest of a short run, timed in the run
               (`diagnostics_short_run_share`, target <= 0.10).
  sweep        jobs per hour of a claims-style grid of short jobs (train.py -m): one after another in
               one process, with and without `trainer.reuse_data`, and packed (hydra/launcher=joblib,
               one worker per core, cores/workers threads each): `packing_ratio`; the first job's
               summary gives the peak memory of a run.
  throughput   training images/s of resnet18 and vit_tiny (patch 4) on 32x32 inputs at batch 512 with
               Mixup, bf16 and channels_last, with and without `trainer.compile`, and the model FLOPs
               utilization this means (FLOPs counted by torch's FlopCounterMode). CUDA only, unless
               --only names it (then it runs, slowly and small, on the CPU too).
  cpu          training FLOP/s of the loop over the fastest square fp32 matmul's (256 to 2048) in the same
               process (`matmul_share`, target >= 0.6 on an idle 2-core machine) for cnn and resnet18 at width
               0.25, with channels_last (the default) and without. CPU only, unless --only names it.

Prints one JSON object, then a table.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from omegaconf import OmegaConf, open_dict  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from enlighten.config import register_configs, without_applied  # noqa: E402
from enlighten.data.base import InMemoryData, Normalize  # noqa: E402
from enlighten.data.reuse import load_dataset  # noqa: E402
from enlighten.results import atomic_write_text, read_json, read_jsonl  # noqa: E402
from enlighten.run import build_model, build_optimization, resolve_device, run, uses_channels_last  # noqa: E402

DATA = os.environ.get("ENLIGHTEN_DATA_DIR", str(REPO.parent / "shared" / "data"))
# Dense bf16 peak FLOP/s by device name, for the utilization figure (--peak-tflops overrides).
# The first key found in the device name wins, so more specific names come first.
PEAK_BF16_TFLOPS = {
    "H100 PCIe": 756.0,
    "H100": 989.0,
    "H200": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "A10G": 70.0,
    "A10": 125.0,
}


def compose_run(overrides: list[str], out: str, device: torch.device):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*overrides, f"trainer.device={device.type}"])
    with open_dict(cfg):
        cfg.paths.output_dir = out
    return cfg


def run_epochs(overrides: list[str], device: torch.device) -> tuple[list[dict], dict]:
    """One run() in a temporary directory: its per-epoch metrics and its summary."""
    gc.collect()  # start every timed run from the same state: the previous one's garbage collected
    with tempfile.TemporaryDirectory() as out:
        summary = run(compose_run(overrides, out, device))
        return read_jsonl(Path(out) / "metrics.jsonl"), summary


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------------------------- loop
class BareLoop:
    """The plainest loop over the same model, batch, optimizer, schedule and device data as a run:
    index, forward, cross-entropy, backward, step. `epoch()` trains one epoch and returns its seconds."""

    def __init__(self, cfg, device: torch.device) -> None:
        self.device, self.batch_size = device, cfg.trainer.batch_size
        data = load_dataset(without_applied(cfg, "dataset"), device)  # the very tensors the run trains on
        model = build_model(cfg, data)  # built as run() builds it
        cuda = device.type == "cuda"
        self.layout = torch.channels_last if uses_channels_last(cfg, model) else torch.contiguous_format
        self.model = model.to(device, memory_format=self.layout)
        self.steps = data.steps_per_epoch(self.batch_size)
        self.optimizer, self.scheduler = build_optimization(cfg, self.model, self.steps)
        self.x, self.y = next(iter(data.eval_batches("train", data.num_train)))  # normalized, on the device
        self.autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else contextlib.nullcontext

    def epoch(self) -> float:
        synchronize(self.device)
        start = time.perf_counter()
        order = torch.randperm(len(self.y), device=self.device)
        for i in range(self.steps):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            with self.autocast():
                logits = self.model(self.x[idx].contiguous(memory_format=self.layout))
            loss = F.cross_entropy(logits.float(), self.y[idx])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
        synchronize(self.device)
        return time.perf_counter() - start


def interleaved_epochs(overrides: list[str], device: torch.device) -> tuple[list[float], list[float]]:
    """(run's epoch seconds, bare loop's epoch seconds), alternating, the first epoch of each dropped:
    the run trains one epoch of the bare loop after each of its own (an epoch-end hook), so both see
    the same state of a noisy machine. A run's epoch is everything it does between two epoch rows: the
    steps, the train-probe accuracy, the diagnostics when on, the metrics.jsonl and W&B rows (the bare
    epoch in between subtracted)."""
    with tempfile.TemporaryDirectory() as out:
        cfg = compose_run(overrides, out, device)
        gc.collect()
        loop, bare = BareLoop(cfg, device), []
        run(cfg, on_epoch_end=[lambda trainer, row: bare.append(loop.epoch())])
        wall = [m["wall_time_s"] for m in read_jsonl(Path(out) / "metrics.jsonl")]
    ours = [b - a - between for a, b, between in zip(wall, wall[1:], bare)]
    return ours[1:], bare[1:-1]


def bench_loop(device: torch.device, quick: bool) -> dict:
    """Bare over ours, over the interleaved epochs after the first. With diagnostics off every epoch
    does the same work, so `loop_ratio` is the median of the epoch pairs' ratios (robust to the odd
    epoch a noisy machine slows down); with diagnostics on, epochs differ (they measure on some steps
    only), so `loop_ratio_diagnostics` is the ratio of the total times."""
    cuda = device.type == "cuda"
    epochs, steps = (5, 40) if quick else (12, 50)  # per-epoch work (probe accuracy, rows) weighs as in full runs
    batch = 512 if cuda else 128
    base = [
        "dataset=synthetic",
        f"dataset.num_train={batch * steps}",
        "dataset.num_test=128",
        "strategy=vanilla",
        "phase=never",
        "logger=wandb",
        "trainer.train_eval_samples=128",
        f"trainer.epochs={epochs}",
        f"trainer.eval_every={epochs}",
        f"trainer.batch_size={batch}",
        "trainer.checkpoint_every=0",
    ]  # a checkpoint per 50-step epoch would weigh ~8x what it does in a real run
    if cuda:  # the GPU setting: resnet18 on CIFAR-size inputs
        base += ["model=resnet18"]
    else:  # a small conv net on MNIST-size inputs: the loop's own cost shows more than with a big model
        base += ["model=cnn", "model.width=0.5", "dataset.channels=1", "dataset.image_size=28"]
    out = {
        "setting": " ".join(o for o in base if o.startswith(("model", "dataset.c", "dataset.i", "trainer.batch"))),
        "steps_per_epoch": steps,
        "measured_epochs": epochs - 2,
    }
    for mode in ("off", "default"):
        ours, bare = interleaved_epochs([*base, f"diagnostics={mode}"], device)
        images = len(ours) * steps * batch
        out[f"diagnostics_{mode}"] = {
            "bare_images_per_sec": round(images / sum(bare), 1),
            "loop_images_per_sec": round(images / sum(ours), 1),
            "ratio": round(sum(bare) / sum(ours), 3),
            "median_epoch_ratio": round(statistics.median(b / o for b, o in zip(bare, ours)), 3),
        }
    out["loop_ratio"] = out["diagnostics_off"]["median_epoch_ratio"]
    out["loop_ratio_diagnostics"] = out["diagnostics_default"]["ratio"]
    out["diagnostics_time_ratio"] = round(out["loop_ratio"] / out["loop_ratio_diagnostics"], 3)
    return out


# ------------------------------------------------------------------------------------------- pipeline
def bench_pipeline(device: torch.device, quick: bool) -> dict:
    from PIL import Image
    from torchvision import transforms as T

    n, batch = (10_240 if quick else 50_000), 512
    mean, std = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    labels = torch.randint(0, 10, (n,), generator=torch.Generator().manual_seed(1))

    ours = InMemoryData(images, labels, images[:512], labels[:512], 10, Normalize(mean, std), crop_padding=4, flip=True)
    ours.to(device)

    class PerSample(torch.utils.data.Dataset):
        transform = T.Compose(
            [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean, std)]
        )
        hwc = images.permute(0, 2, 3, 1).numpy()

        def __len__(self):
            return n

        def __getitem__(self, i):
            return self.transform(Image.fromarray(self.hwc[i])), int(labels[i])

    def rate(batches, limit: int, skip_first: bool) -> float:
        """Images/s over at most `limit` batches; `skip_first` leaves out the DataLoader's worker start-up
        (ours keeps its first batch, which carries the epoch's random plan)."""
        it = iter(batches)
        if skip_first:
            next(it)
        synchronize(device)
        start, count = time.perf_counter(), 0
        for x, _ in it:
            count += len(x)
            if count >= limit * batch:
                break
        synchronize(device)
        return count / (time.perf_counter() - start)

    def dataloader_rate(workers: int) -> float:
        loader = torch.utils.data.DataLoader(
            PerSample(),
            batch_size=batch,
            shuffle=True,
            drop_last=True,
            num_workers=workers,
            pin_memory=device.type == "cuda",
        )
        moved = ((x.to(device, non_blocking=True), y.to(device, non_blocking=True)) for x, y in loader)
        try:
            return rate(moved, 8 if quick else 24, skip_first=True)
        finally:
            moved.close()  # shuts the workers down now, before the next measurement

    workers = os.cpu_count() or 1
    results = {"ours": [], "dataloader_0_workers": [], f"dataloader_{workers}_workers": []}
    for _ in range(1 if quick else 2):
        for seed in range(3):  # ours takes well under a second an epoch: a few epochs, keep the best
            results["ours"].append(
                rate(ours.train_batches(batch, torch.Generator().manual_seed(seed)), n // batch, skip_first=False)
            )
        results["dataloader_0_workers"].append(dataloader_rate(0))
        results[f"dataloader_{workers}_workers"].append(dataloader_rate(workers))
    best = {k: max(v) for k, v in results.items()}
    baseline = max(v for k, v in best.items() if k != "ours")
    return {
        **{f"{k}_images_per_sec": round(v, 1) for k, v in best.items()},
        "pipeline_ratio": round(best["ours"] / baseline, 2),
    }


# ---------------------------------------------------------------------------------------- diagnostics
def measurement_costs(
    model_name: str, input_shape: tuple, num_train: int, batch: int, device: torch.device, repeats: int
) -> dict:
    """Seconds of one training step (the loop's own `Trainer.train_step`: Mixup, SGD, channels_last;
    bf16 on CUDA), one probe row and one dataset-scope measurement of the same model (fp32) in this process, and the
    overhead they mean at the default cadence: a probe row every `enp_every_steps` steps during the ENP
    and every `every_steps` after it; the dataset scope in epochs of training (one pass over the same
    `num_train` samples)."""
    from enlighten.data.synthetic import synthetic
    from enlighten.diagnostics.measures import read_values
    from enlighten.loggers.base import NoLogger
    from enlighten.models.cnn import cnn
    from enlighten.models.resnet import resnet18
    from enlighten.phase.base import Phase
    from enlighten.results import RunResults
    from enlighten.training.loop import Runtime, Trainer

    factory = {"cnn": cnn, "resnet18": resnet18}[model_name]
    data = synthetic(num_train=num_train, num_test=64, channels=input_shape[0], image_size=input_shape[1]).to(device)
    torch.manual_seed(0)
    cuda = device.type == "cuda"  # the GPU path trains in bf16; the measures run in fp32
    layout = torch.channels_last  # both models are conv nets: trainer.channels_last=auto
    model = factory(10, input_shape, width=0.25 if model_name == "resnet18" else 1.0).to(device, memory_format=layout)
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=[f"trainer.batch_size={batch}", "mix.alpha=1.0", "strategy=mixup", "optim=sgd", "phase=never"],
        )
    strategy = instantiate(cfg.strategy)
    strategy.setup(10, model)
    optimizer, scheduler = build_optimization(cfg, model, data.steps_per_epoch(batch))
    after_enp = Phase(step=0, epoch=0, steps_per_epoch=1, total_steps=1, in_enp=False)  # training mixes
    in_enp = Phase(step=0, epoch=0, steps_per_epoch=1, total_steps=1, in_enp=True)  # rows on the ENP cadence
    monitor = instantiate(cfg.diagnostics)  # the default settings
    trainer = Trainer(
        OmegaConf.to_object(cfg.trainer),
        model,
        data,
        strategy,
        instantiate(cfg.phase),
        optimizer,
        scheduler,
        RunResults("unused", write=False),  # train_step writes nothing
        NoLogger(),
        torch.Generator().manual_seed(0),
        device,
        diagnostics=monitor,  # set up by the Trainer, as in a run
        runtime=Runtime(bf16=cuda, channels_last=True),
    )
    x, y = next(data.train_batches(batch, torch.Generator().manual_seed(0)))

    def step() -> None:
        trainer.train_step(x, y, after_enp)

    def best_seconds(fn, times: int) -> float:
        fn()  # warm-up
        results = []
        for _ in range(times):
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            results.append(time.perf_counter() - start)
        return min(results)

    step_s = best_seconds(lambda: [step() for _ in range(5)], repeats) / 5
    row_s = best_seconds(lambda: read_values([monitor.measure(in_enp)]), repeats)
    dataset_s = best_seconds(
        lambda: read_values([monitor.measures["interference"].measure_dataset(0, 0, "init", in_enp)]),
        max(1, repeats // 2),
    )
    epoch_s = step_s * (num_train // batch)
    # The measures off by default (diagnostics=panel's), each on the monitor's probe: ms per row.
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        panel = compose(config_name="config", overrides=["diagnostics=panel"]).diagnostics.measures
    instruments = {}
    for name in (n for n, node in panel.items() if node is not None and n not in monitor.measures):
        measure = instantiate(panel[name])
        measure.setup(monitor.probe)
        instruments[name] = round(1000 * best_seconds(lambda m=measure: read_values([m.row(in_enp)]), repeats), 1)
    return {
        "setting": f"{model_name} {'x'.join(map(str, input_shape))}, batch {batch}, dataset scope over {num_train}",
        "step_ms": round(1000 * step_s, 2),
        "probe_row_ms": round(1000 * row_s, 1),
        "off_by_default_row_ms": instruments,  # each measure of diagnostics=panel the defaults leave off
        "off_by_default_row_in_steps": {n: round(ms / (1000 * step_s), 2) for n, ms in instruments.items()},
        "enp_overhead": round(row_s / (monitor.enp_every_steps * step_s), 3),
        "after_enp_overhead": round(row_s / (monitor.every_steps * step_s), 4),
        "dataset_scope_seconds": round(dataset_s, 2),
        "dataset_scope_in_epochs": round(dataset_s / epoch_s, 2),
    }


@contextlib.contextmanager
def monitor_seconds(device: torch.device):
    """Yields a one-item list holding the seconds spent inside the diagnostics monitor's hooks (all it
    measures, reads and keeps) during the block: timed in the run itself, so the share of the run they
    took holds on a noisy machine, unlike two runs' wall times."""
    from enlighten.diagnostics.monitor import Diagnostics

    hooks = ("start", "after_step", "at_enp_end", "read", "end_epoch", "summary")
    originals = {name: getattr(Diagnostics, name) for name in hooks}
    spent = [0.0]

    def timed(fn):
        def wrapper(*args, **kwargs):
            synchronize(device)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                synchronize(device)
                spent[0] += time.perf_counter() - start

        return wrapper

    for name, fn in originals.items():
        setattr(Diagnostics, name, timed(fn))
    try:
        yield spent
    finally:
        for name, fn in originals.items():
            setattr(Diagnostics, name, fn)


# The diagnostics section's runs: the cnn on 10% of MNIST through its ENP.
MNIST_RUN = [
    "dataset=mnist",
    f"paths.data_dir={DATA}",
    "dataset.download=false",
    "model=cnn",
    "strategy=mixup",
    "phase=accuracy",
    "dataset.fraction=0.1",
]


def short_run_share(device: torch.device, repeats: int) -> dict | None:
    """The default diagnostics' share of a short run (the target: at most 0.10): 2 epochs of the cnn on
    10% of MNIST through its ENP (93 steps; the ENP ends near step 40), the seconds inside the monitor
    over the run's other seconds, in the same run; the best of `repeats` runs."""
    if not (Path(DATA) / "MNIST" / "raw").exists():
        return None
    overrides = [*MNIST_RUN, "trainer.epochs=2", "logger=none"]
    shares = []
    for _ in range(repeats):
        with monitor_seconds(device) as spent:
            metrics, _ = run_epochs(overrides, device)
        wall = metrics[-1]["wall_time_s"]
        shares.append((spent[0] / (wall - spent[0]), wall, spent[0]))
    share, wall, diag = min(shares)
    return {
        "setting": "cnn, 10% of MNIST, 2 epochs, default diagnostics",
        "run_seconds": round(wall, 2),
        "monitor_seconds": round(diag, 2),
        "share": round(share, 3),
    }


def bench_diagnostics(device: torch.device, quick: bool, loop: dict | None = None) -> dict:
    """Whole runs (training and evaluation) with diagnostics at their default cadence over `off` (cnn
    on 10% of MNIST through its ENP), and the cost of each measurement against a training step, for
    cnn at MNIST size and resnet18 (width 0.25) at CIFAR size (`measurement_costs`)."""
    out: dict = {}
    if quick and loop is not None:  # --quick: the loop section's on/off runs stand in (no time for more)
        out["loop_runs"] = {"ratio": loop["diagnostics_time_ratio"]}
    elif (Path(DATA) / "MNIST" / "raw").exists():
        overrides = [*MNIST_RUN, f"trainer.epochs={3 if quick else 6}"]
        seconds: dict[str, list[float]] = {"off": [], "default": []}
        for _ in range(1 if quick else 2):
            for mode in seconds:
                metrics, _ = run_epochs([*overrides, "logger=none", f"diagnostics={mode}"], device)
                seconds[mode].append(metrics[-1]["wall_time_s"])
        off, on = min(seconds["off"]), min(seconds["default"])
        out["cnn_mnist_run"] = {"seconds_off": round(off, 2), "seconds_on": round(on, 2), "ratio": round(on / off, 3)}
    cuda = device.type == "cuda"
    costs = {"cnn": measurement_costs("cnn", (1, 28, 28), 1024 if quick else 6016, 128, device, 2 if quick else 5)}
    if not quick or cuda:  # --quick on a CPU: the cnn only (resnet18 takes minutes there)
        costs["resnet18"] = measurement_costs(
            "resnet18",
            (3, 32, 32),
            (8192 if quick else 50048) if cuda else 2048,
            512 if cuda else 128,
            device,
            2 if quick else 3,
        )
    out["measurement_costs"] = costs
    out["short_run"] = short_run_share(device, 2 if quick else 3)
    whole = out.get("cnn_mnist_run") or out.get("loop_runs") or {}
    return {
        "diagnostics_ratio": whole.get("ratio"),
        "diagnostics_short_run_share": (out["short_run"] or {}).get("share"),  # target <= 0.10
        "diagnostics_enp_overhead": max(c["enp_overhead"] for c in costs.values()),
        "diagnostics_settings": out,
    }


# ---------------------------------------------------------------------------------------------- sweep
def bench_sweep(device: torch.device, quick: bool) -> dict:
    """A claims-style grid of short jobs, launched as a user launches it (train.py -m, a fresh process),
    three ways: one after another in one process with and without `trainer.reuse_data`, and packed:
    `hydra/launcher=joblib`, one worker per core, each with cores/workers threads. Jobs/hour from the
    wall times; `packing_ratio` = packed over one-after-another (with reuse, the default)."""
    jobs = 4 if quick else 8
    if (Path(DATA) / "MNIST" / "raw").exists() and not quick:  # a claims cell: the ENP ends, diagnostics on
        data = [
            "dataset=mnist",
            f"paths.data_dir={DATA}",
            "dataset.download=false",
            "dataset.fraction=0.05",
            "model=cnn",
            "trainer.epochs=2",
            "phase=accuracy",
        ]
    else:
        data = ["dataset=digits", "model=cnn", "model.width=0.5", "trainer.epochs=1", "diagnostics=off"]
    args = [*data, "logger=none", f"trainer.device={device.type}", "seed=" + ",".join(str(s) for s in range(jobs))]
    # One worker per core on a CPU (joblib's count, which follows CPU quotas); on a GPU, 4 jobs share the
    # device (docs/performance.md: how to choose).
    import joblib

    workers = 4 if device.type == "cuda" else joblib.cpu_count()
    ways = {
        "without_reuse": ["trainer.reuse_data=false"],
        "with_reuse": ["trainer.reuse_data=true"],
        "packed": ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={workers}"],
    }
    out: dict = {"setting": " ".join(args[:-1]) + f" seed=0..{jobs - 1}", "jobs": jobs, "packed_workers": workers}
    seconds: dict[str, list[float]] = {way: [] for way in ways}
    # Alternate (and in full runs repeat in the reverse order), keeping each way's fastest: the first
    # sweep also warms the file cache.
    order = list(ways) if quick else [*ways, *reversed(ways)]
    for way in order:
        with tempfile.TemporaryDirectory() as sweep_dir:
            start = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, str(REPO / "train.py"), "-m", *args, *ways[way], f"hydra.sweep.dir={sweep_dir}"],
                capture_output=True,
                text=True,
                cwd=sweep_dir,
            )
            seconds[way].append(time.perf_counter() - start)
            if proc.returncode != 0:
                raise RuntimeError(f"the sweep ({way}) failed:\n{proc.stderr[-3000:]}")
            summaries = [read_json(p) for p in sorted(Path(sweep_dir).glob("*/summary.json"))]
            if len(summaries) != jobs or any(s["status"] != "completed" for s in summaries):
                raise RuntimeError(f"the sweep ({way}) completed {len(summaries)} of {jobs} jobs")
            out.setdefault("threads_per_job", {})[way] = summaries[0]["runtime"]["torch_threads"]
            out.setdefault("processes", {})[way] = len({s["pid"] for s in summaries})
            if way == "without_reuse" and "peak_memory" not in out:  # a fresh process's first job: one run's peak
                out["peak_memory"] = {k: v for k, v in summaries[0].items() if k.startswith("peak_")}
    for way in ways:
        out[f"jobs_per_hour_{way}"] = round(jobs * 3600 / min(seconds[way]), 1)
        out[f"seconds_{way}"] = round(min(seconds[way]), 2)
    out["reuse_speedup"] = round(out["jobs_per_hour_with_reuse"] / out["jobs_per_hour_without_reuse"], 3)
    out["packing_ratio"] = round(out["jobs_per_hour_packed"] / out["jobs_per_hour_with_reuse"], 3)
    return out


# ----------------------------------------------------------------------------------------- throughput
def training_flops_per_image(model: torch.nn.Module, input_shape: tuple, device: torch.device) -> float:
    """Forward plus backward FLOPs of one image (2 per multiply-add), counted by torch."""
    x = torch.randn(2, *input_shape, device=device)
    counter = FlopCounterMode(display=False)
    with counter:
        model(x).float().sum().backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / 2


def peak_flops(device: torch.device, override_tflops: float | None) -> float | None:
    if override_tflops:
        return override_tflops * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((tf * 1e12 for key, tf in PEAK_BF16_TFLOPS.items() if key in name), None)


def bench_throughput(device: torch.device, quick: bool, override_tflops: float | None) -> dict:
    cuda = device.type == "cuda"
    batch = 512 if cuda else 32
    steps = (20 if quick else 60) if cuda else 4
    peak = peak_flops(device, override_tflops)
    out = {}
    for model in ("resnet18", "vit_tiny"):
        base = [
            "dataset=synthetic",
            f"dataset.num_train={batch * steps}",
            "dataset.num_test=512",
            f"model={model}",
            "strategy=mixup",
            "phase=never",
            "diagnostics=off",
            "logger=none",
            f"trainer.batch_size={batch}",
            "trainer.epochs=3",
            "trainer.train_eval_samples=512",
            "trainer.precision=bf16",
            f"trainer.channels_last={'true' if model == 'resnet18' else 'null'}",
        ]
        with tempfile.TemporaryDirectory() as out_dir:
            cfg = compose_run(base, out_dir, device)
            net = instantiate(without_applied(cfg, "model"), num_classes=10, input_shape=[3, 32, 32]).to(device)
            flops = training_flops_per_image(net, (3, 32, 32), device)
        row = {"gflop_per_image": round(flops / 1e9, 3)}
        for compiled in ("false", "true"):
            metrics, summary = run_epochs([*base, f"trainer.compile={compiled}"], device)
            rate = max(m["samples_per_sec"] for m in metrics[1:])  # the fastest epoch; the first holds compilation
            key = "compiled" if compiled == "true" else "eager"
            row[f"{key}_images_per_sec"] = round(rate, 1)
            row[f"{key}_mfu"] = round(rate * flops / peak, 4) if peak else None
            row[f"{key}_peak_memory"] = {k: v for k, v in summary.items() if k.startswith("peak_")}
        out[model] = row
    return {"throughput": out, "peak_tflops": peak / 1e12 if peak else None}


# ------------------------------------------------------------------------------------------------ cpu
MATMUL_SIZES = (256, 512, 1024, 2048)


def matmul_flops_per_sec(device: torch.device, sizes=MATMUL_SIZES, repeats: int = 5) -> tuple[float, int]:
    """(FLOP/s, n) of the fastest n x n fp32 matmul over `sizes`, each the best of `repeats` (2n^3
    FLOPs each): the most this machine's BLAS reaches, the ceiling for the training rate. One size
    is not a ceiling: a smaller one that fits the caches can run faster than 2048."""
    best_rate, best_n = 0.0, 0
    for n in sizes:
        a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
        a @ b  # warm-up: threads, caches
        fastest = float("inf")
        for _ in range(repeats):
            synchronize(device)
            start = time.perf_counter()
            a @ b
            synchronize(device)
            fastest = min(fastest, time.perf_counter() - start)
        if 2 * n**3 / fastest > best_rate:
            best_rate, best_n = 2 * n**3 / fastest, n
    return best_rate, best_n


CPU_MODELS = (("cnn", 1.0), ("resnet18", 0.25))


def bench_cpu(device: torch.device, quick: bool) -> dict:
    """Training FLOP/s of the project's loop (run(): Mixup, SGD, batch 128, 3x32x32, diagnostics off)
    over the fastest square matmul's FLOP/s (`MATMUL_SIZES`) measured just before it in this process,
    for cnn (width 1) and resnet18 (width 0.25), with the default layout (channels_last for conv nets)
    and without it.
    The rate is the fastest epoch after the first (which holds the one-off start-up costs)."""
    from enlighten.models.cnn import cnn
    from enlighten.models.resnet import resnet18

    factories = {"cnn": cnn, "resnet18": resnet18}
    batch, steps, epochs = 128, (8 if quick else 25), (3 if quick else 4)
    measured = f"best of epochs 2-{epochs}" if epochs > 2 else "epoch 2"
    out: dict = {
        "setting": f"run(), strategy=mixup, batch {batch}, 3x32x32 synthetic, {steps} steps an epoch, {measured}",
        "threads": torch.get_num_threads(),
    }
    for model, width in CPU_MODELS:
        flops = training_flops_per_image(factories[model](10, (3, 32, 32), width=width), (3, 32, 32), device)
        row: dict = {"gflop_per_image": round(flops / 1e9, 4)}
        for layout in ("true", "false"):
            matmul, matmul_n = matmul_flops_per_sec(device)
            metrics, _ = run_epochs(
                [
                    "dataset=synthetic",
                    f"dataset.num_train={batch * steps}",
                    "dataset.num_test=128",
                    f"model={model}",
                    f"model.width={width}",
                    "strategy=mixup",
                    "phase=never",
                    "diagnostics=off",
                    "logger=none",
                    f"trainer.batch_size={batch}",
                    f"trainer.epochs={epochs}",
                    "trainer.train_eval_samples=128",
                    f"trainer.eval_every={epochs}",
                    "trainer.checkpoint_every=0",
                    f"trainer.channels_last={layout}",
                ],
                device,
            )
            rate = max(m["samples_per_sec"] for m in metrics[1:])
            key = "channels_last" if layout == "true" else "contiguous"
            row[key] = {
                "images_per_sec": round(rate, 1),
                "matmul_gflops": round(matmul / 1e9, 1),
                "matmul_n": matmul_n,
                "matmul_share": round(rate * flops / matmul, 3),
            }
        row["channels_last_speedup"] = round(
            row["channels_last"]["images_per_sec"] / row["contiguous"]["images_per_sec"], 3
        )
        out[f"{model}_w{width:g}"] = row
    return {
        "matmul_share": {
            name: row["channels_last"]["matmul_share"]
            for name, row in out.items()
            if isinstance(row, dict) and "channels_last" in row
        },
        "cpu": out,
    }


# ----------------------------------------------------------------------------------------------- main
SECTIONS = ("loop", "pipeline", "diagnostics", "sweep", "throughput", "cpu")


def print_table(report: dict) -> None:
    rows = [
        ("loop_ratio (diagnostics off)", report.get("loop_ratio"), ">= 0.95"),
        ("loop_ratio (diagnostics default)", report.get("loop_ratio_diagnostics"), ""),
        ("pipeline_ratio", report.get("pipeline_ratio"), ">= 10 (CPU)"),
        ("diagnostics_ratio (cnn MNIST run)", report.get("diagnostics_ratio"), ""),
        ("diagnostics_enp_overhead", report.get("diagnostics_enp_overhead"), "<= 0.10"),
        ("diagnostics_short_run_share", report.get("diagnostics_short_run_share"), "<= 0.10"),
        ("peak_rss_mb (one run)", report.get("peak_rss_mb"), ""),
        ("sweep jobs/h without reuse", report.get("sweep", {}).get("jobs_per_hour_without_reuse"), ""),
        ("sweep jobs/h with reuse", report.get("sweep", {}).get("jobs_per_hour_with_reuse"), ""),
        ("sweep jobs/h packed (joblib)", report.get("sweep", {}).get("jobs_per_hour_packed"), ""),
        ("packing_ratio (packed / one by one)", report.get("packing_ratio"), "> 1: pack"),
    ]
    for model, share in report.get("matmul_share", {}).items():
        rows.append((f"matmul_share {model}", share, ">= 0.6 (idle 2-core CPU)"))
    for model, row in report.get("throughput", {}).items():
        for key in ("eager", "compiled"):
            mfu = row[f"{key}_mfu"]
            rows.append(
                (
                    f"{model} {key} img/s" + (f" (MFU {mfu:.1%})" if mfu else ""),
                    row[f"{key}_images_per_sec"],
                    ">= 40000 (H100)" if key == "compiled" else "",
                )
            )
    print(f"\n{report['device']}, {report['date']}")
    print(f"{'figure':40} {'value':>12}  target")
    for name, value, target in rows:
        if value is not None:
            print(f"{name:40} {value:>12}  {target}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small settings (about a minute on a CPU)")
    ap.add_argument("--only", default=None, help=f"comma-separated sections of {','.join(SECTIONS)}")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--peak-tflops", type=float, default=None, help="the device's peak bf16 TFLOP/s, for MFU")
    ap.add_argument("--out", default=None, help="also write the JSON report to this file")
    args = ap.parse_args()
    device = resolve_device(args.device)
    only = SECTIONS if args.only is None else tuple(s.strip() for s in args.only.split(","))
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        ap.error(f"unknown section(s) {unknown}; choose from {list(SECTIONS)}")
    if args.only is None:  # GPU figures on a GPU, CPU figures on a CPU; --only runs either anywhere
        only = tuple(s for s in only if s != ("cpu" if device.type == "cuda" else "throughput"))
    register_configs()
    os.environ.setdefault("WANDB_SILENT", "true")
    np.random.seed(0)
    report: dict = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({os.cpu_count()} cores)",
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "quick": args.quick,
    }
    start = time.perf_counter()
    seconds = {}
    for section in only:
        t0 = time.perf_counter()
        if section == "loop":
            loop = bench_loop(device, args.quick)
            report.update(
                loop_ratio=loop["loop_ratio"], loop_ratio_diagnostics=loop["loop_ratio_diagnostics"], loop=loop
            )
        elif section == "pipeline":
            pipeline = bench_pipeline(device, args.quick)
            report.update(pipeline_ratio=pipeline["pipeline_ratio"], pipeline=pipeline)
        elif section == "diagnostics":
            report.update(bench_diagnostics(device, args.quick, report.get("loop")))
        elif section == "sweep":
            sweep = bench_sweep(device, args.quick)
            report.update(sweep=sweep, packing_ratio=sweep["packing_ratio"], **sweep["peak_memory"])
        elif section == "cpu":
            report.update(bench_cpu(device, args.quick))
        elif section == "throughput":
            report.update(bench_throughput(device, args.quick, args.peak_tflops))
        seconds[section] = round(time.perf_counter() - t0, 1)
    report["section_seconds"] = seconds
    report["seconds"] = round(time.perf_counter() - start, 1)
    text = json.dumps(report)
    print(text)
    if args.out:
        atomic_write_text(args.out, text + "\n")
    print_table(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
