"""Architectures: the SplitModel contract (features/head/representation/probes), the split points
of Kim et al., any channel count / class count / 28 or 32 pixel input, and the reference sizes."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from advfeatures.models import ARCHITECTURES, build_model
from advfeatures.models.base import Normalize
from advfeatures.utils import AdvFeaturesError, make_generator

torch.set_num_threads(1)

TINY = {
    "lenet5": {},
    "vgg16": {"width": 4},
    "wrn": {"depth": 10, "widen_factor": 1},
    "resnet18": {"width": 4},
    "resnet50": {"width": 4},
}
SHAPES = [(1, 28, 10), (3, 32, 7)]  # (channels, image size, classes)


def make(name, channels, size, classes, **extra):
    mean = [0.1 * (c + 1) for c in range(channels)]
    std = [0.2 + 0.05 * c for c in range(channels)]
    return build_model(
        name,
        in_channels=channels,
        num_classes=classes,
        image_size=size,
        mean=mean,
        std=std,
        options={**TINY[name], **extra},
    )


def batch(channels, size, n=2, seed=0):
    return torch.rand(n, channels, size, size, generator=make_generator(seed))


def last_linear(model: nn.Module) -> nn.Linear:
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1]


def test_every_architecture_is_tested():
    assert set(TINY) == set(ARCHITECTURES)


@pytest.mark.parametrize("channels,size,classes", SHAPES)
@pytest.mark.parametrize("name", sorted(TINY))
def test_split_model_contract(name, channels, size, classes):
    torch.manual_seed(0)
    model = make(name, channels, size, classes).eval()
    x = batch(channels, size)
    with torch.no_grad():
        logits = model(x)
        z = model.features(x)
        rep = model.representation(x)
        probes = model.probes(x)
        again = model(x)
    assert logits.shape == (2, classes)
    assert z.ndim == 4 and z.shape[:2] == (2, model.split_channels)
    # the split sits before the last ReLU (Kim et al.): Z keeps negative values, and the head
    # starts with that ReLU (a split after it, or a head without it, breaks one of the two)
    assert (z < 0).any()
    torch.testing.assert_close(model.head(z.clamp_min(0)), logits, rtol=1e-6, atol=1e-6)
    assert rep.ndim == 2 and rep.shape[0] == 2
    torch.testing.assert_close(last_linear(model)(rep), logits, rtol=1e-5, atol=1e-5)
    assert len(model.probe_names) == 5 and tuple(probes) == model.probe_names
    for t in probes.values():
        assert t.shape[0] == 2 and torch.isfinite(t).all()
    torch.testing.assert_close(probes[model.probe_names[-1]], logits, rtol=1e-5, atol=1e-5)
    assert torch.equal(logits, again)  # eval mode: deterministic


@pytest.mark.parametrize("name", sorted(TINY))
def test_forward_backward_two_images(name):
    torch.manual_seed(0)
    model = make(name, 3, 32, 10).train()
    x = batch(3, 32).requires_grad_(True)
    loss = nn.functional.cross_entropy(model(x), torch.tensor([1, 2]))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert x.grad is not None and x.grad.abs().sum() > 0  # attacks need input gradients


@pytest.mark.parametrize("name", sorted(TINY))
def test_normalisation_lives_inside_the_model(name):
    torch.manual_seed(0)
    model = make(name, 3, 32, 10).eval()
    plain = copy.deepcopy(model)
    plain.normalize = Normalize([0.0] * 3, [1.0] * 3)
    x = batch(3, 32)
    with torch.no_grad():
        expected = plain((x - model.normalize.mean) / model.normalize.std)
        torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)


def batchnorms(module):
    return [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]


def capture(module, run):
    """The output of ``module`` (first call) while ``run()`` executes."""
    out = {}
    handle = module.register_forward_hook(lambda m, i, o: out.setdefault("o", o))
    with torch.no_grad():
        run()
    handle.remove()
    return out["o"]


def test_vgg16_split_is_the_13th_batchnorm_before_relu():
    torch.manual_seed(0)
    model = make("vgg16", 3, 32, 10).eval()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    bns = batchnorms(model)
    assert len(convs) == 13 and len(bns) == 13
    x = batch(3, 32)
    with torch.no_grad():
        z = model.features(x)
    torch.testing.assert_close(z, capture(bns[12], lambda: model(x)), rtol=0, atol=0)
    assert (z < 0).any()  # before the ReLU
    assert z.shape[-2:] == (2, 2)


def test_wrn_split_is_the_final_batchnorm_and_probes_follow_zhang():
    torch.manual_seed(0)
    model = make("wrn", 3, 32, 10).eval()
    x = batch(3, 32)
    with torch.no_grad():
        z = model.features(x)
        probes = model.probes(x)
    torch.testing.assert_close(z, capture(model.bn, lambda: model(x)), rtol=0, atol=0)
    assert (z < 0).any() and z.shape[1] == 64
    assert model.probe_names == ("conv1", "block1", "block2", "block3", "fc")
    for name in ("conv1", "block1", "block2", "block3"):
        torch.testing.assert_close(
            probes[name], capture(getattr(model, name), lambda: model(x)), rtol=0, atol=0
        )


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_resnet_split_is_the_last_block_before_its_relu(name):
    torch.manual_seed(0)
    model = make(name, 3, 32, 10).eval()
    x = batch(3, 32)
    with torch.no_grad():
        z = model.features(x)
        probes = model.probes(x)
    assert (z < 0).any()
    torch.testing.assert_close(torch.relu(z), probes["layer4"], rtol=0, atol=0)
    torch.testing.assert_close(
        probes["layer4"], capture(model.layer4, lambda: model.probes(x)), rtol=0, atol=0
    )
    assert z.shape[-2:] == (4, 4)  # CIFAR stem: no max pool, strides 1, 2, 2, 2


def test_wrn_dropout_only_in_training():
    torch.manual_seed(0)
    model = make("wrn", 3, 32, 10, dropout=0.5)
    x = batch(3, 32)
    with torch.no_grad():
        model.eval()
        assert torch.equal(model(x), model(x))
        model.train()
        assert not torch.equal(model(x), model(x))


@pytest.mark.parametrize(
    "name,options,split,params_m",
    [
        # reference sizes: VGG-16-BN (CIFAR) 14.7M, WRN-28-10 36.5M, ResNet-18 11.2M, ResNet-50 23.5M
        ("vgg16", {}, 512, 14.73),
        ("wrn", {"depth": 28, "widen_factor": 10}, 640, 36.48),
        ("resnet18", {}, 512, 11.17),
        ("resnet50", {}, 2048, 23.52),
    ],
)
def test_full_size_architectures(name, options, split, params_m):
    model = build_model(
        name,
        in_channels=3,
        num_classes=10,
        image_size=32,
        mean=[0.5] * 3,
        std=[0.25] * 3,
        options=options,
    )
    assert model.split_channels == split
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(params_m, abs=0.01)


def test_bad_options_are_one_line_errors():
    with pytest.raises(
        AdvFeaturesError, match=r"unknown option\(s\) \['depht'\].*arch.options.wrn"
    ):
        make("wrn", 3, 32, 10, depht=28)
    with pytest.raises(AdvFeaturesError, match=r"6n \+ 4.*got 12"):
        make("wrn", 3, 32, 10, depth=12)
    with pytest.raises(AdvFeaturesError, match="unknown architecture 'vgg19'"):
        build_model("vgg19", in_channels=3, num_classes=10, image_size=32, mean=[0], std=[1])
    with pytest.raises(AdvFeaturesError, match="at least 16x16"):
        make("vgg16", 3, 8, 10)


def test_schema_options_match_the_constructors():
    import inspect

    from advfeatures import config, registry

    assert set(registry.ARCHITECTURES) == set(ARCHITECTURES)
    options = config.ArchOptions.model_fields
    assert set(options) == set(ARCHITECTURES)
    for name, ctor in ARCHITECTURES.items():
        model = options[name].annotation.__args__[0]  # X | None
        assert model.model_config["extra"] == "forbid"
        accepted = list(inspect.signature(ctor).parameters)[5:]
        assert set(model.model_fields) == set(accepted), name
    # every depth the config allows builds
    for depth in registry.WRN_DEPTHS[:4]:
        make("wrn", 3, 32, 10, depth=depth)
