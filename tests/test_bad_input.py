"""Bad input: each case is caught before any training, with the message a user sees.

Checkpoint cases (another config, truncated) are in test_resume.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException

from enlighten.config import ConfigError
from enlighten.data.base import DataError
from enlighten.results import ResultsWriteError
from enlighten.run import run
from tests.conftest import compose_cfg, needs_shared

BASE = ["dataset=digits", "model=mlp", "trainer.epochs=1", "logger=none", "trainer.device=cpu"]


@pytest.mark.parametrize(
    "overrides, error, message",
    [
        (["trainer.epocs=3"], ConfigCompositionException, "Key 'epocs' not in 'TrainerConfig'"),
        (
            ["trainer.epochs=abc"],
            ConfigCompositionException,
            "Value 'abc' of type 'str' could not be converted to Integer",
        ),
        (["model=resnet19"], MissingConfigException, "Could not find 'model/resnet19'"),
        (["dataset=cifar11"], MissingConfigException, "Could not find 'dataset/cifar11'"),
    ],
)
def test_composition_errors_name_the_key_or_option(overrides, error, message, tmp_path):
    with pytest.raises(error) as e:
        compose_cfg([*BASE, *overrides], tmp_path)
    assert message in str(e.value) + str(e.value.__cause__)


def _ucr_root(tmp_path: Path, train_lines: list[str], test_labels: str = "12") -> Path:
    folder = tmp_path / "data" / "ucr" / "Toy"
    folder.mkdir(parents=True)
    (folder / "Toy_TRAIN.tsv").write_text("\n".join(train_lines) + "\n")
    (folder / "Toy_TEST.tsv").write_text("".join(f"{label}\t0.1\t0.2\t0.3\n" for label in test_labels))
    return tmp_path / "data"


RUN_CASES = {
    "a strategy key of before the strategy contract": (
        ["+strategy.boost_alpha=3"],
        ConfigError,
        "A strategy's settings are in strategy.mixer (from mix.*), strategy.weighting and strategy.schedule",
    ),
    "a misspelled schedule key": (
        ["strategy=alpha_boost", "+strategy.schedule.boost_alfa=3"],
        ConfigError,
        "Unknown key 'strategy.schedule.boost_alfa' for enlighten.strategies.schedules."
        "AlphaBoost. Valid keys: boost_alpha.",
    ),
    "a key for a part without settings": (
        ["+strategy.weighting.share=0.1"],
        ConfigError,
        "enlighten.strategies.weighting.Mean. It takes no settings.",
    ),
    "a strategy without a mixer": (["strategy.mixer=null"], ConfigError, "strategy.mixer must not be null."),
    "negative alpha": (["mix.alpha=-1"], ConfigError, "mix.alpha must be >= 0, got -1.0 (0 turns it off)."),
    "fraction above 1": (
        ["dataset.fraction=1.5"],
        ConfigError,
        "dataset.fraction must be in (0, 1], got 1.5 (the share of the training set kept).",
    ),
    "fraction not a number": (
        ["dataset.fraction=abc"],
        ConfigError,
        "dataset.fraction must be a number in (0, 1], got 'abc' (the share of the training set kept).",
    ),
    "fraction a list": (
        ["dataset.fraction=[0.1]"],
        ConfigError,
        "dataset.fraction must be a number in (0, 1], got [0.1]",
    ),
    "negative seed": (["seed=-1"], ConfigError, "seed must be in [0, 2**32), got -1."),
    "milestones not a list": (
        ["sched=multistep", "sched.milestones=abc"],
        ConfigError,
        "sched.milestones must be a list of numbers, e.g. [100, 150], got 'abc'.",
    ),
    "UTF-16 text": (
        ["dataset=tinyshakespeare", "dataset.download=false", "paths.data_dir={utf16}"],
        DataError,
        "{utf16}/tinyshakespeare/input.txt is not UTF-8 text (invalid start byte at byte 0): convert it "
        "first, e.g. iconv -f UTF-16 -t UTF-8.",
    ),
    "fraction 0": (
        ["dataset.fraction=0"],
        ConfigError,
        "dataset.fraction must be in (0, 1], got 0 (the share of the training set kept).",
    ),
    "odd batch with flip pairing": (
        ["trainer.batch_size=63", "mix.pairing=flip"],
        ConfigError,
        "trainer.batch_size=63 is odd, but mix.pairing=flip mixes sample i with sample B-1-i "
        "and needs an even batch size: use 64 or 62, or mix.pairing=permutation.",
    ),
    "unknown pairing": (
        ["mix.pairing=reverse"],
        ConfigError,
        "mix.pairing='reverse' is not one of ['permutation', 'flip'].",
    ),
    "diagnostics lambda above 0.5": (
        ["diagnostics.measures.interference.lambdas=[0.3,0.7]"],
        ConfigError,
        "diagnostics.measures.interference.lambdas must be in (0, 0.5], got 0.7.",
    ),
    "threshold above 1": (
        ["phase=accuracy", "phase.threshold=1.5"],
        ConfigError,
        "phase.threshold must be in (0, 1), got 1.5.",
    ),
    "removal share below one sample": (
        ["strategy=high_loss_removal", "removal.drop_fraction=0.05", "trainer.batch_size=16"],
        ConfigError,
        "drop_fraction=0.05 drops floor(0.05 x 16) = 0 samples of a batch of 16: nothing "
        "would be removed. Use a share of at least 1/16 = 0.0625 or a larger "
        "trainer.batch_size.",
    ),
    "removal share 1": (
        ["removal.drop_fraction=1.0"],
        ConfigError,
        "removal.drop_fraction must be in [0, 1), got 1.0.",
    ),
    "negative step checkpoints": (
        ["trainer.checkpoint_every_steps=-1"],
        ConfigError,
        "trainer.checkpoint_every_steps must be >= 0 (0: no checkpoints within an epoch), got -1.",
    ),
    "negative checkpoints kept": (
        ["trainer.keep_checkpoints=-1"],
        ConfigError,
        "trainer.keep_checkpoints must be >= 0 (0: remove them once the run has completed), got -1.",
    ),
    "negative learning rate": (
        ["optim.lr=-1"],
        ConfigError,
        "optim=enlighten.training.optim.sgd: Invalid learning rate: -1. Fix the optim.* setting.",
    ),
    "model width 0": (
        ["model=cnn", "model.width=0"],
        ConfigError,
        "model=enlighten.models.cnn.cnn: width must be > 0, got 0. Fix the model.* setting.",
    ),
    "max_steps 0": (
        ["trainer.max_steps=0"],
        ConfigError,
        "trainer.max_steps must be >= 1 or null (train trainer.epochs epochs), got 0.",
    ),
    "unknown device": (
        ["trainer.device=tpu"],
        ConfigError,
        "trainer.device='tpu' is not one of ['auto', 'cpu', 'cuda'].",
    ),
    "unknown resume mode": (
        ["trainer.resume=sometimes"],
        ConfigError,
        "trainer.resume='sometimes' is not one of ['auto', 'force', 'never'].",
    ),
    "misspelled model key": (["+model.widht=2"], ConfigError, "Unknown key 'model.widht'"),
    "NaN alpha": (["mix.alpha=nan"], ConfigError, "mix.alpha=nan is not a finite number: give it a number"),
    "NaN learning rate": (["optim.lr=nan"], ConfigError, "optim.lr=nan is not a finite number"),
    "infinite grad clip": (["trainer.grad_clip=inf"], ConfigError, "trainer.grad_clip=inf is not a finite number"),
    "NaN in a list": (
        ["diagnostics.measures.interference.lambdas=[0.1,nan]"],
        ConfigError,
        "diagnostics.measures.interference.lambdas=[0.1, nan] is not a finite",
    ),
    "class count set by hand": (
        ["+model.num_classes=5"],
        ConfigError,
        "model.num_classes comes from the data and the run (the dataset's classes and input "
        "shape, the schedule's length), so the value set here would be ignored: remove "
        "model.num_classes.",
    ),
    "one class": (
        ["dataset=ucr", "dataset.name=Toy", "paths.data_dir={ucr_one}"],
        DataError,
        "Toy: 1 class in the data; a classifier needs at least 2",
    ),
    "missing data directory": (
        ["dataset=mnist", "paths.data_dir={tmp}/nowhere", "dataset.download=false"],
        DataError,
        "{tmp}/nowhere/MNIST/raw",
    ),
    "ragged UCR rows": (
        ["dataset=ucr", "dataset.name=Toy", "paths.data_dir={ucr_ragged}"],
        DataError,
        "{ucr_ragged}/ucr/Toy/Toy_TRAIN.tsv, line 2: 2 values where earlier lines have 3. Ragged "
        "(variable-length) series are not supported: pad or resample them to one length.",
    ),
    "non-finite UCR values": (
        ["dataset=ucr", "dataset.name=Toy", "paths.data_dir={ucr_nan}"],
        DataError,
        "{ucr_nan}/ucr/Toy/Toy_TRAIN.tsv, line 2, field 3: non-finite value 'NaN'. Impute or "
        "drop missing values before training.",
    ),
}


@pytest.mark.e2e
@pytest.mark.parametrize("case", list(RUN_CASES))
def test_bad_input_stops_the_run_before_training_with_its_message(case, tmp_path):
    overrides, error, message = RUN_CASES[case]
    paths = {
        "tmp": tmp_path,
        "ucr_ragged": _ucr_root(tmp_path / "r", ["1\t0.1\t0.2\t0.3", "2\t0.3\t0.2"]) if "ragged" in case else None,
        "ucr_nan": _ucr_root(tmp_path / "n", ["1\t0.1\t0.2\t0.3", "2\t0.3\tNaN\t0.1"])
        if "non-finite" in case
        else None,
        "ucr_one": _ucr_root(tmp_path / "o", ["1\t0.1\t0.2\t0.3", "1\t0.3\t0.2\t0.1"], test_labels="1")
        if case == "one class"
        else None,
    }
    if case == "UTF-16 text":
        (tmp_path / "u" / "tinyshakespeare").mkdir(parents=True)
        (tmp_path / "u" / "tinyshakespeare" / "input.txt").write_text("First Citizen:\n", encoding="utf-16")
        paths["utf16"] = tmp_path / "u"
    run_dir = tmp_path / "run"
    with pytest.raises(error) as e:
        run(compose_cfg([*BASE, *(o.format(**paths) for o in overrides)], run_dir))
    assert message.format(**paths) in str(e.value)
    assert not (run_dir / "metrics.jsonl").exists()  # no epoch was trained


@pytest.mark.e2e
@needs_shared("cifar10", "prepare.py")
def test_empty_class_folder_and_corrupt_image_are_named(cifar_folder, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(cifar_folder, broken)
    corrupt = broken / "train" / "dog" / "corrupt.jpg"
    corrupt.write_bytes(b"not a jpeg at all")
    cfg = lambda root, out: compose_cfg(  # noqa: E731
        [*BASE, "dataset=image_folder", f"dataset.root={root}", f"paths.cache_dir={tmp_path / 'cache'}"], out
    )
    with pytest.raises(DataError) as e:
        run(cfg(broken, tmp_path / "a"))
    assert str(e.value).startswith(f"Cannot decode image {corrupt}: ")
    assert str(e.value).endswith("Remove or replace the file.")
    corrupt.unlink()
    for f in (broken / "train" / "cat").iterdir():
        f.unlink()
    with pytest.raises(DataError) as e:
        run(cfg(broken, tmp_path / "b"))
    assert str(e.value).startswith(f"Empty class folder: {broken / 'train' / 'cat'} holds no images")
    assert not (tmp_path / "a" / "metrics.jsonl").exists() and not (tmp_path / "b" / "metrics.jsonl").exists()


@pytest.mark.e2e
def test_results_directory_that_cannot_be_written_fails_first_and_keeps_earlier_results(tmp_path):
    earlier = tmp_path / "earlier"
    run(compose_cfg(BASE, earlier))
    before = {p.name: p.read_bytes() for p in earlier.iterdir() if p.is_file()}
    blocked = earlier / "summary.json" / "run"  # a directory inside a file: cannot be created (even by root)
    with pytest.raises(ResultsWriteError) as e:
        run(compose_cfg(BASE, blocked))
    assert str(e.value).startswith(f"Results directory {blocked} is not writable: ")
    assert {p.name: p.read_bytes() for p in earlier.iterdir() if p.is_file()} == before


@pytest.mark.e2e
def test_choices_are_used_as_validated_whatever_their_case(tmp_path):
    """Validated case-insensitively, so used in the case validated: BF16 trains in bf16, CPU is the CPU,
    NEVER never resumes; `trainer.channels_last=true` (a bool) enables it."""
    run_dir = tmp_path / "run"
    chosen = ["trainer.channels_last=true", "trainer.device=CPU", "trainer.precision=BF16", "trainer.resume=NEVER"]
    first = run(compose_cfg([*BASE, *chosen], run_dir))
    assert first["runtime"]["channels_last"] is True and first["runtime"]["bf16"] is True
    assert first["runtime"]["device"] == "cpu"
    assert first["config"]["trainer"]["precision"] == "bf16" and first["config"]["trainer"]["resume"] == "never"
    (run_dir / "summary.json").unlink()  # so that only the checkpoint could make the next run resume
    assert "resumed_from" not in run(compose_cfg([*BASE, *chosen], run_dir))


@pytest.mark.e2e
def test_required_settings_tag_limits_and_uncreatable_run_directories_are_named_before_any_work(tmp_path):
    """Through train.py, as a user meets them: a dataset option's required key left unset (???), an
    experiment name over W&B's 64-character tag limit, and a run directory under a file: each a one-line
    message naming the setting, no traceback, no training (the refused run's directory holds its summary
    with the error, and nothing else)."""
    import subprocess
    import sys

    from tests.conftest import REPO, TINY, user_env

    (tmp_path / "a_file").write_text("")
    cases = {
        "dataset.root has no value: the dataset option chosen requires it (??? in its YAML)": [
            "dataset=image_folder",
            f"hydra.run.dir={tmp_path / 'r1'}",
        ],
        "is 70 characters; W&B tags (the experiment's name is one) hold at most 64: shorten name": [
            *TINY,
            "logger=wandb",
            "name=" + "x" * 70,
            f"hydra.run.dir={tmp_path / 'r2'}",
        ],
        "is a file, not a folder: choose another hydra.run.dir": [
            *TINY,
            f"hydra.run.dir={tmp_path / 'a_file' / 'run'}",
        ],
    }
    for message, overrides in cases.items():
        proc = subprocess.run(
            [sys.executable, str(REPO / "train.py"), *overrides],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
            env=user_env(),
        )
        assert proc.returncode != 0 and message in proc.stderr, proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr
    for refused in ("r1", "r2"):
        assert json.loads((tmp_path / refused / "summary.json").read_text())["status"] == "failed"
        assert not (tmp_path / refused / "metrics.jsonl").exists() and not (tmp_path / refused / "checkpoints").exists()
    assert not (tmp_path / "a_file" / "run").exists()


@pytest.mark.e2e
def test_shell_slips_in_overrides_are_named_with_the_quoting_that_works(tmp_path):
    """A value with spaces left unquoted (the shell splits it) and an unquoted value with non-ASCII
    letters: Hydra answers with its grammar's errors; train.py names the slip and the quoting that works,
    and the quoted forms pass."""
    import subprocess
    import sys

    from tests.conftest import REPO, TINY

    def train(*args):
        return subprocess.run(
            [sys.executable, str(REPO / "train.py"), *TINY, *args, "--cfg", "job"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )

    split = train("paths.data_dir=/tmp/my", "data")
    assert (
        split.returncode != 0
        and "'data' is not a key=value override: a value with spaces must be quoted" in split.stderr
    )
    accent = train("paths.data_dir=/tmp/données")
    assert accent.returncode != 0 and "quote it: 'paths.data_dir=\"/tmp/données\"'" in accent.stderr
    for quoted, shown in (
        ('paths.data_dir="/tmp/my data"', "data_dir: /tmp/my data"),
        ('paths.data_dir="/tmp/données"', "data_dir: /tmp/données"),
    ):
        proc = train(quoted)
        assert proc.returncode == 0 and shown in proc.stdout
    assert all("Traceback" not in p.stderr for p in (split, accent))


@pytest.mark.e2e
def test_a_setting_the_chosen_option_lacks_is_explained_beyond_hydras_hint(tmp_path):
    """`phase.threshold=0.3` under the default `phase=never`: Hydra suggests `+phase.threshold`, which our
    validation would refuse too; train.py adds which option was chosen and which have the setting."""
    import subprocess
    import sys

    from tests.conftest import REPO, TINY

    proc = subprocess.run(
        [sys.executable, str(REPO / "train.py"), *TINY, "phase.threshold=0.3", "--cfg", "job"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert (
        "note: phase.threshold is not a setting of phase=never, the option chosen for phase (adding it with + would "
        "be refused too). Options that have it: accuracy, chance_adjusted, e.g. phase=accuracy phase.threshold=0.3."
    ) in proc.stderr
