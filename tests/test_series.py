"""Time series: the UCR loader on the real files, the series models, and training with every kind of
strategy on them."""

from __future__ import annotations

import pytest
import torch

from enlighten.data.ucr import ucr
from enlighten.models.series import fcn1d, resnet1d
from enlighten.run import run
from tests.conftest import SHARED_DATA, compose_cfg, needs_shared

BASE = ["model=mlp", "trainer.epochs=1", "logger=none", "trainer.device=cpu"]


@needs_shared("ucr", "GunPoint")
def test_ucr_labels_are_remapped_and_series_z_normalized():
    data = ucr("GunPoint", str(SHARED_DATA))
    assert (data.num_train, data.num_test, data.num_classes, data.input_shape) == (50, 150, 2, (1, 150))
    assert set(data.train_y.tolist()) == {0, 1}
    x = data.train_x
    torch.testing.assert_close(x.mean(-1), torch.zeros(50, 1), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.std(-1), torch.ones(50, 1), atol=1e-4, rtol=0)


@pytest.mark.parametrize("factory", [fcn1d, resnet1d])
def test_series_models_keep_any_length_and_expose_stages(factory):
    model = factory(num_classes=3, input_shape=[2, 50], width=0.25)
    for length in (7, 50, 301):
        assert model(torch.randn(4, 2, length)).shape == (4, 3)
    assert len(model.stages) == 2 and model.forward_head(model.forward_features(torch.randn(2, 2, 9)),
                                                         pre_logits=True).shape[1] == model.num_features
    with pytest.raises(ValueError, match=r"input_shape must be \(channels, length\)"):
        factory(num_classes=3, input_shape=[3, 32, 32])


@needs_shared("ucr", "ECG200")
@pytest.mark.parametrize("model, strategy", [("fcn1d", "high_loss_removal"), ("resnet1d", "random_removal"),
                                             ("mlp", "mixup")])
def test_real_ucr_series_train_with_the_series_models_and_strategies(model, strategy, tmp_path):
    summary = run(compose_cfg([*BASE, "dataset=ucr", "dataset.name=ECG200", f"paths.data_dir={SHARED_DATA}",
                               f"model={model}", "model.width=0.25", "trainer.batch_size=16", "trainer.epochs=5",
                               f"strategy={strategy}", "phase=chance_adjusted", "phase.check_every=2"], tmp_path))
    # Beats always answering the majority class (64% of the test set).
    assert summary["status"] == "completed" and summary["final_val_acc"] > 0.64
    assert summary["num_params"] > 0
