"""Model zoo: reference parameter counts, shapes, the timm-style interface, configs."""

from __future__ import annotations

import inspect
import typing
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from enlighten.models.cnn import cnn
from enlighten.models.mlp import mlp
from enlighten.models.preact_resnet import preactresnet18, preactresnet50
from enlighten.models.resnet import resnet18
from enlighten.models.vit import vit_small, vit_tiny

ROOT = Path(__file__).resolve().parents[1]
FACTORIES = {
    "resnet18": resnet18,
    "preactresnet18": preactresnet18,
    "preactresnet50": preactresnet50,
    "vit_tiny": vit_tiny,
    "vit_small": vit_small,
    "cnn": cnn,
    "mlp": mlp,
}
OURS = ("resnet18", "preactresnet18", "preactresnet50", "cnn", "mlp")
# Width 1, 10 classes, input (3, 32, 32) (ViTs: patch 4). All are matched exactly.
REFERENCE_PARAMS = {
    "resnet18": 11_173_962,
    "preactresnet18": 11_171_146,
    "preactresnet50": 23_509_066,
    "vit_tiny": 5_362_762,
    "vit_small": 21_342_346,
}
SHAPES = {name: [(3, 32, 32), (1, 28, 28)] for name in FACTORIES}
SHAPES["cnn"].append((1, 8, 8))
SHAPES["mlp"].append((1, 8, 8))
CASES = [
    pytest.param(name, shape, id=f"{name}-{'x'.join(map(str, shape))}")
    for name, shapes in SHAPES.items()
    for shape in shapes
]


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count(name: str, width: float = 1.0, **kwargs: typing.Any) -> int:
    """Parameter count without allocating or initialising real weights."""
    with torch.device("meta"):
        return n_params(FACTORIES[name](num_classes=10, input_shape=(3, 32, 32), width=width, **kwargs))


@pytest.fixture(scope="module")
def built() -> typing.Callable[..., nn.Module]:
    """Build each (model, input shape, width) once per module, seeded, in eval mode."""
    cache: dict[tuple[str, tuple[int, int, int], float], nn.Module] = {}

    def get(name: str, shape: tuple[int, int, int], width: float = 1.0) -> nn.Module:
        key = (name, shape, width)
        if key not in cache:
            torch.manual_seed(0)
            cache[key] = FACTORIES[name](num_classes=7, input_shape=list(shape), width=width).eval()
        return cache[key]

    return get


def batch(shape: tuple[int, int, int], n: int = 2) -> torch.Tensor:
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", list(REFERENCE_PARAMS))
def test_reference_param_counts(name: str) -> None:
    got = count(name)
    assert abs(got - REFERENCE_PARAMS[name]) <= 0.005 * REFERENCE_PARAMS[name]
    assert got == REFERENCE_PARAMS[name]


def test_meta_count_matches_real_model() -> None:
    assert n_params(resnet18(10, (3, 32, 32))) == count("resnet18")


def test_preact_final_norm_adds_one_bn() -> None:
    assert count("preactresnet18", final_norm=True) == REFERENCE_PARAMS["preactresnet18"] + 2 * 512
    assert count("preactresnet50", final_norm=True) == REFERENCE_PARAMS["preactresnet50"] + 2 * 2048


@pytest.mark.parametrize("name", list(FACTORIES))
def test_width_scales_params(name: str) -> None:
    assert count(name, 0.5) < count(name, 1.0) < count(name, 2.0)


@pytest.mark.parametrize("name", list(FACTORIES))
@pytest.mark.parametrize("width", [0.0, -1.0])
def test_bad_width_rejected(name: str, width: float) -> None:
    with pytest.raises(ValueError, match="width"):
        FACTORIES[name](num_classes=10, input_shape=(3, 32, 32), width=width)


@pytest.mark.parametrize("name", ["vit_tiny", "vit_small"])
def test_vit_shape_errors(name: str) -> None:
    with pytest.raises(ValueError, match=r"\(3, 32, 24\)"):
        FACTORIES[name](num_classes=10, input_shape=(3, 32, 24))
    with pytest.raises(ValueError, match="patch_size"):
        FACTORIES[name](num_classes=10, input_shape=(3, 30, 30), patch_size=4)


def test_vit_width_keeps_integer_head_dim() -> None:
    with torch.device("meta"):
        model = vit_small(10, (3, 32, 32), width=0.3)
    assert model.embed_dim % 6 == 0 and model.embed_dim == 114


@pytest.mark.parametrize(("name", "shape"), CASES)
def test_forward_and_penultimate_features(name: str, shape: tuple[int, int, int], built) -> None:
    model = built(name, shape)
    x = batch(shape)
    with torch.no_grad():
        logits = model(x)
        feats = model.forward_features(x)
        pre = model.forward_head(feats, pre_logits=True)
        assert logits.shape == (2, 7)
        assert torch.allclose(model.forward_head(feats), logits, atol=1e-5)
        assert pre.shape == (2, model.head.in_features)
        assert torch.allclose(model.head(pre), logits, atol=1e-5)


@pytest.mark.parametrize("name", OURS)
def test_stem_stages_head_convention(name: str, built) -> None:
    shape = (3, 32, 32)
    model = built(name, shape, 0.25)  # the convention does not depend on width; keep it cheap
    assert isinstance(model.stem, nn.Module)
    assert isinstance(model.stages, nn.Sequential) and len(model.stages) > 0
    assert isinstance(model.head, nn.Linear) and model.head.out_features == 7
    if name in ("resnet18", "preactresnet18", "preactresnet50"):
        assert len(model.stages) == 4
    x = batch(shape)
    with torch.no_grad():
        # Manifold Mixup runs stem + a prefix of stages, mixes, then the rest and forward_head.
        feats = model.stages(model.stem(x))
        assert torch.equal(model.forward_features(x), feats)
        h = model.stages[:1](model.stem(x))
        out = model.forward_head(model.stages[1:](h))
        assert torch.allclose(out, model.forward_head(feats), atol=1e-5)


@pytest.mark.parametrize("name", list(FACTORIES))
def test_channels_last(name: str, built) -> None:
    shape = (3, 32, 32)
    model = built(name, shape, 0.25)
    x = batch(shape)
    with torch.no_grad():
        expected = model(x)
        model.to(memory_format=torch.channels_last)
        try:
            got = model(x.to(memory_format=torch.channels_last))
        finally:
            model.to(memory_format=torch.contiguous_format)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_train_step_updates_params() -> None:
    torch.manual_seed(0)
    model = cnn(10, (1, 8, 8))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = batch((1, 8, 8), 8), torch.arange(8)
    before = model.head.weight.detach().clone()
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    assert not torch.equal(before, model.head.weight)


@pytest.mark.parametrize("name", list(FACTORIES))
def test_hydra_config(name: str) -> None:
    from hydra.utils import get_object, instantiate

    cfg = OmegaConf.load(ROOT / "conf" / "model" / f"{name}.yaml")
    fn = FACTORIES[name]
    assert get_object(cfg._target_) is fn
    params = inspect.signature(fn).parameters
    hints = typing.get_type_hints(fn)  # the config validator resolves these
    assert hints["num_classes"] is int and hints["width"] is float
    for key in cfg:
        assert key == "_target_" or key in params, f"{name}.yaml: unknown key {key}"
    with torch.device("meta"):
        model = instantiate(cfg, num_classes=10, input_shape=[3, 32, 32])
    assert model.head.out_features == 10
