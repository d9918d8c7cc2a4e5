"""End to end: train.py in a subprocess on real data, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests import wandb_records
from tests.conftest import REPO, SHARED_DATA, needs_shared, read_run, run_train, user_env

pytestmark = pytest.mark.e2e  # trains or starts train.py: apart from the unit tests (make test-unit)

METRIC_KEYS = {
    "epoch",
    "step",
    "lr",
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "alpha",
    "samples_per_sec",
    "wall_time_s",
}
MNIST_CLASS_COUNTS = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
SUMMARY_KEYS = {"status", "error", "final_test_acc", "epochs", "steps", "num_params", "wall_time_s", "config"}


@needs_shared("MNIST", "raw")
def test_mnist_cnn_two_epochs(tmp_path):
    run_dir = tmp_path / "run"
    run_train(
        [
            "dataset=mnist",
            "model=cnn",
            "trainer.epochs=2",
            f"paths.data_dir={SHARED_DATA}",
            "dataset.fraction=0.05",
            "dataset.download=false",
            "logger=none",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=tmp_path,
    )
    metrics, summary = read_run(run_dir)
    assert [m["epoch"] for m in metrics] == [0, 1]
    assert all(METRIC_KEYS <= m.keys() for m in metrics)
    num_train = sum(round(0.05 * n) for n in MNIST_CLASS_COUNTS)
    assert metrics[-1]["step"] == summary["steps"] == 2 * (num_train // 128)
    assert metrics[0]["alpha"] == 1.0 and metrics[0]["mixing"] == 1.0  # default strategy: mixup at mix.alpha
    assert SUMMARY_KEYS <= summary.keys() and summary["status"] == "completed" and summary["error"] is None
    assert summary["final_test_acc"] == metrics[-1]["test_acc"] > 0.3  # well above chance (0.1)
    assert summary["config"]["dataset"]["name"] == "mnist" and summary["epochs"] == 2


def test_image_folder_resnet18_from_prepare_py(cifar_folder, tmp_path):
    run_dir = tmp_path / "run"
    run_train(
        [
            "dataset=image_folder",
            f"dataset.root={cifar_folder}",
            "model=resnet18",
            "model.width=0.25",
            "dataset.fraction=0.1",
            "trainer.epochs=1",
            "trainer.batch_size=32",
            "logger=none",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=tmp_path,
    )
    metrics, summary = read_run(run_dir)
    assert summary["status"] == "completed" and len(metrics) == 1
    assert summary["steps"] == 200 // 32
    assert summary["num_params"] < 11_173_962 / 10  # width 0.25: about 1/16 of the parameters
    assert 0.0 <= summary["final_test_acc"] <= 1.0
    assert list((tmp_path / "cache").rglob("*.pt")), "the decoded folder is cached for the next run"


def _wandb_run(run_dir):
    (path,) = (run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    return wandb_records.read_run(path)


def test_wandb_offline_run_lives_in_the_run_directory(tmp_path):
    """A single run: named by the experiment's `name`, which is also a tag beside `tags`."""
    run_dir = tmp_path / "run"
    run_train(
        [
            "dataset=digits",
            "model=cnn",
            "trainer.epochs=1",
            "name=my_experiment",
            "tags=[pilot]",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=tmp_path,
    )
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1
    _, summary = read_run(run_dir)
    assert summary["status"] == "completed"
    wandb_run = _wandb_run(run_dir)
    assert wandb_run["run"].display_name == "my_experiment" and list(wandb_run["run"].tags) == [
        "pilot",
        "my_experiment",
    ]
    assert wandb_run["run"].job_type == "mixup" and wandb_run["config"]["choices"]["model"] == "cnn"
    assert wandb_run["config"]["provenance"] == summary["attempts"][-1]["provenance"]  # commit, versions, SLURM ids


def test_multirun_2x2_gives_one_directory_and_one_wandb_run_per_job(tmp_path):
    sweep = tmp_path / "sweep"
    run_train(
        [
            "-m",
            "strategy=vanilla,mixup",
            "mix.alpha=0.2,1.0",
            "dataset=digits",
            "model=cnn",
            "trainer.epochs=1",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=tmp_path,
        timeout=600,
    )
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 4
    run_ids = set()
    seen = set()
    for job in jobs:
        metrics, summary = read_run(job)
        assert summary["status"] == "completed" and len(metrics) == 1
        wandb_runs = list((job / "wandb").glob("offline-run-*"))
        assert len(wandb_runs) == 1, f"{job} has {len(wandb_runs)} W&B runs"
        run_ids.add(wandb_runs[0].name.rsplit("-", 1)[-1])
        _check_wandb_against_our_files(job, metrics, summary, group=f"{tmp_path.name}/sweep")
        seen.add((summary["choices"]["strategy"], summary["config"]["mix"]["alpha"]))
        expected_alpha = 0.0 if summary["choices"]["strategy"] == "vanilla" else summary["config"]["mix"]["alpha"]
        assert metrics[0]["alpha"] == pytest.approx(expected_alpha)
    assert len(run_ids) == 4
    assert seen == {("vanilla", 0.2), ("vanilla", 1.0), ("mixup", 0.2), ("mixup", 1.0)}
    assert "strategy=mixup" in " ".join(p.name for p in jobs)  # directory names show the overrides
    # One `wandb sync` for the whole sweep: the nested offline runs found (dry run: no network here)
    sync = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "sweep.py"), "wandb-sync", str(sweep), "--dry-run"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert sync.stdout.startswith("4 offline W&B runs: -m wandb sync ")
    assert all(str(next((job / "wandb").glob("offline-run-*"))) in sync.stdout for job in jobs)


def _check_wandb_against_our_files(job, metrics, summary, group):
    """What W&B holds, read back from its offline file, against metrics.jsonl, diagnostics.jsonl and
    summary.json: the same epoch rows; the probe rows on their own axis; final numbers only in the
    summary; the sweep as the group, the swept keys as the name, the choices in the config."""
    wandb_run = _wandb_run(job)
    run = wandb_run["run"]
    swept = [o for o in summary["overrides"] if o.startswith(("strategy=", "mix.alpha="))]
    assert (
        run.run_group == group
        and run.display_name == ",".join(swept)
        and run.job_type == summary["choices"]["strategy"]
    )
    assert wandb_run["config"]["choices"] == summary["choices"]
    assert wandb_run["config"]["logger"]["group"] == group and wandb_run["config"]["seed"] == summary["config"]["seed"]
    epochs = [
        {k: h[k] for k in m if m[k] is not None}
        for h in wandb_run["history"]
        if "epoch" in h
        for m in [metrics[h["epoch"]]]
    ]
    assert epochs == [{k: v for k, v in m.items() if v is not None} for m in metrics]
    probes = [h for h in wandb_run["history"] if "probe/step" in h]
    diagnostics = [json.loads(x) for x in (job / "diagnostics.jsonl").read_text().splitlines()]
    plain = [d for d in diagnostics if "event" not in d]
    assert [h["probe/step"] for h in probes] == [d["step"] for d in diagnostics]  # rows merge at one step
    assert all(
        probes[[p["probe/step"] for p in probes].index(d["step"])]["probe/diag/zero_act"] == d["diag/zero_act"]
        for d in plain
    )
    # One type per key: the epoch's share in ENP; a probe's flag under its own key, as a number.
    assert not any(
        isinstance(h.get("in_enp"), bool) or isinstance(h.get("probe/in_enp"), bool) for h in wandb_run["history"]
    )
    assert {h["probe/in_enp"] for h in probes if "probe/in_enp" in h} <= {0, 1}
    numbers = {k: v for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    assert {k: wandb_run["summary"][k] for k in numbers} == numbers
    leftovers = [
        k
        for k in wandb_run["summary"]
        if k in ("epoch", "event", "test_acc", "in_enp") or k.startswith(("probe/", "enp_end/", "diag/"))
    ]
    assert not leftovers and "traceback" not in wandb_run["summary"]


@pytest.mark.parametrize(
    "args, message",
    # what train.py prints for our errors, one of the config and one of the data (the rest, in-process:
    # test_bad_input.py)
    [
        (["dataset=mnist", "paths.data_dir=/no/such/dir", "dataset.download=false"], "/no/such/dir/MNIST/raw"),
        (["+model.widht=2"], "model.widht"),
    ],
)
def test_bad_input_fails_before_training_naming_the_problem(args, message, tmp_path):
    run_dir = tmp_path / "run"
    proc = run_train(["model=cnn", "logger=none", f"hydra.run.dir={run_dir}", *args], cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr  # the message alone, as Hydra prints its own errors
    assert not (run_dir / "metrics.jsonl").exists()  # no epoch was trained


def test_failed_run_writes_a_failed_summary(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_train(
        ["dataset=image_folder", "dataset.root=/no/such/folder", "logger=none", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode != 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "/no/such/folder" in summary["error"]


def test_help_and_the_resolved_config_answer_without_importing_torch(tmp_path):
    """`--help` lists the groups and `--cfg job --resolve` shows the folder the data is read from, both
    without torch (seconds of CPU that Hydra's own answer does not need)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", str(REPO / "train.py"), "--help"],
        cwd=tmp_path,
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert proc.returncode == 0 and "strategy: alpha_boost," in proc.stdout
    assert "phase (when the ENP ends)" in proc.stdout and "--cfg job --resolve" in proc.stdout
    assert "hydra" in imported and "torch" not in imported
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "train.py"),
            "--cfg",
            "job",
            "--resolve",
            "dataset=mnist",
            "paths.data_dir=/data/here",
        ],
        cwd=tmp_path,
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "  root: /data/here\n" in proc.stdout and "output_dir: null" in proc.stdout
