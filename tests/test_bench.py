"""The benchmark harness runs and reports what it promises (its speed targets are not tests)."""

from __future__ import annotations

import json
import subprocess
import sys

import joblib
import pytest
import torch

from enlighten.models.resnet import resnet18
from tests.conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import bench  # noqa: E402


def test_training_flops_of_resnet18_at_32px_match_the_known_figure():
    """3.3 GFLOP per training image (forward 1.1, backward twice that): the basis of the MFU figure."""
    flops = bench.training_flops_per_image(
        resnet18(num_classes=10, input_shape=[3, 32, 32]), (3, 32, 32), torch.device("cpu")
    )
    assert 3.2e9 < flops < 3.45e9


@pytest.mark.slow  # 5-7 minutes on 2 cores (its sweep section trains packed jobs): make test-slow
def test_bench_quick_prints_and_writes_the_report(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "bench.py"),
            "--quick",
            "--only",
            "pipeline,sweep,cpu",
            "--device",
            "cpu",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("{")))
    assert printed == json.loads(out.read_text())
    assert printed["pipeline_ratio"] > 1  # batched on-device augmentation beats per-sample PIL transforms
    assert printed["peak_rss_mb"] > 50
    sweep = printed["sweep"]
    assert sweep["jobs_per_hour_with_reuse"] > 0 and sweep["jobs_per_hour_without_reuse"] > 0
    # packed: joblib's workers, each job with a share of the cores
    assert printed["packing_ratio"] == pytest.approx(
        sweep["jobs_per_hour_packed"] / sweep["jobs_per_hour_with_reuse"], rel=0.01
    )
    assert sweep["threads_per_job"]["with_reuse"] == torch.get_num_threads()
    # joblib's workers: as many processes as workers, each job with its share of the cores' threads
    workers = sweep["packed_workers"]
    assert sweep["processes"] == {"without_reuse": 1, "with_reuse": 1, "packed": min(workers, sweep["jobs"])}
    assert sweep["threads_per_job"]["packed"] == max(1, joblib.cpu_count() // workers)
    # the CPU matmul share: training FLOP/s of cnn and resnet18 (width 0.25) over a matmul's, both layouts
    cpu = printed["cpu"]
    for name in ("cnn_w1", "resnet18_w0.25"):
        row = cpu[name]
        assert printed["matmul_share"][name] == row["channels_last"]["matmul_share"]
        for layout in ("channels_last", "contiguous"):
            r = row[layout]
            assert 0 < r["matmul_share"] < 3
            assert r["matmul_share"] == pytest.approx(
                r["images_per_sec"] * row["gflop_per_image"] / r["matmul_gflops"], rel=0.01
            )
    assert "matmul_share cnn_w1" in proc.stdout.split("}")[-1]
    assert "pipeline_ratio" in proc.stdout.split("}")[-1]  # the readable table follows the JSON


@pytest.mark.e2e
def test_bench_refuses_an_unknown_section():
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench.py"), "--only", "loops"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "unknown section(s) ['loops']" in proc.stderr


@pytest.mark.slow
def test_bench_throughput_section_runs_on_cpu(tmp_path):
    """The GPU section's code path (bf16 autocast, channels_last, compile, FLOP count) end to end, on CPU."""
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "bench.py"),
            "--quick",
            "--only",
            "throughput",
            "--device",
            "cpu",
            "--peak-tflops",
            "1",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    for model in ("resnet18", "vit_tiny"):
        row = report["throughput"][model]
        assert row["eager_images_per_sec"] > 0 and row["compiled_images_per_sec"] > 0
        assert row["compiled_mfu"] == pytest.approx(
            row["compiled_images_per_sec"] * row["gflop_per_image"] / 1e3, rel=0.01
        )


@pytest.mark.e2e
def test_gpu_check_refuses_without_cuda_before_any_work(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the refusal cannot be seen here")
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gpu_check.py"), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "make gpu-check needs an NVIDIA GPU with CUDA" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_gpu_check_smoke_runs_every_step_on_cpu(tmp_path):
    """The GPU check's own plumbing (its steps, their JSON and log) end to end, tiny, on a CPU; the
    gpu tests skip there."""
    from tests.conftest import SHARED_DATA

    npz = SHARED_DATA / "cifar10" / "cifar10_jpeg75.npz"
    if not npz.exists():
        pytest.skip(f"CIFAR-10 copy not found at {npz}")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gpu_check.py"), "--smoke", "--cifar", str(npz), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = json.loads((out / "gpu_check.json").read_text())
    assert proc.returncode == 0 and report["passed"], proc.stdout[-3000:]
    steps = report["steps"]
    assert steps["gpu_tests"]["tests"] >= 5 and steps["gpu_tests"]["skipped"] == steps["gpu_tests"]["tests"]
    assert steps["throughput"]["cpu"]["cnn_w1"]["channels_last"]["images_per_sec"] > 0
    run = steps["cifar10_resnet18"]
    assert run["status"] == "completed" and run["steps"] == 6 and run["runtime"]["channels_last"]
    assert "experiment=paper/cifar10_resnet18" in (out / "gpu_check.log").read_text()
