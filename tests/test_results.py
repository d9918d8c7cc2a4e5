"""Result files are written atomically and hold plain JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from enlighten.results import UMASK, ResultsWriteError, RunResults, atomic_write_text, read_jsonl, write_json


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "a.json"
    write_json(path, {"x": 1, "nan": float("nan")})
    assert json.loads(path.read_text()) == {"x": 1, "nan": None}
    write_json(path, {"x": 2})
    assert json.loads(path.read_text()) == {"x": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_result_files_follow_the_umask(tmp_path):
    """mkstemp creates 0600 files: another user of a shared results folder could read no summary."""
    atomic_write_text(tmp_path / "summary.json", "{}")
    assert (tmp_path / "summary.json").stat().st_mode & 0o777 == 0o666 & ~UMASK
    code = "from enlighten.results import atomic_write_text as w; import sys; w(sys.argv[1], '{}')"
    subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "shared.json")], check=True, preexec_fn=lambda: os.umask(0o022)
    )  # a shared cluster folder's usual umask
    assert (tmp_path / "shared.json").stat().st_mode & 0o777 == 0o644


def test_failed_write_keeps_the_previous_version(tmp_path):
    path = tmp_path / "s.json"
    write_json(path, {"ok": True})

    class Boom:
        pass

    with pytest.raises(TypeError):
        write_json(path, {"bad": Boom()})
    assert json.loads(path.read_text()) == {"ok": True}
    assert len(list(tmp_path.iterdir())) == 1


def test_run_results_metrics_are_appended_as_complete_lines(tmp_path):
    res = RunResults(tmp_path / "run")
    res.log_epoch({"epoch": 0, "val_acc": 0.5})
    res.log_epoch({"epoch": 1, "val_acc": 0.6})
    assert read_jsonl(tmp_path / "run" / "metrics.jsonl") == [
        {"epoch": 0, "val_acc": 0.5},
        {"epoch": 1, "val_acc": 0.6},
    ]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_results_dir_fails_before_training(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(ResultsWriteError, match="not writable"):
        RunResults(ro / "run")
    atomic_write_text(tmp_path / "x", "y")


@pytest.fixture
def full_disk(tmp_path):
    """A 256 KiB file system (tmpfs): a checkpoint larger than that fills it."""
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("mounting a small tmpfs needs root")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_is_named_with_the_path_and_the_previous_file_is_kept(full_disk):
    from enlighten.results import atomic_torch_save

    path = full_disk / "checkpoints" / "epoch_0002.pt"
    atomic_torch_save({"w": torch.zeros(10)}, path)
    before = path.read_bytes()
    with pytest.raises(ResultsWriteError) as e:
        atomic_torch_save({"w": torch.zeros(100_000)}, path)  # 400 KB
    assert str(e.value).startswith(f"Cannot write {path}: No space left on device (")
    assert "The previous version of the file is kept" in str(e.value)
    assert path.read_bytes() == before and not list(path.parent.glob(".*.tmp"))
