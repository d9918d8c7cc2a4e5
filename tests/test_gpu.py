"""The CUDA path, on a real GPU: bf16 autocast, channels_last, compile, the device-resident pipeline
without per-step host reads, exact resume and the dataset-level diagnostics. Marked `gpu`; skipped
(with the reason) where CUDA is absent, as in CI. `make gpu-check` runs them on a GPU machine."""

from __future__ import annotations

import math
import shutil

import pytest
import torch
from torch._dynamo.utils import counters

from enlighten.run import run
from tests.conftest import compose_cfg, counting_syncs, outcome, read_run

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run `make gpu-check` on one)"),
]

# A small conv net on CIFAR-size inputs: every conv-net code path of the GPU recipes, in seconds.
SMALL = [
    "dataset=synthetic",
    "dataset.num_train=2048",
    "dataset.num_test=512",
    "dataset.crop_padding=4",
    "dataset.flip=true",
    "model=resnet18",
    "model.width=0.25",
    "trainer.batch_size=256",
    "trainer.epochs=2",
    "trainer.train_eval_samples=512",
    "trainer.device=cuda",
    "logger=none",
    "diagnostics=off",
]


def test_bf16_and_channels_last_are_on_by_default_and_train(tmp_path):
    """trainer.precision=auto and channels_last=auto choose bf16 and NHWC on CUDA; the convolutions
    see NHWC activations and the loss falls."""
    layouts = []
    cfg = compose_cfg([*SMALL, "dataset.num_train=4096", "trainer.epochs=4"], tmp_path)
    handle = torch.nn.modules.module.register_module_forward_hook(
        lambda m, args, out: (
            layouts.append((args[0].is_contiguous(memory_format=torch.channels_last), out.dtype))
            if isinstance(m, torch.nn.Conv2d)
            else None
        )
    )
    try:
        summary = run(cfg)
    finally:
        handle.remove()
    metrics, _ = read_run(tmp_path)
    assert summary["runtime"] == {
        "device": "cuda",
        "torch_threads": summary["runtime"]["torch_threads"],
        "bf16": True,
        "channels_last": True,
        "eval_batch_size": 1024,
    }
    assert layouts and all(nhwc for nhwc, _ in layouts) and {dtype for _, dtype in layouts} == {torch.bfloat16}
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]
    assert summary["peak_cuda_allocated_mb"] > 0


def test_data_lives_on_the_gpu_and_no_step_reads_the_host(tmp_path):
    """Twice the steps per epoch, the same number of host reads: the augmentation, Mixup, the ENP
    switch and the metrics stay on the device until the epoch ends (the accuracy detectors read by
    design, every `phase.check_every` steps of the ENP)."""
    reads = []
    for num_train in (1024, 2048):
        cfg = compose_cfg(
            [
                *SMALL,
                f"dataset.num_train={num_train}",
                "trainer.sync_every=1000",
                "strategy=mixup_pause",
                "phase=fraction",
                "diagnostics=default",
            ],
            tmp_path / str(num_train),
        )
        with counting_syncs() as counter:
            run(cfg)
        reads.append(counter.count)
    assert reads[0] == reads[1]


def test_compile_on_cuda_trains_and_compiles_once(tmp_path):
    summaries = []
    for name, seed in (("compiled", 0), ("again", 1)):
        summaries.append(run(compose_cfg([*SMALL, "trainer.compile=true", f"seed={seed}"], tmp_path / name)))
        if name == "compiled":
            graphs = counters["stats"]["unique_graphs"]
    assert all(s["status"] == "completed" and math.isfinite(s["final_test_loss"]) for s in summaries)
    assert graphs >= 1 and counters["stats"]["unique_graphs"] == graphs  # the next job reuses the graph


def test_exact_resume_on_cuda(tmp_path):
    """A run continued from its epoch-1 checkpoint (written on the GPU) ends bitwise as the run that
    never stopped: deterministic kernels, the CUDA generator's state restored."""
    overrides = [
        *SMALL,
        "trainer.epochs=3",
        "trainer.deterministic=true",
        "strategy=mixup_pause",
        "phase=accuracy",
        "phase.threshold=0.3",
        "diagnostics=default",
        "diagnostics.enp_every_steps=2",
        "diagnostics.every_steps=4",
    ]
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    run(compose_cfg(overrides, reference))
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copy(reference / "checkpoints" / "epoch_0002.pt", resumed / "checkpoints" / "epoch_0002.pt")
    summary = run(compose_cfg(overrides, resumed))
    torch.use_deterministic_algorithms(False)
    assert summary["resumed_from"].endswith("epoch_0002.pt")
    assert outcome(resumed) == outcome(reference)


def test_dataset_scope_diagnostics_on_cuda_match_the_cpu(tmp_path):
    """The dataset-level interference at initialization: the same weights and pairs on both devices,
    the measures in fp32 (TF32 off for the comparison), so the values agree to 2%."""
    overrides = [
        "dataset=synthetic",
        "dataset.num_train=1024",
        "dataset.num_test=128",
        "model=cnn",
        "trainer.batch_size=128",
        "trainer.epochs=1",
        "trainer.train_eval_samples=128",
        "logger=none",
        "strategy=mixup",
        "diagnostics=dataset",
    ]
    values = {}
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # fp32 convolutions, as on the CPU (TF32 would round to 10 bits)
    try:
        for device in ("cpu", "cuda"):
            summary = run(compose_cfg([*overrides, f"trainer.device={device}"], tmp_path / device))
            values[device] = {
                k: v
                for k, v in summary.items()
                if k.startswith("init/data/") and isinstance(v, float) and not k.endswith("seconds")
            }
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
    assert values["cuda"] and values["cuda"].keys() == values["cpu"].keys()
    for key, cpu_value in values["cpu"].items():
        assert values["cuda"][key] == pytest.approx(cpu_value, rel=0.02, abs=1e-3), key
