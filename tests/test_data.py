"""Data: real loaders on real files, class-balanced subsets, batched augmentation."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import torch

from enlighten.config import ConfigError
from enlighten.data.base import DataError, InMemoryData, Normalize, balanced_split, balanced_subset
from enlighten.data.digits import digits
from enlighten.data.image_folder import image_folder
from enlighten.data.synthetic import synthetic
from enlighten.data.torchvision_sets import torchvision_dataset
from tests.conftest import REPO, SHARED_DATA, needs_shared


def test_balanced_subset_keeps_each_class_share_and_its_own_seed():
    labels = torch.arange(1000) % 10
    idx = balanced_subset(labels, 0.1, seed=3)
    assert len(idx) == 100
    assert torch.bincount(labels[idx], minlength=10).tolist() == [10] * 10
    assert torch.equal(idx, balanced_subset(labels, 0.1, seed=3))
    assert not torch.equal(idx, balanced_subset(labels, 0.1, seed=4))
    assert torch.equal(balanced_subset(labels, 1.0, seed=0), torch.arange(1000))
    with pytest.raises(ConfigError, match="dataset.fraction must be in"):
        balanced_subset(labels, 1.5, seed=0)
    with pytest.raises(ConfigError, match="dataset.fraction must be in"):
        balanced_subset(labels, 0.0, seed=0)


def test_the_validation_split_is_class_balanced_disjoint_and_nested_within_a_seed():
    """Held out of every class, disjoint from the training subset of every fraction of its seed, whose
    subsets stay nested; another seed draws another split; without one, the subsets are as before."""
    labels = torch.arange(3000) % 10
    train = {f: balanced_split(labels, f, seed=5, val_fraction=0.2) for f in (0.05, 0.25, 1.0)}
    val = train[0.05][1]
    assert torch.bincount(labels[val], minlength=10).tolist() == [60] * 10  # 20% of each class's 300
    assert all(torch.equal(v, val) for _, v in train.values())  # the same split whatever the fraction
    for f, (t, _) in train.items():
        assert len(set(t.tolist()) & set(val.tolist())) == 0  # disjoint
        assert torch.bincount(labels[t], minlength=10).tolist() == [round(f * 240)] * 10  # a share of the other 80%
    assert set(train[0.05][0].tolist()) < set(train[0.25][0].tolist()) < set(train[1.0][0].tolist())  # nested
    assert len(train[1.0][0]) + len(val) == 3000
    other = balanced_split(labels, 0.05, seed=6, val_fraction=0.2)[1]
    assert not torch.equal(other, val)
    assert torch.equal(balanced_split(labels, 0.1, seed=3)[0], balanced_subset(labels, 0.1, seed=3))
    assert len(balanced_split(labels, 0.1, seed=3)[1]) == 0
    with pytest.raises(ConfigError, match="dataset.val_fraction must be a number in"):
        balanced_split(labels, 0.1, seed=3, val_fraction=1.0)


def test_a_loader_holds_its_validation_split_apart_and_evaluates_it_unaugmented():
    """The validation images are the held-out training images, evaluated as the test split is: no crop,
    no flip, the training subset's normalization."""
    data = synthetic(
        num_train=400, num_test=100, fraction=0.5, fraction_seed=1, val_fraction=0.25, crop_padding=2, flip=True
    )
    assert (data.num_train, data.num_val, data.num_test) == (150, 100, 100)
    whole = synthetic(num_train=400, num_test=100)  # the same images, nothing held out
    _, held_out = balanced_split(whole.train_y, 0.5, 1, 0.25)
    assert torch.equal(data.val_x, whole.train_x[held_out]) and torch.equal(data.val_y, whole.train_y[held_out])
    batches = list(data.eval_batches("val", 64))
    assert torch.equal(torch.cat([x for x, _ in batches]), data.normalize(data.val_x))
    assert torch.equal(torch.cat([y for _, y in batches]), data.val_y)
    with pytest.raises(ValueError, match="split must be"):
        next(data.eval_batches("holdout", 8))


def _tiny(pad: int, flip: bool) -> InMemoryData:
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.uint8).view(2, 1, 4, 4)
    y = torch.tensor([0, 1])
    return InMemoryData(x, y, x, y, num_classes=2, normalize=None, crop_padding=pad, flip=flip)


def test_batched_crop_is_a_shifted_window_of_the_zero_padded_image():
    data = _tiny(pad=2, flip=False)
    gen = torch.Generator().manual_seed(0)
    padded = torch.nn.functional.pad(torch.arange(32, dtype=torch.uint8).view(2, 1, 4, 4), (2, 2, 2, 2))
    for _ in range(20):
        ((x, y),) = list(data.train_batches(2, gen))
        for xi, yi in zip(x, y):
            windows = [padded[yi, :, r : r + 4, c : c + 4] for r in range(5) for c in range(5)]
            assert any(torch.equal(xi, w) for w in windows)


def test_flip_and_eval_batches_are_exact():
    data = _tiny(pad=0, flip=True)
    gen = torch.Generator().manual_seed(0)
    orig = torch.arange(32, dtype=torch.uint8).view(2, 1, 4, 4)
    seen_flip = seen_plain = False
    for _ in range(20):
        ((x, y),) = list(data.train_batches(2, gen))
        for xi, yi in zip(x, y):
            flipped = torch.equal(xi, orig[yi].flip(-1))
            plain = torch.equal(xi, orig[yi])
            assert flipped or plain
            seen_flip |= flipped
            seen_plain |= plain
    assert seen_flip and seen_plain
    ((x, y),) = list(_tiny(pad=3, flip=True).eval_batches("train", 8))
    assert torch.equal(x, orig) and torch.equal(y, torch.tensor([0, 1]))


def test_train_batches_drop_last_and_cover_each_sample_once():
    data = synthetic(num_train=100, num_test=10, image_size=8, channels=1)
    gen = torch.Generator().manual_seed(0)
    batches = list(data.train_batches(32, gen))
    assert len(batches) == data.steps_per_epoch(32) == 3
    assert all(x.shape == (32, 1, 8, 8) and x.dtype == torch.float32 for x, _ in batches)
    seen = torch.cat([x for x, _ in batches]).flatten(1)  # no augmentation: the training images themselves
    images = torch.cat([x for x, _ in data.eval_batches("train", 1000)]).flatten(1)
    match = (seen[:, None, :] == images[None, :, :]).all(-1)  # [96 seen, 100 training images]
    assert match.sum(1).eq(1).all()  # each batch row is one training image ...
    assert len(set(match.int().argmax(1).tolist())) == 96  # ... and no image comes twice in the epoch
    labels = torch.cat([y for _, y in batches])
    assert torch.equal(labels, data.train_y[match.int().argmax(1)])  # with its own label


def test_normalize_matches_the_definition():
    x = torch.randint(0, 256, (4, 3, 5, 5), dtype=torch.uint8)
    norm = Normalize([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616])
    ref = (x.float() / 255 - torch.tensor(norm.mean).view(1, 3, 1, 1)) / torch.tensor(norm.std).view(1, 3, 1, 1)
    torch.testing.assert_close(norm(x), ref)


def test_digits_is_real_stratified_and_normalized():
    data = digits()
    assert data.num_classes == 10 and data.input_shape == (1, 8, 8)
    assert data.num_train + len(data.test_y) == 1797
    ((x, _),) = list(data.eval_batches("train", 10_000))
    assert abs(x.mean().item()) < 0.05 and abs(x.std().item() - 1) < 0.05
    half = digits(fraction=0.5)
    assert abs(half.num_train - data.num_train / 2) <= 10


@needs_shared("MNIST", "raw")
def test_mnist_real_files_subset_and_test_whole():
    data = torchvision_dataset("mnist", str(SHARED_DATA), download=False, fraction=0.01, crop_padding=2, flip=False)
    assert data.input_shape == (1, 28, 28) and data.num_classes == 10
    assert len(data.test_y) == 10_000  # the test split stays whole
    assert torch.bincount(data.train_y).tolist() == [
        round(0.01 * n) for n in (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
    ]


def test_missing_torchvision_data_names_the_path_and_the_fix(tmp_path):
    with pytest.raises(DataError) as e:
        torchvision_dataset("cifar10", str(tmp_path / "nowhere"), download=False)
    msg = str(e.value)
    assert str(tmp_path / "nowhere" / "cifar-10-batches-py") in msg and "dataset.download=true" in msg


def test_image_folder_real_cifar_and_cache(cifar_folder, tmp_path):
    cache = tmp_path / "cache"
    data = image_folder(str(cifar_folder), cache_dir=str(cache))
    assert data.num_classes == 10 and data.input_shape == (3, 32, 32)
    assert data.num_train == 2000 and len(data.test_y) == 500
    assert data.train_x.dtype == torch.uint8
    cached = list(cache.rglob("*.pt"))
    assert len(cached) == 1
    again = image_folder(str(cifar_folder), cache_dir=str(cache), fraction=0.1)
    assert again.num_train == 200 and torch.bincount(again.train_y).tolist() == [20] * 10
    assert len(list(cache.rglob("*.pt"))) == 1  # the fraction is taken after the cache


def test_image_folder_streaming_matches_interface(cifar_folder, tmp_path):
    data = image_folder(str(cifar_folder), in_memory=False, num_workers=0, fraction=0.05)
    gen = torch.Generator().manual_seed(0)
    x, y = next(iter(data.train_batches(16, gen)))
    assert x.shape == (16, 3, 32, 32) and x.dtype == torch.float32 and y.shape == (16,)
    xs, ys = next(iter(data.eval_batches("test", 8)))
    assert xs.shape == (8, 3, 32, 32)


def test_image_folder_errors_name_the_path(cifar_folder, tmp_path):
    with pytest.raises(DataError, match="is not a directory"):
        image_folder(str(tmp_path / "missing"))
    broken = tmp_path / "broken"
    shutil.copytree(cifar_folder, broken)
    for f in (broken / "train" / "cat").iterdir():
        f.unlink()
    with pytest.raises(DataError, match=f"Empty class folder: {broken / 'train' / 'cat'}"):
        image_folder(str(broken), cache_dir=str(tmp_path / "c"))
    shutil.rmtree(broken)
    shutil.copytree(cifar_folder, broken)
    bad = broken / "train" / "dog" / "0003.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=str(bad)):
        image_folder(str(broken), cache_dir=str(tmp_path / "c"))


@needs_shared("MNIST", "raw")
def test_damaged_mnist_files_are_named_as_damaged_not_missing(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (SHARED_DATA / "MNIST" / "raw").iterdir():
        (raw / f.name).write_bytes(f.read_bytes()[:1000])  # truncated, as a broken copy leaves them
    with pytest.raises(
        DataError, match=r"mnist at .*MNIST/raw is unreadable: its files are there but truncated or corrupt"
    ):
        torchvision_dataset("mnist", root=str(tmp_path), download=False)
    with pytest.raises(DataError, match=r"mnist not found at"):
        torchvision_dataset("mnist", root=str(tmp_path / "elsewhere"), download=False)


def _prepare_data_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("prepare_data", REPO / "scripts" / "prepare_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prepare_data_expands_a_sweep_as_hydra_does_and_finds_each_dataset_once():
    """The command line's sweeps times the experiment's own grid (tradeoff: 3 x 3 x 9 arms x 3 seeds),
    one dataset for all of them."""
    prepare = _prepare_data_script()
    jobs = prepare.expand(["experiment=tradeoff", "paths.data_dir=/data"])
    assert len(jobs) == 243 and len({tuple(sorted(j)) for j in jobs}) == 243
    assert len(prepare.expand(["experiment=tradeoff", "seed=0", "paths.data_dir=/data"])) == 81  # the command line wins
    assert list(prepare.datasets(jobs)) == ["enlighten.data.torchvision_sets.torchvision_dataset:cifar10:/data"]
    assert len(prepare.datasets(prepare.expand(["dataset=mnist,digits", "seed=0,1"]))) == 2


@pytest.mark.e2e
@needs_shared("MNIST")
def test_prepare_data_loads_what_a_sweep_needs_and_names_what_is_missing(tmp_path):
    script = [sys.executable, str(REPO / "scripts" / "prepare_data.py")]
    proc = subprocess.run(
        [*script, "dataset=mnist,digits", "seed=0,1", f"paths.data_dir={SHARED_DATA}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "4 jobs, 2 dataset(s):",
        f"  mnist: ready in {SHARED_DATA} (60,000 training / 10,000 test samples)",
        "  digits: needs no files",
    ]
    missing = subprocess.run(
        [*script, "dataset=image_folder", f"dataset.root={tmp_path / 'nowhere'}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert missing.stderr.startswith(f"error: image_folder: {tmp_path / 'nowhere'} is not a folder.")


@pytest.mark.e2e
def test_a_download_waits_for_another_process_holding_the_datasets_lock(tmp_path):
    """Two tasks of an array that start together: the second waits while the first downloads."""
    import time

    from enlighten.data.base import download_lock

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; sys.path.insert(0, sys.argv[1])\n"
            "from enlighten.data.base import download_lock\n"
            "with download_lock(sys.argv[2], 'mnist'):\n print('held', flush=True); time.sleep(3)",
            str(REPO),
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    start = time.monotonic()
    with download_lock(tmp_path, "mnist"):
        waited = time.monotonic() - start
    holder.wait(timeout=30)
    assert waited > 1.5, waited  # it held the lock for 3 s after saying so
    with download_lock(tmp_path, "cifar10"):  # another dataset's lock is another file
        pass
