"""Shared fixtures: where the real data is, Hydra's compose API, and subprocess runs of train.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from enlighten.config import register_configs

if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    # `make test` runs several pytest workers (pytest-xdist): each, and the train.py processes it starts,
    # gets its share of the cores, set before torch starts its thread pool. Oversubscribed, torch's
    # threads wait on each other and a run slows down several times.
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, _cores // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ENLIGHTEN_DATA_DIR", REPO.parent / "shared" / "data")).resolve()

register_configs()


@pytest.fixture(autouse=True)
def _deterministic_mode_off_after_each_test():
    """A run with trainer.deterministic=true switches torch's deterministic mode on for the process;
    switched off after every test, so that no test sees the previous one's mode."""
    yield
    import torch

    torch.use_deterministic_algorithms(False)


def needs_shared(*parts: str):
    """Skip (with the reason) when the shared real data is absent."""
    path = SHARED_DATA.joinpath(*parts)
    return pytest.mark.skipif(not path.exists(), reason=f"real data not found at {path} (set ENLIGHTEN_DATA_DIR)")


def compose_cfg(overrides: list[str], output_dir: Path):
    """Compose the real config tree through Hydra's compose API (no hydra runtime)."""
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg


def user_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell for a train.py subprocess. Without WANDB_SERVICE: once a test
    has used W&B in the pytest process, wandb puts its service's address there, and every child would
    log through pytest's long-lived service instead of its own (a killed child's run id then stays
    "in use" there for the rest of the session)."""
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    return {**env, "ENLIGHTEN_DATA_DIR": str(SHARED_DATA), **extra}


def run_train(args: list[str], cwd: Path, timeout: int = 300, check: bool = True) -> subprocess.CompletedProcess:
    """Run train.py in a subprocess, as a user would."""
    env = user_env(ENLIGHTEN_CACHE_DIR=str(cwd / "cache"))
    proc = subprocess.run(
        [sys.executable, str(REPO / "train.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"train.py failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def read_run(run_dir: Path) -> tuple[list[dict], dict]:
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    summary = json.loads((run_dir / "summary.json").read_text())
    return metrics, summary


TINY = ["debug=tiny"]  # conf/debug/tiny.yaml: synthetic 8x8 images, the small CNN, 2 epochs of 8 steps, CPU


@pytest.fixture
def tiny_run(tmp_path):
    """`tiny_run(*overrides, name="run")` trains the tiny config (conf/debug/tiny.yaml) with `overrides`
    through the real run() into `tmp_path/name`, and returns its (metrics rows, summary)."""
    from enlighten.run import run

    def train(*overrides: str, name: str = "run") -> tuple[list[dict], dict]:
        run(compose_cfg([*TINY, *overrides], tmp_path / name))
        return read_run(tmp_path / name)

    return train


@pytest.fixture(scope="session")
def cifar_folder(tmp_path_factory) -> Path:
    """A small CIFAR-10 image folder made by the shared prepare.py (real JPEGs)."""
    prepare = SHARED_DATA / "cifar10" / "prepare.py"
    if not prepare.exists():
        pytest.skip(f"CIFAR-10 copy not found at {prepare}")
    out = tmp_path_factory.mktemp("cifar10")
    subprocess.run(
        [sys.executable, str(prepare), str(out), "--per-class-train", "200", "--per-class-test", "50"],
        check=True,
        capture_output=True,
    )
    return out


TIMING_KEYS = ("samples_per_sec", "wall_time_s")  # the only values two identical runs may differ in


def without_timing(rows: list[dict]) -> list[dict]:
    """Metrics rows without their timings, for comparing runs bitwise."""
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows]


def outcome(run_dir: Path) -> tuple:
    """Everything a run reports that must not depend on interruptions: metrics, diagnostics, the
    summary's numbers."""
    metrics, summary = read_run(run_dir)
    diagnostics = [json.loads(x) for x in (run_dir / "diagnostics.jsonl").read_text().splitlines()]
    detector = (run_dir / "detector.jsonl").read_text() if (run_dir / "detector.jsonl").exists() else ""
    keep = {
        k: v
        for k, v in summary.items()
        if k.startswith(("final_", "best_", "enp_", "steps", "epochs", "status", "num_params"))
    }
    return without_timing(metrics), diagnostics, detector, keep


# One epoch takes about a second on a CPU: long enough to be killed in its middle.
KILLABLE = [
    "dataset=synthetic",
    "dataset.num_train=2048",
    "dataset.num_test=256",
    "dataset.image_size=16",
    "model=cnn",
    "trainer.batch_size=32",
    "trainer.epochs=4",
    "trainer.deterministic=true",
    "trainer.train_eval_samples=256",
    "strategy=mixup_pause",
    "phase=accuracy",
    "phase.threshold=0.3",
    "diagnostics.enp_every_steps=10",
    "diagnostics.every_steps=20",
    "logger=wandb",
    "trainer.device=cpu",
]


SYNCS = {"item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__"}  # reads to the host


def counting_syncs():
    """`with counting_syncs() as counter:` counts in `counter.count` the calls that read a tensor's
    value on the host (each one waits for the device)."""
    from torch.overrides import TorchFunctionMode  # torch only after the thread settings above

    class CountSyncs(TorchFunctionMode):
        def __init__(self) -> None:
            super().__init__()
            self.count = 0

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.count += getattr(func, "__name__", "") in SYNCS
            return func(*args, **(kwargs or {}))

    return CountSyncs()


TORCHVISION_SETS = {"cifar10", "cifar100", "mnist", "fashion_mnist"}
FOLDER_SETS = {"image_folder", "tiny_imagenet", "imagenet"}


def options(group: str) -> list[str]:
    """Every option of a group, those in sub-folders too (`experiment=hlr/ucr`)."""
    root = REPO / "conf" / group
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))
