"""Check, on a CPU-only machine, that attacks and evaluations keep their tensors on the model's device.

On CPU every tensor is on the same device, so a missing ``.to(device)`` (data left on the host
while the model sits on a GPU) cannot fail by itself.  Here host data are marked instead:

- :class:`HostTensor` is a CPU tensor that stands for data in host memory.  Indexing and
  arithmetic keep the mark; ``.to(...)`` / ``.cuda()`` (the move to the model's device) drops it,
  and ``.cpu()`` keeps it (back on the host).
- :class:`DeviceChecked` wraps a model: its ``forward``, ``features`` and ``head`` fail on any
  host-marked input or one on another device than its parameters.
- :func:`assert_on_device` walks what an attack or evaluation returned (tensors, dataclasses,
  dicts, lists) and fails on any tensor that is host-marked or on another device.

On a machine with a GPU the same tests run on ``cuda`` for real.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn


class HostTensor(torch.Tensor):
    """A tensor marked as living in host memory (see the module docstring)."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        out = super().__torch_function__(func, types, args, kwargs or {})
        if func in (torch.Tensor.to, torch.Tensor.cuda) and isinstance(out, HostTensor):
            return out.as_subclass(torch.Tensor)
        return out


def host(t: torch.Tensor) -> HostTensor:
    return t.cpu().as_subclass(HostTensor)


def _check(t: torch.Tensor, device: torch.device, what: str) -> None:
    assert not isinstance(t, HostTensor), f"{what}: a host tensor where the model's device was expected"
    assert t.device == device, f"{what}: tensor on {t.device}, the model is on {device}"


class DeviceChecked(nn.Module):
    """``model`` whose entry points fail on inputs that are not on its device."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.inner = model

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.inner, name)

    @property
    def device(self) -> torch.device:
        return next(self.inner.parameters()).device

    def forward(self, x):
        _check(x, self.device, "model input")
        return self.inner(x)

    def features(self, x):
        _check(x, self.device, "features input")
        return self.inner.features(x)

    def head(self, z):
        _check(z, self.device, "head input")
        return self.inner.head(z)


def assert_on_device(obj, device: torch.device, what: str = "result") -> None:
    """Every tensor in ``obj`` (tensor, dataclass, mapping, sequence) is unmarked and on ``device``."""
    if isinstance(obj, torch.Tensor):
        _check(obj, device, what)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            assert_on_device(getattr(obj, f.name), device, f"{what}.{f.name}")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            assert_on_device(v, device, f"{what}[{k!r}]")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            assert_on_device(v, device, f"{what}[{i}]")
