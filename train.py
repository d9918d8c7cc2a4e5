"""Train one configuration (or, with -m, a sweep of them). See README.md.

python train.py                                   # ResNet-18 + Mixup on CIFAR-10
python train.py dataset=mnist model=cnn trainer.epochs=2
python train.py -m strategy=vanilla,mixup seed=0,1 dataset=digits model=cnn
"""

import os
import sys
from pathlib import Path

# Our sweeper lives in hydra_plugins/ beside this file, where Hydra's plugin search finds it; a job's own
# process (submitit's, on a SLURM node or here) unpickles objects that name it, so it must find it too.
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(Path(__file__).resolve().parent), os.environ.get("PYTHONPATH")])
)

import hydra
from omegaconf import DictConfig

from enlighten.callbacks import check_launcher, check_output_dir, check_override_syntax, explain_missing_setting
from enlighten.config import register_configs
from enlighten.errors import UserError
from enlighten.sweeps import check_sweep_names

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    # Imported here, with torch: --help, --cfg, tab completion and composition errors answer without it.
    from enlighten.run import run

    return run(cfg).get("final_val_acc")  # what a Hydra optimizing sweeper maximizes: never the test split


if __name__ == "__main__":
    try:  # before anything is launched
        check_override_syntax(sys.argv[1:])
        for arg in sys.argv[1:]:
            check_launcher(arg.split("=", 1)[1] if arg.lstrip("+~").startswith("hydra/launcher=") else None)
            key, _, value = arg.lstrip("+~").partition("=")
            if key in ("hydra.run.dir", "hydra.sweep.dir"):
                check_output_dir(key, value)
            if key == "hydra.sweep.dir" and {"-m", "--multirun"} & set(sys.argv[1:]):
                check_sweep_names(Path(value))
    except UserError as e:
        sys.exit(f"{e}")
    try:
        main()
    except KeyboardInterrupt:  # Ctrl-C: the run in progress wrote its summary (interrupted); no traceback
        print(
            "Interrupted (Ctrl-C). The run in progress is marked interrupted in its summary.json (no checkpoint: "
            "Ctrl-C may strike mid-step). To finish a sweep, run the same command with hydra.sweep.dir set to its "
            "directory (printed below): its completed jobs are skipped.",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(130)
    except SystemExit as e:  # Hydra printed its error; where its hint leads nowhere, add one that does
        if e.code not in (0, None) and (hint := explain_missing_setting(sys.argv[1:], Path(__file__).parent / "conf")):
            print(hint, file=sys.stderr)
        raise
