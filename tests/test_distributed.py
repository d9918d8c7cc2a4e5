"""Data-parallel training through torchrun on the CPU (gloo backend, 2 processes): the same run as one
process with the same global batch, one ENP end for every process, one set of result files and one
W&B run, and a resume on another number of processes."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest
import torch

from enlighten.data.image_folder import image_folder
from enlighten.data.synthetic import synthetic
from enlighten.data.text import char_text
from enlighten.run import run
from tests.conftest import REPO, SHARED_DATA, compose_cfg, needs_shared, read_run, user_env, without_timing

pytestmark = pytest.mark.e2e  # trains or starts train.py: apart from the unit tests (make test-unit)

# digits through an MLP (no batch norm: per-process batch statistics would make two processes differ
# from one by design), deterministic, the ENP detected at 50% clean accuracy.
SETTING = [
    "dataset=digits",
    "model=mlp",
    "model.width=0.5",
    "trainer.epochs=3",
    "trainer.batch_size=64",
    "trainer.device=cpu",
    "trainer.deterministic=true",
    "phase=accuracy",
    "phase.check_every=2",
    "phase.probe_size=256",
    "optim.lr=0.05",
    "diagnostics=off",
]
CLOSE = dict(rel=1e-4, abs=1e-6)


def _batches(data, rank: int, world: int) -> list:
    return list(data.train_batches(8, torch.Generator().manual_seed(3), (rank, world)))


def test_processes_take_disjoint_slices_that_make_up_the_one_process_batch(cifar_folder):
    """Every process draws the same epoch plan and keeps its slice of each global batch: in-memory
    images (crops and flips), text windows and a streamed image folder (random-resized crops seeded
    per sample, so also the same with two DataLoader workers)."""
    datasets = {
        "images": synthetic(num_train=40, num_test=8, image_size=8, crop_padding=2, flip=True),
        "text": char_text("the quick brown fox jumps over the lazy dog. " * 20, block_size=6),
        "stream": image_folder(str(cifar_folder), in_memory=False, num_workers=0, fraction=0.02, flip=True),
    }
    for name, data in datasets.items():
        one, halves = _batches(data, 0, 1), [_batches(data, r, 2) for r in range(2)]
        assert len(one) == len(halves[0]) == len(halves[1]) == data.steps_per_epoch(8), name
        for (x, y), (x0, y0), (x1, y1) in zip(one, *halves):
            assert len(x0) == len(x1) == 4, name
            torch.testing.assert_close(torch.cat([x0, x1]), x, msg=name)
            torch.testing.assert_close(torch.cat([y0, y1]), y, msg=name)
    with_workers = image_folder(str(cifar_folder), in_memory=False, num_workers=2, fraction=0.02, flip=True)
    for (x, y), (xw, yw) in zip(_batches(datasets["stream"], 0, 1), _batches(with_workers, 0, 1), strict=True):
        torch.testing.assert_close(xw, x)
        torch.testing.assert_close(yw, y)


def torchrun(args: list[str], cwd, nproc: int = 2) -> subprocess.CompletedProcess:
    env = user_env(ENLIGHTEN_CACHE_DIR=str(cwd / "cache"))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            str(REPO / "train.py"),
            *args,
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


def enp_ends(stdout: str) -> dict[int, int]:
    """Rank -> the step at which that process says the ENP ended."""
    return {int(r): int(s) for r, s in re.findall(r"\[rank (\d)\] ENP ended at step (\d+)", stdout)}


def assert_same_run(metrics_a, summary_a, metrics_b, summary_b):
    assert len(metrics_a) == len(metrics_b)
    for a, b in zip(metrics_a, metrics_b):
        for key in ("step", "in_enp", "dropped"):
            assert a[key] == b[key], key
        for key in ("train_loss", "test_loss", "train_acc", "test_acc"):
            assert a[key] == pytest.approx(b[key], **CLOSE), key
    for key in ("enp_end_step", "steps"):
        assert summary_a[key] == summary_b[key]
    assert summary_a["final_test_acc"] == pytest.approx(summary_b["final_test_acc"], **CLOSE)


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """One data-parallel run of SETTING on 2 processes, logged to W&B (offline)."""
    cwd = tmp_path_factory.mktemp("ddp")
    # two checkpoints kept after completion: the resume test below starts from the one before the last
    proc = torchrun([*SETTING, "logger=wandb", "strategy=vanilla", "trainer.keep_checkpoints=2"], cwd)
    (run_dir,) = [p.parent for p in (cwd / "outputs").rglob("summary.json")]
    return cwd, run_dir, proc


def test_two_processes_train_as_one_with_the_same_global_batch(two_processes, tmp_path):
    _, run_dir, proc = two_processes
    metrics, summary = read_run(run_dir)
    run(compose_cfg([*SETTING, "logger=none", "strategy=vanilla"], tmp_path))
    assert_same_run(metrics, summary, *read_run(tmp_path))
    ends = enp_ends(proc.stdout)
    assert set(ends) == {0, 1} and ends[0] == ends[1] == summary["enp_end_step"]  # one switch, same step
    assert summary["world_size"] == 2


def test_one_set_of_result_files_and_one_wandb_run(two_processes):
    cwd, run_dir, proc = two_processes
    assert [p.name for p in (cwd / "outputs").glob("*/*")] == [run_dir.name]  # one run directory
    assert len(list(run_dir.rglob("summary.json"))) == 1 and len(list(run_dir.rglob("metrics.jsonl"))) == 1
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("*.pt")) == [
        "epoch_0002.pt",
        "epoch_0003.pt",
    ]  # keep_checkpoints=2
    assert proc.stdout.count("epoch 2 of 3 ") == 1  # one line per epoch, not one per process


def test_a_two_process_checkpoint_resumes_on_one_process(two_processes, tmp_path):
    """The global batch and every random stream are shared, so continuing a 2-process run on one
    process gives the uninterrupted run's numbers."""
    _, run_dir, _ = two_processes
    resumed = tmp_path / "resumed"
    shutil.copytree(run_dir, resumed)
    (resumed / "checkpoints" / "epoch_0003.pt").unlink()  # as if stopped after epoch 2
    (resumed / "summary.json").unlink()
    summary = run(compose_cfg([*SETTING, "logger=wandb", "strategy=vanilla", "trainer.resume=force"], resumed))
    assert summary["resumed_from"].endswith("epoch_0002.pt")
    assert_same_run(*read_run(run_dir), *read_run(resumed))


def test_high_loss_removal_ranks_the_global_batch_when_asked(tmp_path):
    """scope=global drops the highest losses of the whole global batch: the one-process run again."""
    hlr = ["strategy=high_loss_removal", "removal.drop_fraction=0.25", "strategy.weighting.scope=global", "logger=none"]
    torchrun([*SETTING, *hlr, "hydra.run.dir=two"], tmp_path)
    run(compose_cfg([*SETTING, *hlr], tmp_path / "one"))
    two, one = read_run(tmp_path / "two"), read_run(tmp_path / "one")
    assert two[0][0]["dropped"] == one[0][0]["dropped"] > 0
    assert_same_run(*two, *one)


@needs_shared("MNIST", "raw")
def test_acceptance_mnist_cnn_on_two_processes(tmp_path):
    """The issue's command: one summary.json; both processes report the same ENP end step."""
    proc = torchrun(
        [
            "dataset=mnist",
            "model=cnn",
            "dataset.fraction=0.1",
            "trainer.epochs=2",
            f"paths.data_dir={SHARED_DATA}",
            "logger=none",
            "phase=accuracy",
        ],
        tmp_path,
    )
    summaries = list((tmp_path / "outputs").rglob("summary.json"))
    assert len(summaries) == 1
    _, summary = read_run(summaries[0].parent)
    assert summary["status"] == "completed" and summary["world_size"] == 2
    finished = dict(re.findall(r"\[rank (\d)\] finished at step \d+; ENP end step (\w+)", proc.stdout))
    assert finished == {"0": str(summary["enp_end_step"]), "1": str(summary["enp_end_step"])}
    assert summary["enp_end_step"] is not None


@pytest.mark.slow
def test_mixup_on_two_processes_is_reproducible(tmp_path):
    """Lambda and partners are drawn alike on every launch: the same 2-process run twice, bitwise."""
    args = [*SETTING, "strategy=mixup", "logger=none"]
    torchrun([*args, "hydra.run.dir=a"], tmp_path)
    torchrun([*args, "hydra.run.dir=b"], tmp_path)
    a, b = (read_run(tmp_path / d)[0] for d in ("a", "b"))
    assert without_timing(a) == without_timing(b)
    assert all(m["mixing"] == 1.0 for m in a)
