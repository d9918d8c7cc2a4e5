"""The benchmark harness runs and reports what it promises (its speed targets are not tests)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from enlighten.models.resnet import resnet18
from tests.conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import bench  # noqa: E402


def test_training_flops_of_resnet18_at_32px_match_the_known_figure():
    """3.3 GFLOP per training image (forward 1.1, backward twice that): the basis of the MFU figure."""
    flops = bench.training_flops_per_image(resnet18(num_classes=10, input_shape=[3, 32, 32]), (3, 32, 32),
                                           torch.device("cpu"))
    assert 3.2e9 < flops < 3.45e9


def test_bench_quick_prints_and_writes_the_report(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "bench.py"), "--quick", "--only", "pipeline,sweep",
                           "--device", "cpu", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("{")))
    assert printed == json.loads(out.read_text())
    assert printed["pipeline_ratio"] > 1  # batched on-device augmentation beats per-sample PIL transforms
    assert printed["peak_rss_mb"] > 50
    sweep = printed["sweep"]
    assert sweep["jobs_per_hour_with_reuse"] > 0 and sweep["jobs_per_hour_without_reuse"] > 0
    assert "pipeline_ratio" in proc.stdout.split("}")[-1]  # the readable table follows the JSON


def test_bench_refuses_an_unknown_section():
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "bench.py"), "--only", "loops"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "unknown section(s) ['loops']" in proc.stderr


@pytest.mark.slow
def test_bench_throughput_section_runs_on_cpu(tmp_path):
    """The GPU section's code path (bf16 autocast, channels_last, compile, FLOP count) end to end, on CPU."""
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "bench.py"), "--quick", "--only", "throughput",
                           "--device", "cpu", "--peak-tflops", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    for model in ("resnet18", "vit_tiny"):
        row = report["throughput"][model]
        assert row["eager_images_per_sec"] > 0 and row["compiled_images_per_sec"] > 0
        assert row["compiled_mfu"] == pytest.approx(row["compiled_images_per_sec"] * row["gflop_per_image"] / 1e3, rel=0.01)
