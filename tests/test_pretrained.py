"""Pretrained checkpoints: public layouts convert to the same function, bad files fail in one line.

The reference networks below are the public CIFAR implementations whose state dicts the formats
read (kuangliu/pytorch-cifar's VGG, the TRADES/RobustBench WideResNet; the ResNet is the one
pyautoattack ships next to its example checkpoint).  A converted model must compute exactly what
the reference computes on the same weights.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advfeatures.attacks.pgd import PGDSettings
from advfeatures.models.checkpoint import load_checkpoint, model_from_checkpoint
from advfeatures.models.pretrained import (
    PretrainedConfig,
    health_check,
    load_pretrained,
    unwrap,
)
from advfeatures.stages.convert_pretrained import convert
from advfeatures.utils import AdvFeaturesError

KW = {"in_channels": 3, "num_classes": 10, "image_size": 32, "mean": [0.5] * 3, "std": [0.25] * 3}
IDENTITY = {"mean": [0.0] * 3, "std": [1.0] * 3}


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters (fresh ones are the identity)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


# ----------------------------------------------------------------------------- references


class RefVGG(nn.Module):
    """kuangliu/pytorch-cifar VGG('VGG16') with base width ``w``."""

    def __init__(self, w=4, classes=10):
        super().__init__()
        cfg = [w, w, "M", 2 * w, 2 * w, "M", 4 * w, 4 * w, 4 * w, "M",
               8 * w, 8 * w, 8 * w, "M", 8 * w, 8 * w, 8 * w, "M"]
        layers, c = [], 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                c = v
        layers.append(nn.AvgPool2d(1, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(8 * w, classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


class RefWRNBlock(nn.Module):
    """The TRADES / RobustBench WideResNet BasicBlock (dropout 0)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.equal = cin == cout
        self.convShortcut = None if self.equal else nn.Conv2d(cin, cout, 1, stride, 0, bias=False)

    def forward(self, x):
        if not self.equal:
            x = self.relu1(self.bn1(x))
            out = x
        else:
            out = self.relu1(self.bn1(x))
        out = self.conv2(self.relu2(self.bn2(self.conv1(out))))
        return (x if self.equal else self.convShortcut(x)) + out


class RefNetworkBlock(nn.Module):
    def __init__(self, n, cin, cout, stride):
        super().__init__()
        self.layer = nn.Sequential(
            *[RefWRNBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1) for i in range(n)]
        )

    def forward(self, x):
        return self.layer(x)


class RefWRN(nn.Module):
    """TRADES' WideResNet (with its unused ``sub_block1``)."""

    def __init__(self, depth=10, k=2, classes=10):
        super().__init__()
        n = (depth - 4) // 6
        ch = [16, 16 * k, 32 * k, 64 * k]
        self.conv1 = nn.Conv2d(3, ch[0], 3, 1, 1, bias=False)
        self.block1 = RefNetworkBlock(n, ch[0], ch[1], 1)
        self.sub_block1 = RefNetworkBlock(n, ch[0], ch[1], 1)
        self.block2 = RefNetworkBlock(n, ch[1], ch[2], 2)
        self.block3 = RefNetworkBlock(n, ch[2], ch[3], 2)
        self.bn1 = nn.BatchNorm2d(ch[3])
        self.fc = nn.Linear(ch[3], classes)

    def forward(self, x):
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = F.relu(self.bn1(out))
        return self.fc(F.avg_pool2d(out, 8).flatten(1))


def pyautoattack_resnet():
    """pyautoattack's examples/resnet.py module (skip when pyautoattack ships no examples)."""
    pa = pytest.importorskip("pyautoattack")
    path = Path(pa.__file__).parent / "examples" / "resnet.py"
    if not path.exists():
        pytest.skip(f"{path} not installed")
    spec = importlib.util.spec_from_file_location("pyautoattack_example_resnet", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def save(obj, path: Path) -> Path:
    torch.save(obj, path)
    return path


def cfg(path, fmt, normalization=IDENTITY, **kw) -> PretrainedConfig:
    return PretrainedConfig.from_dict({"path": str(path), "format": fmt, "normalization": normalization, **kw})


# ----------------------------------------------------------------------------- formats


@pytest.mark.parametrize("ctor,arch", [("ResNet18", "resnet18"), ("ResNet50", "resnet50")])
def test_cifar_resnet_layout_computes_the_reference(tmp_path, ctor, arch):
    ref = randomize_bn(getattr(pyautoattack_resnet(), ctor)())
    path = save(ref.state_dict(), tmp_path / "ref.pt")
    model, prov = load_pretrained(cfg(path, "cifar_resnet"), arch=arch, arch_options={}, model_kwargs=KW)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=1e-4, atol=1e-4)
    assert prov["format"] == "cifar_resnet" and len(prov["sha256"]) == 64
    assert model.normalize.mean.flatten().tolist() == [0.0, 0.0, 0.0]


def test_wrn_layout_computes_the_reference(tmp_path):
    ref = randomize_bn(RefWRN(depth=10, k=2))
    path = save({"state_dict": ref.state_dict()}, tmp_path / "wrn.pt")
    model, _ = load_pretrained(
        cfg(path, "wrn"), arch="wrn", arch_options={"depth": 10, "widen_factor": 2}, model_kwargs=KW
    )
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=1e-4, atol=1e-4)


def test_vgg16_bn_layout_computes_the_reference(tmp_path):
    ref = randomize_bn(RefVGG(w=4))
    path = save({"net": ref.state_dict(), "acc": 93.1, "epoch": 200}, tmp_path / "vgg.pt")
    model, _ = load_pretrained(cfg(path, "vgg16_bn"), arch="vgg16", arch_options={"width": 4}, model_kwargs=KW)
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=1e-4, atol=1e-4)


def test_wrappers_dataparallel_and_normaliser_submodule(tmp_path):
    """The robustness library's layout: module. prefix, model. prefix, attacker copy, normaliser."""
    ref = randomize_bn(RefVGG(w=2))
    mean, std = [0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010]
    sd = {"module.normalizer.new_mean": torch.tensor(mean).view(3, 1, 1),
          "module.normalizer.new_std": torch.tensor(std).view(3, 1, 1)}
    for k, v in ref.state_dict().items():
        sd[f"module.model.{k}"] = v
        sd[f"module.attacker.model.{k}"] = v + 1  # the duplicate the attacker holds: ignored
    sd["module.attacker.normalize.new_mean"] = torch.zeros(3, 1, 1)
    sd["module.attacker.normalize.new_std"] = torch.ones(3, 1, 1)
    path = save({"model": sd, "epoch": 3}, tmp_path / "robustness.pt")
    sd_bare, norm = unwrap(torch.load(path, weights_only=True), path)
    assert set(sd_bare) == set(ref.state_dict())
    assert norm["mean"] == pytest.approx(mean) and norm["std"] == pytest.approx(std)
    model, prov = load_pretrained(
        cfg(path, "vgg16_bn", normalization=None), arch="vgg16", arch_options={"width": 2}, model_kwargs=KW
    )
    assert prov["normalization_from"] == "checkpoint"
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    xn = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(xn), rtol=1e-4, atol=1e-4)
    # a config normalisation that contradicts the checkpoint's is refused
    with pytest.raises(AdvFeaturesError, match="differs from pretrained.normalization"):
        load_pretrained(cfg(path, "vgg16_bn"), arch="vgg16", arch_options={"width": 2}, model_kwargs=KW)


def test_own_format_round_trips_a_model_pt(tmp_path, tiny_data):
    """format advfeatures: the model entry of a model.pt (normalize buffers included) loads back."""
    from advfeatures.models import build_model

    m = randomize_bn(build_model("lenet5", **tiny_data.model_kwargs()))
    path = save({"model": m.state_dict(), "meta": {"arch": "lenet5"}}, tmp_path / "own.pt")
    got, prov = load_pretrained(
        cfg(path, "advfeatures", normalization=None), arch="lenet5", arch_options={},
        model_kwargs=tiny_data.model_kwargs(),
    )
    x = tiny_data.x_test[:4]
    with torch.no_grad():
        torch.testing.assert_close(got(x), m(x))
    assert prov["normalization"]["mean"] == pytest.approx(tiny_data.mean)


# ----------------------------------------------------------------------------- bad checkpoints


def one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg
    return msg


def test_pickled_objects_fail_naming_the_file(tmp_path):
    path = save({"state_dict": RefVGG(2).state_dict(), "args": argparse.Namespace(lr=0.1)}, tmp_path / "p.pt")
    with pytest.raises(AdvFeaturesError) as e:
        load_pretrained(cfg(path, "vgg16_bn"), arch="vgg16", arch_options={"width": 2}, model_kwargs=KW)
    msg = one_line(e)
    assert str(path) in msg and "pickled Python objects" in msg and "state_dict()" in msg
    whole = save(RefVGG(2), tmp_path / "module.pt")  # torch.save(model): a pickled nn.Module
    with pytest.raises(AdvFeaturesError, match="pickled Python objects"):
        load_pretrained(cfg(whole, "vgg16_bn"), arch="vgg16", arch_options={"width": 2}, model_kwargs=KW)


def test_truncated_file_fails_naming_the_file(tmp_path):
    good = save(RefVGG(2).state_dict(), tmp_path / "good.pt")
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(AdvFeaturesError) as e:
        load_pretrained(cfg(bad, "vgg16_bn"), arch="vgg16", arch_options={"width": 2}, model_kwargs=KW)
    msg = one_line(e)
    assert str(bad) in msg and "truncated" in msg


def test_wrong_architecture_names_the_first_mismatching_keys(tmp_path):
    ref = RefWRN(depth=10, k=2)
    path = save(ref.state_dict(), tmp_path / "wrn.pt")
    # a WRN checkpoint read as the CIFAR ResNet layout
    with pytest.raises(AdvFeaturesError) as e:
        load_pretrained(cfg(path, "cifar_resnet"), arch="resnet18", arch_options={"width": 4}, model_kwargs=KW)
    msg = one_line(e)
    assert str(path) in msg and "keys do not match ResNet" in msg and "missing ['layer1.0.conv1.weight'" in msg
    assert "unexpected ['block1.layer.0.bn1.weight'" in msg
    # the right layout, the wrong width: shapes named
    with pytest.raises(AdvFeaturesError) as e:
        load_pretrained(cfg(path, "wrn"), arch="wrn", arch_options={"depth": 10, "widen_factor": 4},
                        model_kwargs=KW)
    assert "shapes do not match WideResNet" in one_line(e) and "block1.0.conv1.weight" in str(e.value)
    # a format that does not map onto the configured architecture
    with pytest.raises(AdvFeaturesError, match="maps onto \\['wrn'\\], not arch 'vgg16'"):
        load_pretrained(cfg(path, "wrn"), arch="vgg16", arch_options={}, model_kwargs=KW)


def test_missing_normalisation_and_non_tensor_payload_fail(tmp_path):
    path = save(RefVGG(2).state_dict(), tmp_path / "v.pt")
    with pytest.raises(AdvFeaturesError, match="no normaliser inside the checkpoint"):
        load_pretrained(cfg(path, "vgg16_bn", normalization=None), arch="vgg16",
                        arch_options={"width": 2}, model_kwargs=KW)
    odd = save({"epoch": 3, "acc": torch.tensor(0.9), "optimizer": {"lr": 0.1}}, tmp_path / "o.pt")
    with pytest.raises(AdvFeaturesError, match="no state dict found"):
        load_pretrained(cfg(odd, "vgg16_bn"), arch="vgg16", arch_options={"width": 2}, model_kwargs=KW)


def test_health_check_rejects_chance_and_non_finite_models(tiny_data):
    from advfeatures.models import build_model

    torch.manual_seed(0)
    m = build_model("lenet5", **tiny_data.model_kwargs()).eval()
    with torch.no_grad():
        m.fc3.weight.zero_()
        m.fc3.bias.copy_(torch.tensor([1.0, 0, 0, 0]))  # always class 0: chance accuracy
    x, y = tiny_data.x_test, tiny_data.y_test
    with pytest.raises(AdvFeaturesError, match="not above chance"):
        health_check(m, x, y, tiny_data.num_classes)
    out = health_check(m, x, y, tiny_data.num_classes, allow_degenerate=True)
    assert out["test_acc"] == pytest.approx(float((y == 0).float().mean()))
    with torch.no_grad():
        m.fc3.bias[1] = float("nan")
    with pytest.raises(AdvFeaturesError, match="non-finite outputs on test row 0"):
        health_check(m, x, y, tiny_data.num_classes, allow_degenerate=True)


def test_convert_writes_the_trained_layout_with_provenance(tmp_path, tiny_data):
    """A converted model.pt loads like a trained one; provenance and a one-row metrics file."""
    from advfeatures.training import TrainConfig, train

    tc = TrainConfig(epochs=2, batch_size=40, lr=0.05, eval_subset=20,
                     eval_attack=PGDSettings(eps=0.1, alpha=0.05, steps=2))
    train(tc, tiny_data, model_out=tmp_path / "trained.pt", metrics_out=tmp_path / "m.csv",
          state_dir=tmp_path / "state")
    trained = load_checkpoint(tmp_path / "trained.pt")
    src = save({"state_dict": trained["model"]}, tmp_path / "src.pt")
    out = convert(
        cfg(src, "advfeatures", normalization=None), tiny_data, arch="lenet5", arch_options={},
        method="standard", model_out=tmp_path / "model.pt", metrics_out=tmp_path / "metrics.csv",
        eval_attack=tc.eval_attack, eval_subset_size=20, seed=0,
    )
    ck = load_checkpoint(tmp_path / "model.pt")
    assert set(ck["meta"]) >= set(trained["meta"])
    assert ck["meta"]["model_kwargs"] == trained["meta"]["model_kwargs"]
    assert ck["meta"]["pretrained"]["source"] == str(src)
    assert ck["meta"]["pretrained"]["sha256"] == __import__("hashlib").sha256(src.read_bytes()).hexdigest()
    model = model_from_checkpoint(tmp_path / "model.pt")
    with torch.no_grad():
        acc = float((model(tiny_data.x_test).argmax(1) == tiny_data.y_test).float().mean())
    assert acc == pytest.approx(out["test_acc"]) and acc > 0.5
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith("0,")
    # the training evaluation of the same model on the same seeded subset gives the same numbers
    last = (tmp_path / "m.csv").read_text().splitlines()[-1].split(",")
    assert float(rows[1].split(",")[4]) == pytest.approx(float(last[4]))
