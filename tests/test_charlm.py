"""Character-level language modelling: the tinyshakespeare split, the causal transformer, the
per-sequence loss High-Loss Removal ranks, per-token evaluation and bits per character, and
`trainer.max_steps`, on the real text (a slice of it where a test must be quick)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from enlighten.config import ConfigError
from enlighten.data.base import DataError
from enlighten.data.text import char_text, tinyshakespeare
from enlighten.models.char_transformer import char_transformer
from enlighten.phase.base import Phase
from enlighten.run import run
from enlighten.strategies.base import Strategy, soft_cross_entropy
from enlighten.strategies.mixer import Mixer
from enlighten.strategies.schedules import WeighDuringEnp
from enlighten.strategies.weighting import DropHighest
from tests.conftest import SHARED_DATA, compose_cfg, needs_shared, read_run, run_train

pytestmark = pytest.mark.e2e  # trains or starts train.py: apart from the unit tests (make test-unit)

TEXT = SHARED_DATA / "tinyshakespeare" / "input.txt"
# A small language model on the first 60,000 characters: seconds per run.
SMALL = [
    "experiment=hlr/charlm",
    "logger=none",
    "trainer.device=cpu",
    "dataset.block_size=32",
    "model.width=0.5",
    "model.depth=2",
    "trainer.batch_size=32",
    "trainer.train_eval_samples=200",
]


@pytest.fixture
def text_slice(tmp_path):
    """A data root holding the first 60,000 characters of the real tinyshakespeare."""
    if not TEXT.exists():
        pytest.skip(f"real data not found at {TEXT} (set ENLIGHTEN_DATA_DIR)")
    (tmp_path / "data" / "tinyshakespeare").mkdir(parents=True)
    (tmp_path / "data" / "tinyshakespeare" / "input.txt").write_text(TEXT.read_text()[:60000])
    return tmp_path / "data"


@needs_shared("tinyshakespeare", "input.txt")
def test_tinyshakespeare_is_split_by_position_into_shifted_windows():
    text = TEXT.read_text()
    data = tinyshakespeare(str(SHARED_DATA), block_size=64, download=False)
    assert data.num_classes == 65 and data.input_shape == (64,)
    assert len(data.train) + len(data.val) == len(text) == 1115394
    assert data.decode(data.train) == text[: int(len(text) * 0.9)]  # first 90% train, the rest validation
    assert data.decode(data.val) == text[int(len(text) * 0.9) :]
    x, y = next(data.train_batches(16, torch.Generator().manual_seed(0)))
    assert x.shape == y.shape == (16, 64) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])  # labels: the same window one character on
    window = data.decode(torch.cat([x[0], y[0, -1:]]))
    assert window in text[: int(len(text) * 0.9)]
    # Evaluation windows: non-overlapping, in order, covering the validation text.
    batches = list(data.eval_batches("test", 1000))
    xs = torch.cat([b[0] for b in batches])
    assert len(xs) == data.num_test == (len(data.val) - 1) // 64
    assert data.decode(xs[:3].flatten()) == text[int(len(text) * 0.9) :][: 3 * 64]


def test_text_errors_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="tinyshakespeare/input.txt not found. Set dataset.download=true"):
        tinyshakespeare(str(tmp_path), download=False)
    with pytest.raises(DataError, match="fewer than dataset.block_size"):
        char_text("to be or not to be", block_size=8)
    with pytest.raises(DataError, match="val_share must be in"):
        char_text("abc" * 100, block_size=8, val_share=1.0)


def test_char_transformer_is_causal():
    torch.manual_seed(0)
    model = char_transformer(num_classes=20, input_shape=[16], width=0.25, depth=2).eval()
    ids = torch.randint(0, 20, (3, 16))
    changed = ids.clone()
    changed[:, 9] = (ids[:, 9] + 1) % 20
    with torch.no_grad():
        a, b = model(ids), model(changed)
    assert a.shape == (3, 16, 20)
    torch.testing.assert_close(a[:, :9], b[:, :9])  # earlier positions never see a later token
    assert not torch.allclose(a[:, 9:], b[:, 9:])
    assert model(ids[:, :5]).shape == (3, 5, 20)  # shorter contexts work (generation)
    with pytest.raises(TypeError, match="token ids"):
        model(torch.randn(3, 16))
    with pytest.raises(ValueError, match=r"input_shape must be \(length,\)"):
        char_transformer(num_classes=20, input_shape=[1, 16])


def test_a_sequence_loss_is_its_mean_token_loss_and_removal_drops_whole_sequences():
    torch.manual_seed(0)
    logits, y = torch.randn(8, 5, 11), torch.randint(0, 11, (8, 5))
    strategy = Strategy(Mixer(alpha=0.0), DropHighest(drop_fraction=0.25), WeighDuringEnp())
    strategy.setup(11)
    in_enp = Phase(step=0, epoch=0, steps_per_epoch=1, total_steps=1, in_enp=True)
    batch = strategy.prepare(torch.zeros(8, 5, dtype=torch.long), y, in_enp)
    losses = soft_cross_entropy(logits, batch.target)
    per_token = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(8, 5)
    torch.testing.assert_close(losses, per_token.mean(1))
    kept = batch.reduce(losses)
    torch.testing.assert_close(kept, losses.sort().values[:6].mean())  # the 2 worst sequences left out
    assert batch.report().dropped == 2


def test_language_model_trains_with_per_token_metrics_and_bits_per_character(text_slice, tmp_path):
    """Against the model's own final checkpoint: validation loss is the mean over every validation
    token, accuracy is next-character accuracy, bpc is the loss in bits; max_steps ends the run."""
    out = tmp_path / "run"
    summary = run(compose_cfg([*SMALL, f"paths.data_dir={text_slice}", "trainer.max_steps=70"], out))
    metrics, _ = read_run(out)
    data = tinyshakespeare(str(text_slice), block_size=32, download=False)
    steps_per_epoch = data.steps_per_epoch(32)  # 52: the run ends 18 steps into its second epoch
    assert summary["status"] == "completed" and summary["steps"] == 70
    assert [m["step"] for m in metrics] == [steps_per_epoch, 70] and summary["epochs"] == 2
    assert summary["enp_end_reason"] in ("criterion", "none") and metrics[0]["dropped"] > 0
    for m in metrics:
        assert m["test_bpc"] == pytest.approx(m["test_loss"] / math.log(2))
    assert summary["final_test_bpc"] == pytest.approx(summary["final_test_loss"] / math.log(2))
    assert summary["final_test_bpc"] < math.log2(data.num_classes)  # it learned something: below a uniform guess

    model = char_transformer(data.num_classes, [32], width=0.5, depth=2)  # the slice has 59 characters
    state = torch.load(sorted((out / "checkpoints").glob("*.pt"))[-1], weights_only=True)
    model.load_state_dict(state["model"])
    model.eval()
    n = (len(data.val) - 1) // 32
    x = data.val[: n * 32].view(n, 32)
    y = data.val[1 : n * 32 + 1].view(n, 32)
    with torch.no_grad():
        logits = model(x)
    assert summary["final_test_loss"] == pytest.approx(
        F.cross_entropy(logits.flatten(0, 1), y.flatten()).item(), rel=1e-4
    )
    assert summary["final_test_acc"] == pytest.approx((logits.argmax(-1) == y).float().mean().item(), abs=1e-6)


def test_mixing_token_ids_is_refused_before_training(text_slice, tmp_path):
    for strategy in ("mixup", "mixup_pause"):
        with pytest.raises(ConfigError, match="gives token ids, which cannot be mixed: use strategy=vanilla"):
            run(compose_cfg([*SMALL, f"paths.data_dir={text_slice}", f"strategy={strategy}"], tmp_path / strategy))
        assert not (tmp_path / strategy / "metrics.jsonl").exists()


def test_diagnostics_on_a_language_model_skip_what_needs_mixing(text_slice, tmp_path, caplog):
    with caplog.at_level("INFO", logger="enlighten"):
        run(
            compose_cfg(
                [
                    *SMALL,
                    f"paths.data_dir={text_slice}",
                    "trainer.max_steps=10",
                    "diagnostics=stiffness",
                    "diagnostics.enp_every_steps=5",
                ],
                tmp_path,
            )
        )
    assert "cannot be mixed: gradient interference (probe and dataset scope) is not measured" in caplog.text
    assert "no single class: stiffness is not measured" in caplog.text
    metrics, _ = read_run(tmp_path)
    assert 0 < metrics[0]["diag/zero_act"] < 1 and metrics[0]["diag/benr"] >= 1  # GELU inputs <= 0; a path
    assert not any(k.startswith(("diag/cos", "diag/stiffness", "diag/zero_act_mix")) for k in metrics[0])


@pytest.mark.slow
@needs_shared("tinyshakespeare", "input.txt")
def test_acceptance_charlm_500_steps_reaches_under_4_bits_per_character(tmp_path):
    """The issue's command, as a user runs it (about 2 minutes on 2 CPU cores)."""
    run_train(
        ["experiment=hlr/charlm", "trainer.max_steps=500", "logger=none", f"hydra.run.dir={tmp_path}"],
        cwd=tmp_path,
        timeout=900,
    )
    _, summary = read_run(tmp_path)
    assert summary["steps"] == 500 and summary["final_test_bpc"] < 4.0
