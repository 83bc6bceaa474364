"""Pretrained checkpoints in place of the training stage: read, map and check.

A method under ``training.methods`` may name a checkpoint instead of being trained (config key
``training.methods.<m>.pretrained``, see :class:`PretrainedConfig`).  :func:`load_pretrained`
builds the architecture with its weights; the stage ``convert_pretrained``
(:func:`advfeatures.stages.convert_pretrained.convert`) writes it once as the pipeline's own
``model.pt`` (the layout :func:`advfeatures.training.train` writes, plus provenance under
``meta["pretrained"]``), so every downstream stage works unchanged.

Reading (:func:`read_checkpoint`) always uses ``torch.load(weights_only=True)``: a file that
needs pickled Python objects (a whole ``nn.Module``, an ``argparse.Namespace``, numpy arrays)
fails with one line saying how to re-save it.  Wrappers are peeled off (:func:`unwrap`): a dict
holding the state dict under ``state_dict`` / ``model`` / ``model_state_dict`` / ``net``, the
``module.`` prefix of ``DataParallel``, a whole-model prefix (``model.``, as the robustness
library saves it next to its ``attacker.`` copy) and a normaliser submodule
(``normalizer.new_mean``/``new_std``, ``normalize.mean``/``std``, ``mu``/``sigma``), whose
mean and std become the model's own ``Normalize``.

Formats (config key ``format``; :data:`FORMATS`) map the remaining keys onto this package's
architectures (:func:`map_keys`):

``advfeatures``
    this package's own key names, for any architecture (e.g. a ``model.pt``'s ``model`` entry).
``cifar_resnet``
    the common public CIFAR ResNet-18/50 layout (``conv1``, ``bn1``, ``layer1..4`` with
    ``shortcut.0/1``, ``linear``; kuangliu/pytorch-cifar, the robustness library, the
    pyautoattack example) -> ``resnet18`` / ``resnet50``; ``fc`` is accepted for ``linear``.
``wrn``
    the usual WRN-28-10 layout of TRADES, MART and RobustBench (``block1.layer.0.bn1``,
    ``convShortcut``, final ``bn1``, ``fc``) -> ``wrn`` with ``arch.options.wrn`` set to the
    checkpoint's depth and widen factor.  TRADES' unused ``sub_block1`` is dropped.
``vgg16_bn``
    a ``features.<i>`` sequence of 13 conv + BatchNorm pairs and one linear ``classifier``
    (kuangliu/pytorch-cifar's VGG('VGG16')) -> ``vgg16``.  Pairs are matched in order.

After mapping, keys and shapes must match the architecture exactly; a mismatch fails with one
line naming the first mismatching keys.  The converted model then passes the health checks of
training (:func:`health_check`): finite outputs on the whole prepared test set and, unless
``allow_degenerate``, accuracy above chance (one-sided exact binomial test, ``CHANCE_ALPHA``).
"""

from __future__ import annotations

import hashlib
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from scipy.stats import binomtest
from torch import nn

from advfeatures.models import SplitModel, build_model
from advfeatures.utils import AdvFeaturesError, eval_mode

#: format -> architectures it maps onto (None: any)
FORMATS: dict[str, tuple[str, ...] | None] = {
    "advfeatures": None,
    "cifar_resnet": ("resnet18", "resnet50"),
    "wrn": ("wrn",),
    "vgg16_bn": ("vgg16",),
}
#: dict keys under which checkpoints commonly keep the state dict, most specific first
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "state")
#: key prefixes of a whole wrapped model (stripped when every key carries the same one)
MODEL_PREFIXES = ("module", "model", "net", "base_model")
#: (mean, std) leaf names of normaliser submodules
NORMALIZER_LEAVES = (("mean", "std"), ("new_mean", "new_std"), ("mu", "sigma"))
#: significance level of the one-sided binomial test "accuracy above chance"
CHANCE_ALPHA = 0.01
#: how many mismatching keys an error names
SHOW = 3


@dataclass
class PretrainedConfig:
    """The slice ``training.methods.<m>.pretrained``."""

    path: str
    format: str
    normalization: dict | None = None  # {mean: [...], std: [...]}; None: from the checkpoint
    allow_degenerate: bool = False

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PretrainedConfig:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise AdvFeaturesError(f"unknown pretrained option(s) {sorted(unknown)}")
        cfg = cls(**dict(d))
        if cfg.format not in FORMATS:
            raise AdvFeaturesError(
                f"unknown pretrained format {cfg.format!r}; choose one of {sorted(FORMATS)}"
            )
        return cfg


# ----------------------------------------------------------------------------- reading


def sha256_file(path: str | Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def read_checkpoint(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU with one-line errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise AdvFeaturesError(f"{path}: pretrained checkpoint not found; fix its pretrained.path")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower() or "weights_only" in str(exc):
            raise AdvFeaturesError(
                f"{path}: the checkpoint holds pickled Python objects, which the weights-only "
                "loader (weights_only=True) refuses to run; where the model's code is available, re-save "
                "its weights only (torch.save(model.state_dict(), 'weights.pt')) and point "
                "pretrained.path at that file"
            ) from None
        raise AdvFeaturesError(
            f"{path}: not a readable torch checkpoint (UnpicklingError: {_first_line(exc)}); "
            "re-download or re-save it"
        ) from None
    except Exception as exc:  # noqa: BLE001 - truncated zip, not a torch file, ...
        raise AdvFeaturesError(
            f"{path}: unreadable or truncated checkpoint ({exc.__class__.__name__}: "
            f"{_first_line(exc)}); re-download or re-save it"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:160] if text else "no message"


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def unwrap(obj: Any, path: str | Path = "checkpoint") -> tuple[dict[str, torch.Tensor], dict | None]:
    """The bare state dict of ``obj`` and the normaliser found in it (``{mean, std}`` or None)."""
    seen = []
    while not _is_state_dict(obj):
        if not isinstance(obj, Mapping):
            raise AdvFeaturesError(
                f"{path}: holds a {type(obj).__name__}, not a state dict (a mapping of names to "
                "tensors); save model.state_dict()"
            )
        inner = next((k for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            keys = sorted(str(k) for k in obj)[:8]
            raise AdvFeaturesError(
                f"{path}: no state dict found (top-level keys {keys}{' under ' + '.'.join(seen) if seen else ''}); "
                f"expected tensors, or a state dict under one of {list(WRAPPER_KEYS)}"
            )
        seen.append(inner)
        obj = obj[inner]
    sd = {_strip_module(k): v for k, v in obj.items()}
    # the robustness library keeps a second copy of the model inside its attacker
    if any(k.startswith("model.") for k in sd):
        sd = {k: v for k, v in sd.items() if not k.startswith("attacker.")}
    sd, norm = _pop_normalizer(sd, path)
    for prefix in MODEL_PREFIXES:
        if sd and all(k.startswith(prefix + ".") for k in sd):
            sd = {k[len(prefix) + 1 :]: v for k, v in sd.items()}
    return sd, norm


def _strip_module(key: str) -> str:
    while key.startswith("module."):
        key = key[len("module.") :]
    return key


def _pop_normalizer(sd: dict, path) -> tuple[dict, dict | None]:
    """Take a normaliser's mean/std out of ``sd`` (top-level buffers or a submodule's)."""
    found = []
    for key in sd:
        head, dot, leaf = key.rpartition(".")
        if head.count(".") > 1:
            continue
        for mean_leaf, std_leaf in NORMALIZER_LEAVES:
            if leaf == mean_leaf and f"{head}{dot}{std_leaf}" in sd:
                found.append((key, f"{head}{dot}{std_leaf}"))
    if not found:
        return sd, None
    if len(found) > 1:
        raise AdvFeaturesError(
            f"{path}: several normaliser submodules ({[m for m, _ in found]}); keep one"
        )
    mean_key, std_key = found[0]
    norm = {
        "mean": [float(v) for v in sd[mean_key].flatten()],
        "std": [float(v) for v in sd[std_key].flatten()],
    }
    return {k: v for k, v in sd.items() if k not in (mean_key, std_key)}, norm


# ----------------------------------------------------------------------------- key mapping


def map_keys(sd: dict[str, torch.Tensor], fmt: str, model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename the keys of a public layout ``fmt`` to ``model``'s (this package's) names."""
    if fmt == "advfeatures":
        return dict(sd)
    if fmt == "cifar_resnet":
        return {re.sub(r"^fc\.", "linear.", k): v for k, v in sd.items()}
    if fmt == "wrn":
        out = {}
        for k, v in sd.items():
            if k.startswith("sub_block1."):  # TRADES' WideResNet: built but never used
                continue
            k = re.sub(r"^(block\d)\.layer\.", r"\1.", k)
            k = k.replace(".convShortcut.", ".shortcut.")
            k = re.sub(r"^bn1\.", "bn.", k)
            out[k] = v
        return out
    if fmt == "vgg16_bn":
        return _map_sequential_vgg(sd, model)
    raise AdvFeaturesError(f"unknown pretrained format {fmt!r}; choose one of {sorted(FORMATS)}")


def _map_sequential_vgg(sd: dict, model: nn.Module) -> dict:
    """``features.<i>`` conv/BN modules in index order -> the model's conv/BN modules in order."""
    src: dict[int, str] = {}  # index -> "conv" | "bn"
    for k, v in sd.items():
        m = re.match(r"^features\.(\d+)\.(weight|running_mean)$", k)
        if m:
            i = int(m.group(1))
            if m.group(2) == "running_mean":
                src[i] = "bn"
            elif v.dim() == 4:
                src[i] = "conv"
    dst = {"conv": [], "bn": []}
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Conv2d):
            dst["conv"].append(name)
        elif isinstance(mod, nn.BatchNorm2d):
            dst["bn"].append(name)
    rename: dict[str, str] = {}
    counts = {"conv": 0, "bn": 0}
    for i in sorted(src):
        kind = src[i]
        if counts[kind] < len(dst[kind]):
            rename[f"features.{i}."] = dst[kind][counts[kind]] + "."
        counts[kind] += 1
    out = {}
    for k, v in sd.items():
        m = re.match(r"^(features\.\d+\.)(.*)$", k)
        if m and m.group(1) in rename:
            out[rename[m.group(1)] + m.group(2)] = v
        else:
            out[re.sub(r"^(linear|fc)\.", "classifier.", k)] = v
    return out


def check_and_load(model: nn.Module, sd: dict[str, torch.Tensor], path, fmt: str) -> None:
    """Load ``sd`` into ``model`` if keys and shapes match exactly; else one line naming them.

    The model's own ``normalize`` buffers are not expected in ``sd``; BatchNorm
    ``num_batches_tracked`` counters (absent from old checkpoints) may be missing.
    """
    own = {k: v for k, v in model.state_dict().items() if not k.startswith("normalize.")}
    missing = [k for k in own if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in own]
    shapes = [
        f"{k} (checkpoint {list(sd[k].shape)}, model {list(own[k].shape)})"
        for k in own
        if k in sd and sd[k].shape != own[k].shape
    ]
    arch = type(model).__name__
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {missing[:SHOW]}{' ...' if len(missing) > SHOW else ''} ({len(missing)})")
        if unexpected:
            parts.append(
                f"unexpected {unexpected[:SHOW]}{' ...' if len(unexpected) > SHOW else ''} ({len(unexpected)})"
            )
        raise AdvFeaturesError(
            f"{path}: keys do not match {arch} in format {fmt}: {'; '.join(parts)}; check "
            "arch.name, arch.options and pretrained.format"
        )
    if shapes:
        raise AdvFeaturesError(
            f"{path}: shapes do not match {arch} in format {fmt}: {', '.join(shapes[:SHOW])}"
            f"{' ...' if len(shapes) > SHOW else ''}; check arch.options and the dataset's "
            "classes and channels"
        )
    full = dict(sd)
    for k, v in model.state_dict().items():  # normaliser and absent counters: the model's own
        full.setdefault(k, v)
    model.load_state_dict(
        {k: v.to(dtype=model.state_dict()[k].dtype) for k, v in full.items()}, strict=True
    )


# ----------------------------------------------------------------------------- conversion


def resolve_normalization(cfg: PretrainedConfig, found: dict | None, channels: int, path) -> dict:
    """The model's input normalisation: the config's, the checkpoint's, which must then agree."""
    norm = cfg.normalization
    if norm is None and found is None:
        raise AdvFeaturesError(
            f"{path}: no normaliser inside the checkpoint and no pretrained.normalization in the "
            "config; give the mean and std the model was trained with (mean [0, ...], std "
            "[1, ...] for a model that takes [0, 1] pixels)"
        )
    if norm is not None and found is not None:
        same = len(norm["mean"]) == len(found["mean"]) and all(
            abs(a - b) <= 1e-4 for a, b in zip(
                [*norm["mean"], *norm["std"]], [*found["mean"], *found["std"]]
            )
        )
        if not same:
            raise AdvFeaturesError(
                f"{path}: the checkpoint's normaliser (mean {found['mean']}, std {found['std']}) "
                f"differs from pretrained.normalization (mean {norm['mean']}, std {norm['std']}); "
                "drop pretrained.normalization or make it agree"
            )
    norm = {"mean": [float(v) for v in (norm or found)["mean"]],
            "std": [float(v) for v in (norm or found)["std"]]}
    for key in ("mean", "std"):
        if len(norm[key]) != channels:
            raise AdvFeaturesError(
                f"{path}: normalization {key} has {len(norm[key])} values, the dataset "
                f"{channels} channels; give one per channel"
            )
    if min(norm["std"]) <= 0:
        raise AdvFeaturesError(f"{path}: normalization std {norm['std']} must be positive")
    return norm


def load_pretrained(
    cfg: PretrainedConfig, *, arch: str, arch_options: dict | None, model_kwargs: dict
) -> tuple[SplitModel, dict]:
    """Build ``arch`` with the checkpoint's weights (eval mode, CPU) and its provenance dict."""
    path = Path(cfg.path)
    allowed = FORMATS.get(cfg.format, ())
    if cfg.format not in FORMATS:
        raise AdvFeaturesError(
            f"unknown pretrained format {cfg.format!r}; choose one of {sorted(FORMATS)}"
        )
    if allowed is not None and arch not in allowed:
        raise AdvFeaturesError(
            f"pretrained format {cfg.format!r} maps onto {list(allowed)}, not arch {arch!r}; "
            "set arch.name accordingly or use another format"
        )
    raw = read_checkpoint(path)
    sd, found = unwrap(raw, path)
    norm = resolve_normalization(cfg, found, int(model_kwargs["in_channels"]), path)
    kwargs = {**model_kwargs, **norm}
    model = build_model(arch, options=arch_options or {}, **kwargs)
    check_and_load(model, map_keys(sd, cfg.format, model), path, cfg.format)
    model.eval()
    provenance = {
        "source": str(path),
        "sha256": sha256_file(path),
        "format": cfg.format,
        "normalization": norm,
        "normalization_from": "config" if cfg.normalization is not None else "checkpoint",
    }
    return model, provenance


@torch.no_grad()
def health_check(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    *,
    allow_degenerate: bool = False,
    batch_size: int = 500,
    what: str = "pretrained model",
) -> dict:
    """Finite logits on every row and (unless allowed) accuracy above chance; returns the numbers.

    Above chance: a one-sided exact binomial test of the number of correct predictions against
    chance 1/K rejects at ``CHANCE_ALPHA``.
    """
    device = next(model.parameters()).device
    correct, rows = 0, 0
    with eval_mode(model):
        for i in range(0, len(x), batch_size):
            logits = model(x[i : i + batch_size].to(device))
            if not torch.isfinite(logits).all():
                bad = i + int((~torch.isfinite(logits)).any(1).nonzero()[0])
                raise AdvFeaturesError(
                    f"{what}: non-finite outputs on test row {bad}; the weights, format or "
                    "normalization are wrong"
                )
            correct += int((logits.argmax(1).cpu() == y[i : i + batch_size]).sum())
            rows += len(logits)
    chance = 1.0 / num_classes
    p = float(binomtest(correct, rows, chance, alternative="greater").pvalue) if rows else 1.0
    acc = correct / rows if rows else float("nan")
    if p >= CHANCE_ALPHA and not allow_degenerate:
        raise AdvFeaturesError(
            f"{what}: test accuracy {acc:.3f} on {rows} rows is not above chance {chance:.3f} "
            f"(binomial p = {p:.2g}); check pretrained.format and normalization, or set "
            "pretrained.allow_degenerate: true"
        )
    return {"test_acc": acc, "test_rows": rows, "chance": chance, "chance_pvalue": p}


__all__ = [
    "FORMATS", "PretrainedConfig", "check_and_load", "health_check", "load_pretrained",
    "map_keys", "read_checkpoint", "unwrap",
]
