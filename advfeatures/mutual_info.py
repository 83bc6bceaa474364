"""Mutual information of layer representations (Zhang et al.; estimators of Saxe et al. 2018).

Activations are flattened per sample to ``T [N, d]``; ``y [N]`` are the class labels.  All
results are in bits.

KDE (Kolchinsky & Tracey pairwise-distance bounds).  Gaussian noise of variance ``s2`` is
added to T only for estimation, so H(T|X) = d/2 (ln(2 pi s2) + 1) and, with
``L_i(v) = logsumexp_j(-||t_i - t_j||^2 / (2 v))`` over all j (i included):

- H_upper(T) = d/2 + d/2 ln(2 pi s2) + ln N - mean_i L_i(s2)
- H_lower(T) = d/2 + d/2 ln(2 pi s2) + ln N - mean_i L_i(4 s2)   (the upper-bound expression at
  variance 4 s2 plus d/2 ln(1/4))
- I(X;T) = H_bound(T) - H(T|X);  I(T;Y) = H_bound(T) - sum_c p(c) H_bound(T | Y=c), the same
  bound in both terms, H(T|Y=c) over the samples of class c.

The d-dependent constants cancel in both differences; :func:`kde_mi` evaluates the remaining
terms directly (``I(X;T) = ln N - mean_i L_i``) so that no large constants are subtracted,
:func:`kde_mi_reference` spells out the full entropies the way the published code does
(Kolchinsky's ``entropy_estimator_kl``/``_bd``, one distance matrix per call); the tests check
that both agree.

Memory: :func:`kde_mi` walks over blocks of rows.  Each block holds its full rows of squared
distances (``||a||^2 + ||b||^2 - 2 a.b``, clamped at 0, on mean-centred float64 activations),
from which the log-sum-exps over all samples and over same-class samples are taken for both
variances; so one pass over the Gram matrix gives both bounds of both quantities, and the peak
is ``N*d`` (the activations) plus ``block_rows*N`` (the block), never ``N*N``.

Resampling (claims' intervals): ``weights [N, B]`` counts how often resample b takes sample i.
The stage draws half-samples without replacement (:func:`advfeatures.stats.half_sample_weights`,
0/1 weights, one seed for every job, so two jobs on the same N samples give paired replicates):
a multinomial bootstrap duplicates samples, and a KDE reads a duplicate as a second point at
distance 0, which biases I(X;T) down and distorts its spread; a half-sample's estimate has the
spread of the full-sample one (finite-population factor 1/2), and the claims centre the
interval on the estimate, which removes the shift of the smaller sample.  KDE:
``I_b = ln W_b - sum_i W_ib ln(sum_j W_jb exp(s_ij)) / W_b`` with ``W_b = sum_i W_ib``, the
estimate on the resampled set, from the same distance blocks (one ``[rows, N] @ [N, B]`` product
per block and variance; no activation is recomputed).  Binning: ``H(T)`` of the resampled
pattern counts.  Only I(X;T) is resampled.

Binning (Shwartz-Ziv & Tishby; bins follow the activation range): bin index ``floor(t / w)``
on raw activations, each sample's row of bin indices is one discrete pattern; for a
deterministic network I(X;T) = H(T) and I(T;Y) = H(T) - sum_c p(c) H(T | Y=c).  Patterns are
counted exactly by refining integer group ids over column chunks (``torch.unique`` over rows of
``[group id, chunk]``), so memory stays bounded for wide layers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from advfeatures.attacks.evaluate import pgd_batches
from advfeatures.attacks.pgd import PGDSettings
from advfeatures.data import eval_subset
from advfeatures.stats import encode_replicates, half_sample_weights
from advfeatures.utils import AdvFeaturesError, atomic_write, derive_seed, eval_mode, make_generator

LN2 = math.log(2.0)
ESTIMATORS = ("kde_upper", "kde_lower", "binning")


# ----------------------------------------------------------------------------- KDE


def _flat(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if t.dim() < 1 or t.shape[0] < 1:
        raise AdvFeaturesError(f"activations must be [N, ...] with N >= 1, got shape {tuple(t.shape)}")
    return t.reshape(t.shape[0], -1).to(dtype)


def _check_labels(y: torch.Tensor, n: int) -> torch.Tensor:
    y = torch.as_tensor(y).reshape(-1).long()
    if y.numel() != n:
        raise AdvFeaturesError(f"labels have {y.numel()} entries but activations have {n} rows")
    return y


def auto_block_rows(n: int, max_block_mib: float = 256.0) -> int:
    """Rows per distance block: about 6 float64 [rows, N] temporaries within ``max_block_mib``."""
    per_row = 6 * 8 * max(n, 1)
    return int(max(1, min(n, (max_block_mib * 2**20) // per_row)))


def kde_mi(
    t: torch.Tensor,
    y: torch.Tensor,
    noise_var: float = 0.1,
    *,
    block_rows: int | None = None,
    max_block_mib: float = 256.0,
    dtype: torch.dtype = torch.float64,
    weights=None,
    boot: dict | None = None,
) -> dict[str, tuple[float, float]]:
    """KDE upper and lower bounds of (I(X;T), I(T;Y)) in bits, computed in row blocks.

    Returns ``{"kde_upper": (I_XT, I_TY), "kde_lower": (I_XT, I_TY)}``.  Runs on ``t``'s device.
    With bootstrap ``weights [N, B]``, ``boot[name]`` receives the B resampled I(X;T) (bits).
    """
    if not noise_var > 0:
        raise AdvFeaturesError(f"KDE noise variance must be > 0 (mutual_info.kde.noise_var), got {noise_var}")
    if t.dim() < 1 or t.shape[0] < 1:
        raise AdvFeaturesError(f"activations must be [N, ...] with N >= 1, got shape {tuple(t.shape)}")
    n = t.shape[0]
    y = _check_labels(y, n).to(t.device)
    # distances are translation invariant: centring reduces the cancellation in
    # ||a||^2 + ||b||^2 - 2ab; one copy of the activations in ``dtype``, no more
    x = t.reshape(n, -1).to(dtype, copy=True)
    x -= x.mean(0, keepdim=True)
    sq = (x * x).sum(1)
    rows = block_rows or auto_block_rows(n, max_block_mib)
    variances = (noise_var, 4.0 * noise_var)
    lse_all = torch.empty(2, n, dtype=dtype, device=x.device)
    lse_cls = torch.empty(2, n, dtype=dtype, device=x.device)
    w = None
    if weights is not None and weights.shape[1] > 0:
        w = torch.as_tensor(weights, dtype=dtype, device=x.device)
        if w.shape[0] != n:
            raise AdvFeaturesError(f"bootstrap weights have {w.shape[0]} rows but activations have {n}")
        lse_boot = torch.empty(2, n, w.shape[1], dtype=dtype, device=x.device)
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        d2 = torch.addmm(sq[start:stop, None] + sq[None, :], x[start:stop], x.T, alpha=-2.0)
        d2.clamp_(min=0.0)
        other = y[start:stop, None] != y[None, :]
        for k, v in enumerate(variances):
            s = d2 * (-0.5 / v)
            lse_all[k, start:stop] = torch.logsumexp(s, dim=1)
            if w is not None:  # s <= 0 and s_ii = 0: exp(s) in (0, 1], the sum >= 1 whenever W_ib > 0
                lse_boot[k, start:stop] = torch.log((torch.exp(s) @ w).clamp_min(1e-300))
            lse_cls[k, start:stop] = torch.logsumexp(s.masked_fill_(other, -math.inf), dim=1)
    _, counts = torch.unique(y, return_counts=True)
    p = counts.to(dtype) / n
    h_y_part = float(math.log(n) - (p * counts.to(dtype).log()).sum())  # ln N - sum_c p_c ln N_c
    out = {}
    for k, name in enumerate(("kde_upper", "kde_lower")):
        i_xt = math.log(n) - float(lse_all[k].mean())
        i_ty = h_y_part - float((lse_all[k] - lse_cls[k]).mean())
        out[name] = (i_xt / LN2, i_ty / LN2)
        if w is not None and boot is not None:
            total = w.sum(0).clamp_min(1.0)
            boot[name] = ((torch.log(total) - (w * lse_boot[k]).sum(0) / total) / LN2).cpu().numpy()
    return out


def _entropy_kl_reference(x: torch.Tensor, var: float) -> torch.Tensor:
    """Kolchinsky's ``entropy_estimator_kl`` (nats): full distance matrix, no blocks."""
    n, d = x.shape
    sq = (x * x).sum(1, keepdim=True)
    dists = (sq + sq.T - 2.0 * x @ x.T).clamp_min(0.0)
    normconst = (d / 2.0) * math.log(2 * math.pi * var)
    lprobs = torch.logsumexp(-dists / (2 * var), dim=1) - math.log(n) - normconst
    return d / 2.0 - lprobs.mean()


def kde_mi_reference(
    t: torch.Tensor, y: torch.Tensor, noise_var: float = 0.1
) -> dict[str, tuple[float, float]]:
    """The plain estimator as published (full N x N matrices, one per entropy term), in bits."""
    x = _flat(t, torch.float64)
    n, d = x.shape
    y = _check_labels(y, n).to(x.device)
    h_cond = (d / 2.0) * (math.log(2 * math.pi * noise_var) + 1)
    bounds = {
        "kde_upper": lambda a: _entropy_kl_reference(a, noise_var),
        "kde_lower": lambda a: _entropy_kl_reference(a, 4 * noise_var) + math.log(0.25) * d / 2,
    }
    out = {}
    for name, h in bounds.items():
        h_t = h(x)
        h_t_y = sum((y == c).double().mean() * h(x[y == c]) for c in torch.unique(y))
        out[name] = (float(h_t - h_cond) / LN2, float(h_t - h_t_y) / LN2)
    return out


# ----------------------------------------------------------------------------- binning


def _entropy_bits(ids: torch.Tensor) -> float:
    _, counts = torch.unique(ids, return_counts=True)
    p = counts.double() / ids.numel()
    return float(-(p * p.log2()).sum())


def bin_patterns(t: torch.Tensor, bin_width: float = 0.5, *, max_chunk_mib: float = 256.0) -> torch.Tensor:
    """One integer id per sample: equal ids <=> equal rows of ``floor(t / bin_width)``."""
    if not bin_width > 0:
        raise AdvFeaturesError(f"bin width must be > 0 (mutual_info.binning.bin_width), got {bin_width}")
    x = t.reshape(t.shape[0], -1)
    n, d = x.shape
    cols = int(max(1, min(d, (max_chunk_mib * 2**20) // (3 * 8 * max(n, 1)))))
    ids = torch.zeros(n, dtype=torch.int64, device=x.device)
    for start in range(0, d, cols):
        b = torch.floor(x[:, start : start + cols].double() / bin_width).to(torch.int64)
        _, ids = torch.unique(torch.cat([ids[:, None], b], dim=1), dim=0, return_inverse=True)
    return ids


def binning_mi(t: torch.Tensor, y: torch.Tensor, bin_width: float = 0.5, *, weights=None,
               boot: dict | None = None) -> tuple[float, float]:
    """(I(X;T), I(T;Y)) in bits by binning raw activations with width ``bin_width``; with
    bootstrap ``weights [N, B]``, ``boot["binning"]`` receives the B resampled I(X;T) = H(T)."""
    ids = bin_patterns(t, bin_width)
    if weights is not None and weights.shape[1] > 0 and boot is not None:
        w = torch.as_tensor(weights, dtype=torch.float64, device=ids.device)
        counts = torch.zeros(int(ids.max()) + 1, w.shape[1], dtype=torch.float64, device=ids.device)
        counts.index_add_(0, ids, w)
        p = counts / w.sum(0, keepdim=True)
        boot["binning"] = (-(p * torch.log2(p.clamp_min(1e-300))).sum(0)).cpu().numpy() + 0.0
    y = _check_labels(y, ids.numel()).to(ids.device)
    h_t = _entropy_bits(ids)
    h_t_y = 0.0
    for c in torch.unique(y):
        m = y == c
        h_t_y += float(m.double().mean()) * _entropy_bits(ids[m])
    return h_t + 0.0, h_t - h_t_y + 0.0  # + 0.0: no -0.0 in the tables


def binning_mi_reference(t: torch.Tensor, y: torch.Tensor, bin_width: float = 0.5) -> tuple[float, float]:
    """Plain binning: patterns as Python tuples, probabilities by counting (small inputs only)."""
    from collections import Counter

    rows = [tuple(r) for r in torch.floor(t.reshape(t.shape[0], -1).double() / bin_width).long().tolist()]
    labels = torch.as_tensor(y).reshape(-1).tolist()

    def h(items):
        c = Counter(items)
        tot = sum(c.values())
        return -sum(v / tot * math.log2(v / tot) for v in c.values())

    n = len(rows)
    h_t = h(rows)
    h_t_y = sum(
        labels.count(c) / n * h([r for r, lab in zip(rows, labels) if lab == c]) for c in set(labels)
    )
    return h_t, h_t - h_t_y


# ----------------------------------------------------------------------------- on a model


@dataclass
class MIConfig:
    """The ``mutual_info`` estimator settings (config keys ``kde``, ``binning``, ``estimators``)."""

    estimators: list = field(default_factory=lambda: ["kde", "binning"])
    noise_var: float = 0.1
    bin_width: float = 0.5
    max_block_mib: float = 256.0
    batch_size: int = 500
    bootstrap: int = 0

    @classmethod
    def from_params(cls, p: Mapping) -> MIConfig:
        unknown = set(p["estimators"]) - {"kde", "binning"}
        if unknown:
            raise AdvFeaturesError(f"unknown estimator(s) {sorted(unknown)} (mutual_info.estimators); use kde, binning")
        return cls(
            estimators=list(p["estimators"]),
            noise_var=float(p["kde"]["noise_var"]),
            bin_width=float(p["binning"]["bin_width"]),
            max_block_mib=float(p.get("max_block_mib", 256)),
            batch_size=int(p.get("batch_size", 500)),
            bootstrap=int(p.get("bootstrap", 0) or 0),
        )


def estimate(t: torch.Tensor, y: torch.Tensor, cfg: MIConfig, *, weights=None,
             boot: dict | None = None) -> dict[str, tuple[float, float]]:
    """All configured estimators on one layer: ``{estimator: (I_XT, I_TY)}`` (bootstrap
    replicates of I(X;T) into ``boot[estimator]`` when ``weights`` are given)."""
    out: dict[str, tuple[float, float]] = {}
    if "kde" in cfg.estimators:
        out.update(kde_mi(t, y, cfg.noise_var, max_block_mib=cfg.max_block_mib, weights=weights, boot=boot))
    if "binning" in cfg.estimators:
        out["binning"] = binning_mi(t, y, cfg.bin_width, weights=weights, boot=boot)
    return out


@torch.no_grad()
def probe_layer(model, x: torch.Tensor, layer: str, batch_size: int = 500) -> torch.Tensor:
    """Flattened activations of probe ``layer`` for ``x`` (model in eval mode), on x's device."""
    if layer not in model.probe_names:
        raise AdvFeaturesError(f"unknown probe layer {layer!r}; the model has {list(model.probe_names)}")
    with eval_mode(model):
        return torch.cat([model.probes(x[s : s + batch_size])[layer].flatten(1) for s in range(0, len(x), batch_size)])


@torch.no_grad()
def accuracy_loss(model, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> tuple[float, float]:
    """Accuracy and mean cross-entropy of ``model`` (eval mode) on ``(x, y)``."""
    with eval_mode(model):
        logits = torch.cat([model(x[s : s + batch_size]) for s in range(0, len(x), batch_size)])
    return float((logits.argmax(1) == y).float().mean()), float(F.cross_entropy(logits, y))


def layer_mi_rows(
    model,
    inputs: Mapping[str, torch.Tensor],
    y: torch.Tensor,
    cfg: MIConfig,
    *,
    layers: Iterable[str] | None = None,
    extra: Mapping[str, object] | None = None,
    progress: Callable[[str], None] | None = None,
    weights=None,
) -> list[dict]:
    """Tidy rows (``extra``..., input, n, layer, estimator, accuracy, loss, I_XT, I_TY) for every
    input kind in ``inputs`` and every probe layer; one layer's activations in memory at a time.
    With bootstrap ``weights [N, B]`` each row adds ``I_XT_boot``: the B replicates, one cell."""
    rows = []
    layers = list(layers or model.probe_names)
    for kind, x in inputs.items():
        acc, loss = accuracy_loss(model, x, y, cfg.batch_size)
        for layer in layers:
            t = probe_layer(model, x, layer, cfg.batch_size)
            boot: dict = {}
            for est, (i_xt, i_ty) in estimate(t, y, cfg, weights=weights, boot=boot).items():
                rows.append(
                    {**(extra or {}), "input": kind, "n": len(y), "layer": layer, "estimator": est,
                     "accuracy": acc, "loss": loss, "I_XT": i_xt, "I_TY": i_ty}
                )
                if weights is not None:
                    rows[-1]["I_XT_boot"] = encode_replicates(boot.get(est, ()))
            del t
            if progress:
                progress(f"{kind}/{layer}")
    return rows


# ----------------------------------------------------------------------------- stage entry points


def mi_inputs(model, data, p: Mapping, *, seed: int, tags: tuple, device) -> tuple[torch.Tensor, ...]:
    """The seeded test subset ``(x, x_adv, y)`` on ``device``: PGD per ``p["attack"]`` against
    ``model`` (eval mode, frozen; random start drawn from a generator seeded by ``seed``/``tags``)."""
    idx = eval_subset(data.y_test, p["n_samples"], derive_seed(seed, "mutual_info", "subset"))
    x, y = data.x_test[idx].to(device), data.y_test[idx].to(device)
    a = p["attack"]
    settings = PGDSettings(norm=a["norm"], eps=a["eps"], alpha=a["alpha"], steps=a["steps"],
                           random_start=a.get("random_start", True))
    g = make_generator(derive_seed(seed, "mutual_info", "pgd", *tags), device)
    x_adv = pgd_batches(model, x, y, settings, g, int(p.get("batch_size", 500)))
    return x, x_adv, y


def epoch_mi(model, data, p: Mapping, *, seed: int, method: str, epoch: int, device="cpu",
             progress: Callable[[str], None] | None = None) -> list[dict]:
    """Rows of one ``estimate_mi`` job: clean and PGD inputs, every probe layer and estimator."""
    cfg = MIConfig.from_params(p)
    x, x_adv, y = mi_inputs(model, data, p, seed=seed, tags=(method, epoch), device=device)
    # one seed for every job: the same resamples of the same N samples -> paired replicates
    weights = (half_sample_weights(len(y), cfg.bootstrap, derive_seed(seed, "mutual_info", "bootstrap"))
               if cfg.bootstrap else None)
    return layer_mi_rows(
        model, {"clean": x, "adversarial": x_adv}, y, cfg,
        extra={"method": method, "epoch": int(epoch)}, progress=progress, weights=weights,
    )


# ----------------------------------------------------------------------------- tidy CSVs


def write_rows(rows: list[dict], path) -> None:
    """Write tidy rows as CSV atomically (columns in the order of the first row)."""
    import pandas as pd

    if not rows:
        raise AdvFeaturesError(f"{path}: no MI rows to write; check mutual_info.estimators and the probe layers")
    with atomic_write(path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False, float_format="%.6f")


def merge_csvs(paths: list, out) -> int:
    """Concatenate per-job CSVs (same columns) into ``out``; returns the number of rows."""
    import pandas as pd

    frames = []
    for p in paths:
        try:
            frames.append(pd.read_csv(p))
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise AdvFeaturesError(f"{p}: unreadable MI table ({exc.__class__.__name__}); delete it and rerun") from None
    df = pd.concat(frames, ignore_index=True)
    write_rows(df.to_dict("records"), out)
    return len(df)
