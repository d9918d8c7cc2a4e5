"""Fetch and check the data a command's jobs need, before they are queued (on the login node, which has
internet; compute nodes often do not). Give it the overrides of the train.py command, sweeps included:

    python scripts/prepare_data.py experiment=tradeoff paths.data_dir=/shared/data
    python scripts/prepare_data.py 'dataset=mnist,cifar10' paths.data_dir=/shared/data
    make data ARGS="experiment=tradeoff paths.data_dir=/shared/data"

Every job of the grid (the command line's sweeps and the experiment's own `hydra.sweeper.params`) is
composed; each distinct dataset with a `download` setting is downloaded if missing (one process at a
time per folder: a lock) and loaded once, which checks that its files are complete. Datasets read from
a folder (`image_folder`, `imagenet`, `tiny_imagenet`, `ucr`) are checked to exist. Then run the sweep
with `dataset.download=false`, so that a missing file fails at once with its path.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omegaconf import OmegaConf  # noqa: E402

from enlighten.config import register_configs, without_applied  # noqa: E402
from enlighten.errors import UserError  # noqa: E402
from enlighten.sweeps import check_job, compose_job, expand, one_line_errors  # noqa: E402

# The overrides that can change which files a job reads; jobs that agree on these are composed once.
DATA_KEYS = ("dataset", "paths", "experiment", "debug")


def datasets(jobs: list[list[str]]) -> dict[str, dict]:
    """The distinct datasets of the jobs, by what identifies their files (target, name, root), with
    the fraction and validation settings left out: the whole set is fetched once."""
    found, seen = {}, set()
    for job in jobs:
        data_overrides = tuple(
            sorted(o for o in job if o.lstrip("+~").split("=")[0].split(".")[0].split("/")[0] in DATA_KEYS)
        )
        if data_overrides in seen:
            continue
        seen.add(data_overrides)
        cfg = compose_job(job)
        check_job(cfg, Path("prepare_data"))  # a required setting left unset is named as train.py names it
        node = OmegaConf.to_container(without_applied(cfg, "dataset"), resolve=True)
        key = f"{node['_target_']}:{node.get('name', '')}:{node.get('root', '')}"
        found.setdefault(key, node)
    return found


def prepare(node: dict) -> str:
    """Download (when the dataset can) and load it on the CPU; or check its folder. A line saying what
    was done; DataError (a UserError) when it cannot be had."""
    from enlighten.config import build

    label = node.get("name") or node["_target_"].rsplit(".", 1)[-1]
    if "download" in node:
        data = build(OmegaConf.create({**node, "download": True}))
        return f"{label}: ready in {node.get('root')} ({data.num_train:,} training / {data.num_test:,} test samples)"
    root = node.get("root")
    if root is not None:
        if not Path(root).is_dir():
            raise UserError(
                f"{label}: {root} is not a folder. This dataset is not downloaded by the code: copy it "
                f"there (docs/running.md, Data), or set dataset.root / paths.data_dir."
            )
        return f"{label}: reads {root} (found; nothing to download)"
    return f"{label}: needs no files"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overrides", nargs="*", help="the overrides of the train.py command (sweeps included)")
    args = ap.parse_args(argv)
    register_configs()
    with one_line_errors():
        jobs = expand(args.overrides)
        found = datasets(jobs)
        print(f"{len(jobs)} jobs, {len(found)} dataset(s):")
        for node in found.values():
            print("  " + prepare(node), flush=True)


if __name__ == "__main__":
    main()
