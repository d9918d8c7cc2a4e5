"""Benchmarks that print ratios measured in one run (so they hold on a noisy machine).

    python scripts/bench.py diagnostics [--quick]

`diagnostics`: training time with diagnostics at their default cadence divided by training time with
`diagnostics=off`, same config, same process, runs interleaved (off, on, off, on; the fastest of each
kept). Two settings: `model=cnn dataset=mnist` (a whole short run: denser cadence during the ENP, then
the normal one) and resnet18 on CIFAR-size inputs with every step inside the ENP (the densest
cadence: an upper bound). Training time is the run's `wall_time_s` at its last epoch (training and
evaluation, no start-up). Prints one JSON object, then a table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import open_dict  # noqa: E402

from enlighten.config import register_configs  # noqa: E402
from enlighten.results import read_jsonl  # noqa: E402
from enlighten.run import run  # noqa: E402

DATA = os.environ.get("ENLIGHTEN_DATA_DIR", str(REPO.parent / "shared" / "data"))


def train_seconds(overrides: list[str]) -> float:
    with tempfile.TemporaryDirectory() as out:
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides + ["logger=none", "trainer.device=cpu"])
        with open_dict(cfg):
            cfg.paths.output_dir = out
        run(cfg)
        return read_jsonl(Path(out) / "metrics.jsonl")[-1]["wall_time_s"]


def ratio(overrides: list[str], repeats: int) -> dict:
    times = {"off": [], "default": []}
    for _ in range(repeats):
        for mode in times:
            times[mode].append(train_seconds(overrides + [f"diagnostics={mode}"]))
    off, on = min(times["off"]), min(times["default"])
    return {"seconds_off": round(off, 2), "seconds_on": round(on, 2), "ratio": round(on / off, 3)}


def bench_diagnostics(quick: bool) -> dict:
    settings = {}
    mnist = Path(DATA) / "MNIST" / "raw"
    if mnist.exists():
        settings["cnn_mnist"] = (
            ["dataset=mnist", f"paths.data_dir={DATA}", "dataset.download=false", "model=cnn", "strategy=mixup",
             "phase=accuracy", "dataset.fraction=0.1", f"trainer.epochs={3 if quick else 6}"],
            1 if quick else 2,
        )
    settings["resnet18_cifar_size_all_enp"] = (
        ["dataset=synthetic", "dataset.num_train=1600" if quick else "dataset.num_train=3200",
         "dataset.num_test=64", "model=resnet18", "trainer.batch_size=64", "trainer.epochs=1",
         "trainer.train_eval_samples=64", "phase=fixed_epochs", "phase.epochs=1", "strategy=mixup"],
        1,
    )
    return {name: ratio(overrides, repeats) for name, (overrides, repeats) in settings.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["diagnostics"])
    ap.add_argument("--quick", action="store_true", help="shorter runs")
    args = ap.parse_args()
    register_configs()
    results = bench_diagnostics(args.quick)
    report = {"diagnostics_ratio": max(r["ratio"] for r in results.values()), "settings": results}
    print(json.dumps(report))
    print(f"\n{'setting':32} {'off (s)':>9} {'on (s)':>9} {'ratio':>7}")
    for name, r in results.items():
        print(f"{name:32} {r['seconds_off']:9.2f} {r['seconds_on']:9.2f} {r['ratio']:7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
