"""The GPU check (`make gpu-check`): everything that needs CUDA, in one go of at most 8 minutes.

    python scripts/gpu_check.py --out DIR [--cifar NPZ] [--smoke]

1. the tests marked `gpu` (bf16, channels_last, compile, device-resident pipeline, exact resume on
   CUDA, dataset-level diagnostics);
2. the bench's throughput section (--quick): resnet18 and vit_tiny (patch 4) at 32x32, bf16, eager and
   compiled, images/s and model FLOPs utilization (targets: 40,000 images/s each, 60,000 for resnet18);
3. a short real run (3 epochs) of the CIFAR-10 ResNet-18 recipe (experiment=paper/cifar10_resnet18) on the
   CIFAR-10 copy (the shared data's cifar10_jpeg75.npz, unpacked by its prepare.py next to it).

Writes DIR/gpu_check.json (every figure, pass or fail per step), DIR/gpu_check.log (every
command's output) and DIR/bench.json (the bench's own report): three files, few enough to come back
whole from a lent machine. Refuses at once, exit code 2, without CUDA. `--smoke` runs the same steps tiny
on a CPU (the tests then skip): it checks the script itself, not the GPU.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Where `make gpu-data` copies the CIFAR-10 npz and its prepare.py (an ignored folder that travels with
# the working tree to a GPU machine), else the shared data folder.
CIFAR_CANDIDATES = (
    REPO / "data" / "cifar10" / "cifar10_jpeg75.npz",
    Path(os.environ.get("ENLIGHTEN_DATA_DIR", REPO.parent / "shared" / "data")) / "cifar10" / "cifar10_jpeg75.npz",
)
TARGETS = {"resnet18": 60_000, "vit_tiny": 40_000}  # training images/s, bf16, 32x32, H100/H200 class


BUDGET_S = 470  # the steps' limits together: the check ends within 8 minutes
DEADLINE = time.perf_counter() + BUDGET_S


def run_logged(command: list[str], log, limit: int) -> tuple[int, float]:
    """Run a command with its output appended to the log (unbuffered: a command stopped at its limit
    keeps what it printed); (exit code, seconds). Its limit is `limit` seconds or what is left of the
    check's budget, whichever is less; stopped there, it counts as exit 124."""
    timeout = max(1, min(limit, int(DEADLINE - time.perf_counter())))
    log.write(f"\n$ {' '.join(command)}   [limit {timeout} s]\n")
    log.flush()
    start = time.perf_counter()
    try:
        code = subprocess.run(
            command,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        ).returncode
    except subprocess.TimeoutExpired:
        code = 124
        log.write(f"\n[timed out after {timeout} s]\n")
    seconds = time.perf_counter() - start
    log.write(f"[exit {code}, {seconds:.1f} s]\n")
    log.flush()
    return code, round(seconds, 1)


def find_cifar(given: str | None) -> Path | None:
    candidates = [Path(given)] if given else list(CIFAR_CANDIDATES)
    return next((p for p in candidates if p.is_file() and (p.parent / "prepare.py").is_file()), None)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder for gpu_check.json and gpu_check.log")
    ap.add_argument("--cifar", default=None, help="the CIFAR-10 npz (default: data/cifar10/, then the shared data)")
    ap.add_argument("--smoke", action="store_true", help="tiny, on a CPU: checks this script, not the GPU")
    args = ap.parse_args()

    import torch  # after argparse: --help answers at once

    if not torch.cuda.is_available() and not args.smoke:
        print(
            "make gpu-check needs an NVIDIA GPU with CUDA: torch.cuda.is_available() is False on this machine "
            f"(torch {torch.__version__}, CUDA build {torch.version.cuda}). Run it on a GPU machine; the CPU "
            "figures come from `make bench`.",
            file=sys.stderr,
        )
        return 2
    cifar = find_cifar(args.cifar)
    if cifar is None:
        print(
            f"The CIFAR-10 copy was not found ({args.cifar or ' or '.join(map(str, CIFAR_CANDIDATES))}, each with "
            "prepare.py beside it): run `make gpu-data` first, or pass --cifar NPZ.",
            file=sys.stderr,
        )
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    report: dict = {
        "device": torch.cuda.get_device_name() if device == "cuda" else f"cpu ({os.cpu_count()} cores)",
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "smoke": args.smoke,
        "steps": {},
    }
    py = sys.executable
    start = time.perf_counter()
    with open(out / "gpu_check.log", "w") as log, tempfile.TemporaryDirectory() as tmp:
        # 1. the gpu tests (their own output in the log; the counts from pytest's summary line)
        junit = Path(tmp) / "gpu_tests.xml"
        code, seconds = run_logged(
            [
                py,
                "-m",
                "pytest",
                "-m",
                "gpu",
                "-v",
                "-p",
                "no:cacheprovider",
                f"--junitxml={junit}",
                "tests/test_gpu.py",
            ],
            log,
            limit=150,
        )
        report["steps"]["gpu_tests"] = {"exit_code": code, "seconds": seconds, **junit_counts(junit)}

        # 2. the bench's throughput section (on a CPU smoke run: its CPU section, quick)
        bench_json = out / "bench.json"
        section = "throughput" if device == "cuda" else "cpu"
        code, seconds = run_logged(
            [py, "scripts/bench.py", "--quick", "--only", section, "--device", device, "--out", str(bench_json)],
            log,
            limit=170,
        )
        bench = json.loads(bench_json.read_text()) if code == 0 and bench_json.exists() else {}
        step: dict = {"exit_code": code, "seconds": seconds}
        for model, row in bench.get("throughput", {}).items():
            best = max(row["eager_images_per_sec"], row["compiled_images_per_sec"])
            step[model] = {**row, "target_images_per_sec": TARGETS[model], "meets_target": best >= TARGETS[model]}
        step["peak_tflops"] = bench.get("peak_tflops")
        if "cpu" in bench:
            step["cpu"] = bench["cpu"]
        report["steps"]["throughput"] = step

        # 3. a short real run (3 epochs) of the CIFAR-10 ResNet-18 recipe on the CIFAR-10 copy
        folder = Path(tmp) / "cifar10"
        per_class = ["--per-class-train", "20", "--per-class-test", "10"] if args.smoke else []
        code, seconds = run_logged([py, str(cifar.parent / "prepare.py"), str(folder), *per_class], log, limit=60)
        run_dir = Path(tmp) / "cifar10_resnet18"  # its figures go to the JSON: OUT holds three files
        length = ["trainer.max_steps=6", "model.width=0.25"] if args.smoke else ["trainer.epochs=3"]
        if code == 0:
            code, seconds = run_logged(
                [
                    py,
                    "train.py",
                    "experiment=paper/cifar10_resnet18",
                    "dataset=image_folder",
                    f"dataset.root={folder}",
                    f"trainer.device={device}",
                    "logger=none",
                    "trainer.resume=never",
                    *length,
                    f"hydra.run.dir={run_dir}",
                ],
                log,
                limit=110,
            )
        summary_file = run_dir / "summary.json"
        summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
        metrics_file = run_dir / "metrics.jsonl"
        metrics = [json.loads(line) for line in metrics_file.read_text().splitlines()] if metrics_file.exists() else []
        report["steps"]["cifar10_resnet18"] = {
            "exit_code": code,
            "seconds": seconds,
            "command_overrides": summary.get("overrides"),
            "status": summary.get("status"),
            "error": summary.get("error"),
            "epochs": summary.get("epochs"),
            "steps": summary.get("steps"),
            "final_test_acc": summary.get("final_test_acc"),
            "enp_end_step": summary.get("enp_end_step"),
            "samples_per_sec": [round(m["samples_per_sec"], 1) for m in metrics],
            "wall_time_s": summary.get("wall_time_s"),
            "epoch_rows": metrics,
            "runtime": summary.get("runtime"),
            "peak_cuda_allocated_mb": summary.get("peak_cuda_allocated_mb"),
        }

    report["seconds"] = round(time.perf_counter() - start, 1)
    tests = report["steps"]["gpu_tests"]
    report["passed"] = (
        all(s["exit_code"] == 0 for s in report["steps"].values())
        and tests.get("failed", 1) == 0
        and tests.get("errors", 1) == 0
        and (args.smoke or tests.get("skipped", 1) == 0)
    )  # on a GPU every gpu test must run
    text = json.dumps(report, indent=1)
    tmp_file = out / "gpu_check.json.tmp"
    tmp_file.write_text(text + "\n")
    os.replace(tmp_file, out / "gpu_check.json")  # never half-written
    print(text)
    print(f"\n{'passed' if report['passed'] else 'FAILED'}: {out / 'gpu_check.json'}, log in {out / 'gpu_check.log'}")
    return 0 if report["passed"] else 1


def junit_counts(path: Path) -> dict:
    """tests, failures, errors and skips from pytest's JUnit XML (empty if pytest did not write it)."""
    if not path.exists():
        return {}
    import xml.etree.ElementTree as ET

    suite = ET.parse(path).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    return {
        "tests": int(suite.get("tests", 0)),
        "failed": int(suite.get("failures", 0)),
        "errors": int(suite.get("errors", 0)),
        "skipped": int(suite.get("skipped", 0)),
    }


if __name__ == "__main__":
    sys.exit(main())
