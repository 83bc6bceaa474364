"""The one place that reads and writes HDF5 intermediates.

Every file carries the attrs ``schema_version``, ``kind`` (what it holds), ``producer``
(rule or function), ``advfeatures_version`` and ``params`` (JSON of the config slice
and seed that made it).  Writes go to a temporary file in the same folder and are renamed
into place, so a killed job never leaves a file that looks complete.

Layouts by ``kind`` (N samples, C channels, H x W images, K classes):

``dataset``      x_train [N,C,H,W] uint8 or float32 in [0,1]; y_train [N] int64;
                 x_test, y_test likewise; attrs ``classes`` (JSON list), ``name``,
                 ``mean``/``std`` (per channel, from the training split).
``synthetic``    x [N,C,H,W] float32 in [0,1]; y [N] int64 (the label trained on);
                 source_index [N] int64 (row in x_train); y_source [N] int64;
                 source_pred [N] int64 (the source model's prediction on x);
                 rep_distance [N] float32 (||g(x) - g(x_source)|| / ||g(x_source)||, g = the
                 source model's representation); attrs ``synthetic_kind`` (d_r|d_nr|d_rand|d_det),
                 ``source_model`` (path), ``source_method``, ``dataset``.
``attack``       x_adv [N,C,H,W] float32; index [N] int64 (rows of x_test); y [N];
                 pred_clean [N]; pred_adv [N]; linf [N], l2 [N] float32 norms of x_adv - x;
                 NRF-type attacks: mask_robust [N,Cz] uint8 (the IB robust-channel mask of the
                 clean row; the attack used it or its complement).
                 (rule attack, advfeatures.attacks.suite.evaluate_attack) attrs ``attack`` (suite
                 name), ``attack_type``, ``method``, ``bound`` ("Linf 0.1765" | "L2 1.5" |
                 "unbounded"), ``attack_kwargs`` (JSON, resolved arguments), ``mask`` (NRF:
                 nonrobust|robust), ``standard`` (AutoAttack at full standard budget),
                 ``clean_acc``, ``robust_acc``; ``params`` holds the config slice and seed.
``bottleneck``   (rule distill, advfeatures.stages.distill.analyse_input; one input kind, one beta)
                 index [N] int64 (rows of x_test); y [N] int64 (true labels); pred_full [N]
                 (head(Z) = model prediction on this input); sigma [N,Cz] float32 (learnt noise
                 scale softplus(lambda)); sigma_z [N,Cz] float32 (spatial VARIANCE of Z);
                 z_pool [N,Cz] float32 (Z mean-pooled over space); threshold [N] float32 (the T
                 each row was compared with; [N,Cz] for threshold: channel); mask_robust [N,Cz] bool (sigma^2 > T);
                 pred_robust, pred_nonrobust [N] int64 (head(Z_r), head(Z_nr)).  Controls with
                 suffix ``_predlabel`` (IB with the model's prediction as label: sigma, threshold,
                 mask_robust, pred_robust, pred_nonrobust) and ``_random`` (mask_random: random
                 channels, same count per row as mask_robust; pred_robust_random,
                 pred_nonrobust_random).  Attacked inputs add: clean_mask_robust{,_predlabel,
                 _random} [N,Cz] bool (the masks of the same rows' CLEAN images) and
                 pred_robust_cleanmask{,_predlabel,_random}, pred_nonrobust_cleanmask{...} [N]
                 (attacked features under the clean masks; Kim et al. Table 1);
                 pred_adv_attack, pred_clean_attack [N] (copied from the attack file).
                 attrs ``input``, ``method``, ``beta``, ``clean_rows_recomputed``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from advfeatures import __version__
from advfeatures.utils import AdvFeaturesError, atomic_write

SCHEMA_VERSION = 1


def _to_numpy(value: Any) -> np.ndarray:
    try:
        import torch

        if isinstance(value, torch.Tensor):
            return value.detach().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    return np.asarray(value)


def write_h5(
    path: str | os.PathLike,
    arrays: Mapping[str, Any],
    *,
    kind: str,
    producer: str,
    params: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
    compression: str | None = None,
) -> Path:
    """Write ``arrays`` and provenance atomically to ``path``."""
    path = Path(path)
    with atomic_write(path) as tmp, h5py.File(tmp, "w") as f:
        for name, value in arrays.items():
            f.create_dataset(name, data=_to_numpy(value), compression=compression)
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["kind"] = kind
        f.attrs["producer"] = producer
        f.attrs["advfeatures_version"] = __version__
        f.attrs["params"] = json.dumps(params or {}, sort_keys=True, default=str)
        for key, value in (attrs or {}).items():
            f.attrs[key] = json.dumps(value, default=str) if isinstance(value, dict | list) else value
    return path


def read_h5(
    path: str | os.PathLike, keys: Iterable[str] | None = None, *, kind: str | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read ``keys`` (all when None) and attrs; a missing, corrupt or wrong file is one clear error."""
    path = Path(path)
    if not path.exists():
        raise AdvFeaturesError(f"{path}: file not found; run the rule that makes it (snakemake {path})")
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: f.attrs[k] for k in f.attrs}
            if kind is not None and attrs.get("kind") != kind:
                raise AdvFeaturesError(
                    f"{path}: holds kind={attrs.get('kind')!r}, expected {kind!r}; delete it and rerun"
                )
            names = list(f.keys()) if keys is None else list(keys)
            missing = [k for k in names if k not in f]
            if missing:
                raise AdvFeaturesError(f"{path}: missing dataset(s) {missing}; delete it and rerun")
            data = {k: f[k][()] for k in names}
    except AdvFeaturesError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise AdvFeaturesError(
            f"{path}: unreadable or corrupt HDF5 ({exc.__class__.__name__}: {exc}); delete it and rerun"
        ) from None
    if "params" in attrs:
        try:
            attrs["params"] = json.loads(attrs["params"])
        except (TypeError, ValueError) as exc:  # JSONDecodeError is a ValueError
            raise AdvFeaturesError(
                f"{path}: attribute 'params' is not JSON ({exc.__class__.__name__}); the file was not "
                f"written by advfeatures.h5io or is damaged: delete it and rerun"
            ) from None
    return data, attrs


def read_attr_json(attrs: Mapping[str, Any], key: str, default: Any = None) -> Any:
    value = attrs.get(key, default)
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def json_list_attr(attrs: Mapping[str, Any], key: str, path: str | os.PathLike) -> list:
    """A JSON list attribute that must be there (``classes``, ``mean``, ``std`` of a dataset);
    missing, not JSON or not a list is one error naming the file and attribute."""
    value = attrs.get(key)
    if isinstance(value, bytes):
        value = value.decode()
    try:
        out = json.loads(value) if isinstance(value, str) else None
    except ValueError:
        out = None
    if not isinstance(out, list):
        raise AdvFeaturesError(
            f"{path}: attribute {key!r} is {'missing' if value is None else 'not a JSON list'}; "
            f"the file is damaged or was not written by advfeatures: delete it and rerun"
        )
    return out
