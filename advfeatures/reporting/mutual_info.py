"""Figures, tables and claims of the mutual-information study (Zhang et al.).

Inputs are the merged tidy CSVs of the stage:

- ``mutual_info.csv``: method, epoch, input (clean | adversarial), n (samples), layer, estimator
  (kde_upper | kde_lower | binning), accuracy, loss, I_XT, I_TY (bits);
- ``mutual_info_distortions.csv``: method, distortion (saturation | shuffle), level, input, n,
  layer, estimator, accuracy, loss, I_XT, I_TY.

The paper reports its findings only as figures (no numbers), so the tables carry no
``published`` column; the claims encode its qualitative findings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from advfeatures import stats
from advfeatures.reporting import (
    Claim,
    matplotlib_headless,
    save_figure,
    untestable,
    verdicts,
    write_claims,
    write_table,
)

STUDY = "mutual_info"
INPUTS = ("clean", "adversarial")
MARKERS = {"kde_upper": "o", "kde_lower": "^", "binning": "s"}
#: a series of fewer bits of spread than this over the epochs has no trend to correlate
FLAT_BITS = 0.01


def _layers(df: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(df["layer"]))  # first-seen order = probe order


def _identity(kind: str, level: float) -> bool:
    return (kind == "saturation" and level == 2) or (kind == "shuffle" and level <= 1)


# ----------------------------------------------------------------------------- tables


def final_table(df: pd.DataFrame) -> pd.DataFrame:
    """MI of every layer at each method's last saved epoch."""
    last = df.groupby("method")["epoch"].transform("max")
    t = df[df["epoch"] == last]
    cols = ["method", "epoch", "input", "layer", "estimator", "I_XT", "I_TY", "n", "accuracy"]
    t = t[cols].sort_values(["method", "input", "estimator"], kind="stable").reset_index(drop=True)
    return verdicts.add_wilson(t, ["accuracy"], "n", scale=1.0)


def distortion_table(dd: pd.DataFrame) -> pd.DataFrame:
    """Accuracy and loss per method, input, distortion and level (one row per level)."""
    t = dd.drop_duplicates(["method", "distortion", "level", "input"])
    t = t[["method", "input", "distortion", "level", "n", "accuracy", "loss"]].reset_index(drop=True)
    return verdicts.add_wilson(t, ["accuracy"], "n", scale=1.0)


# ----------------------------------------------------------------------------- claims


def trend_correlations(df: pd.DataFrame, method: str, *, n: int | None = None,
                       cfg: verdicts.ClaimSettings | None = None) -> pd.DataFrame:
    """Per layer, estimator and quantity: Pearson r across epochs between the clean and the
    adversarial series and their mean |clean - adversarial| (bits).  ``usable`` marks the series
    that change (spread at least FLAT_BITS on both inputs) and, for I(X;T) when ``n`` and ``cfg``
    are given, stay away from the ceiling log2 ``n`` and from 0 (:func:`verdicts.mi_precondition`);
    r is NaN on the others."""
    out = []
    m = df[df["method"] == method]
    for (layer, est), g in m.groupby(["layer", "estimator"], sort=False):
        w = g.pivot_table(index="epoch", columns="input", values=["I_XT", "I_TY"])
        for q in ("I_XT", "I_TY"):
            if (q, "clean") not in w or (q, "adversarial") not in w or len(w) < 3:
                continue
            a, b = w[(q, "clean")].to_numpy(), w[(q, "adversarial")].to_numpy()
            flat = np.ptp(a) < FLAT_BITS or np.ptp(b) < FLAT_BITS
            saturated = bool(q == "I_XT" and n and cfg is not None
                             and verdicts.mi_precondition("", np.concatenate([a, b]), n, cfg))
            usable = not flat and not saturated
            r = float(np.corrcoef(a, b)[0, 1]) if usable else float("nan")
            out.append({"layer": layer, "estimator": est, "quantity": q, "r": r,
                        "mean_abs_diff": float(np.abs(a - b).mean()), "flat": flat, "saturated": saturated,
                        "usable": usable})
    return pd.DataFrame(out, columns=["layer", "estimator", "quantity", "r", "mean_abs_diff", "flat", "saturated",
                                      "usable"])


def _level_accuracy(dd: pd.DataFrame, method: str, kind: str, inp: str = "clean") -> pd.DataFrame:
    """One row per level of ``kind`` (accuracy as a fraction, n, identity flag)."""
    g = dd[(dd["method"] == method) & (dd["distortion"] == kind) & (dd["input"] == inp)].drop_duplicates("level")
    g = g[["level", "accuracy", "n"]].copy()
    g["identity"] = [_identity(kind, lv) for lv in g["level"]]
    return g


def _accuracy_drop(dd: pd.DataFrame, method: str, kind: str, inp: str) -> float:
    g = _level_accuracy(dd, method, kind, inp)
    ident, rest = g[g["identity"]], g[~g["identity"]]
    if ident.empty or rest.empty:
        return float("nan")
    return float(ident["accuracy"].iloc[0] - rest["accuracy"].mean())


def distortion_contrast(dd: pd.DataFrame, nt: str, at: str, alpha: float) -> dict:
    """Zhang et al.'s distortion finding as one contrast between a normally (``nt``) and an
    adversarially trained (``at``) model on the same clean test images (fractions):

        D = [shuffle drop - saturation drop]_at - [shuffle drop - saturation drop]_nt
          = (mean sat. accuracy - mean shuffle accuracy)_at - (the same)_nt

    over the non-identity levels (the identity cancels).  The distortion CSVs hold accuracies,
    not per-image outcomes, so the standard error is a conservative bound: every level and both
    models reuse the same images, and each correlation is put at its worst case (the SE of a mean
    of levels is at most the mean of their binomial SEs; the SE of a difference at most their
    sum).  z test of D = 0 and a z interval with that SE (scipy)."""
    from scipy.stats import norm

    parts = {}
    for m in (nt, at):
        for k in ("saturation", "shuffle"):
            g = _level_accuracy(dd, m, k)
            g = g[~g["identity"]]
            if g.empty:
                return {"diff": math.nan, "se": math.nan, "ci_low": math.nan, "ci_high": math.nan,
                        "p_value": math.nan, "n": 0}
            acc, n = g["accuracy"].to_numpy(float), g["n"].to_numpy(float)
            parts[(m, k)] = (float(acc.mean()), float(np.mean(np.sqrt(acc * (1 - acc) / n))), int(n.min()))
    d = ((parts[(at, "saturation")][0] - parts[(at, "shuffle")][0])
         - (parts[(nt, "saturation")][0] - parts[(nt, "shuffle")][0]))
    se = sum(v[1] for v in parts.values())
    n = min(v[2] for v in parts.values())
    if se == 0:
        return {"diff": d, "se": 0.0, "ci_low": d, "ci_high": d, "p_value": 1.0 if d == 0 else 0.0, "n": n}
    q = float(norm.ppf(1 - alpha / 2))
    return {"diff": d, "se": se, "ci_low": d - q * se, "ci_high": d + q * se,
            "p_value": float(2 * norm.sf(abs(d) / se)), "n": n}


def _boot(g: pd.DataFrame) -> np.ndarray | None:
    """[layers, B] bootstrap replicates of I(X;T) of the rows ``g`` (None when absent)."""
    if "I_XT_boot" not in g:
        return None
    reps = [stats.decode_replicates(c) for c in g["I_XT_boot"]]
    if not reps or any(r.size == 0 for r in reps) or len({r.size for r in reps}) != 1:
        return None
    return np.vstack(reps)


def mi_claims(df: pd.DataFrame, dd: pd.DataFrame, methods: Sequence[str], *, num_classes: int | None = None,
              cfg: verdicts.ClaimSettings | None = None, binary_share: float | None = None) -> list[Claim]:
    """Zhang et al.'s qualitative findings as claims with statistics and preconditions.

    - "coincide" (equivalence): mean |clean - adversarial| (bits) over the series that change over
      the epochs and are not saturated (:func:`trend_correlations`), at most ``coincide_max_offset``:
      t interval over those series and the t test against the bound (scipy); the mean Pearson r is
      reported in the note only.  Not testable when no series changes unsaturated;
    - "ends with less I(X;T)": standard minus adversarial at the last epoch, mean over layers, with
      a paired half-sampling interval over the N samples (``I_XT_boot`` of estimate_mi, centred on
      the estimate) and its bootstrap p-value (:func:`advfeatures.stats.bootstrap_p`);
    - "advances more slowly": the slope of I(X;T) (mean over layers) against ln(1 + epoch),
      standard minus adversarial, Welch t interval (OLS, scipy);
    - distortions: one contrast per adversarially trained model against the standard one
      (:func:`distortion_contrast`), not testable on near-binary images (``binary_share``: the
      share of test pixels at exactly 0 or 1, where saturation is nearly the identity).

    Not testable: a model at chance (clean accuracy at its last epoch), I(X;T) of the compared
    layers within ``mi_margin`` of log2 N or 0.
    """
    from scipy.stats import t as student
    from scipy.stats import ttest_1samp

    cfg = cfg or verdicts.settings()
    a = cfg.alpha
    out: list[Claim] = []
    n_mi = int(df["n"].max()) if "n" in df and len(df) else 0
    last_epoch = df.groupby("method")["epoch"].transform("max")
    last = df[df["epoch"] == last_epoch]

    def model_pre(method: str) -> str:
        g = last[(last["method"] == method) & (last["input"] == "clean")]
        if g.empty:
            return f"no MI rows for {method}"
        acc = 100 * float(g["accuracy"].iloc[0])
        if num_classes is None:
            return "" if math.isfinite(acc) else f"model {method} has a non-finite clean accuracy"
        return verdicts.model_precondition(method, acc, num_classes, cfg)

    for method in methods:
        tc = trend_correlations(df, method, n=n_mi, cfg=cfg)
        used = tc[tc["usable"]] if len(tc) else tc
        off = used["mean_abs_diff"].to_numpy(float)
        lo = hi = p = float("nan")
        if off.size >= 2 and np.ptp(off) > 0:
            half = float(student.ppf(1 - a / 2, off.size - 1) * off.std(ddof=1) / math.sqrt(off.size))
            lo, hi = float(off.mean()) - half, float(off.mean()) + half
            p = float(ttest_1samp(off, cfg.coincide_max_offset).pvalue)
        elif off.size >= 2:  # every series has the same offset: no spread, the mean is exact
            lo = hi = float(off[0])
            p = 1.0 if lo == cfg.coincide_max_offset else 0.0
        r_mean = float(used["r"].mean()) if len(used) else float("nan")
        pre = untestable(model_pre(method), "" if len(used) >= 2 else (
            f"fewer than 2 MI series change over the epochs unsaturated ({int(tc['flat'].sum()) if len(tc) else 0} "
            f"flat, {int(tc['saturated'].sum()) if len(tc) else 0} saturated of {len(tc)})"))
        out.append(Claim(
            STUDY, f"{method}: MI trends on clean and adversarial inputs nearly coincide (mean |clean - adversarial| "
            f"over the series that change unsaturated, at most {cfg.coincide_max_offset:g} bits)",
            float(off.mean()) if off.size else float("nan"), "<=", cfg.coincide_max_offset,
            f"{len(used)} of {len(tc)} series usable ({int(tc['flat'].sum()) if len(tc) else 0} flat, "
            f"{int(tc['saturated'].sum()) if len(tc) else 0} saturated I(X;T)); mean Pearson r of the usable "
            f"series {r_mean:.3f}" + (f", min r {used['r'].min():.2f}" if len(used) else ""),
            ci_low=lo, ci_high=hi, p_value=p, n=int(off.size), key="mutual_info.coincide",
            test="t interval over the usable series, t test against the bound (scipy)", alpha=a, untestable=pre,
        ))
    std = "standard" if "standard" in methods else None
    clean = last[last["input"] == "clean"]
    all_clean = df[df["input"] == "clean"]
    for adv in [m for m in methods if m != "standard"]:
        if std is None:
            break
        mpre = untestable(model_pre(std), model_pre(adv))
        for est in dict.fromkeys(clean["estimator"]):
            ga = clean[(clean["method"] == std) & (clean["estimator"] == est)].set_index("layer")
            gb = clean[(clean["method"] == adv) & (clean["estimator"] == est)].set_index("layer")
            layers = [ly for ly in ga.index if ly in gb.index]
            ga, gb = ga.loc[layers], gb.loc[layers]
            diff = ga["I_XT"] - gb["I_XT"]
            point = float(diff.mean()) if len(diff) else float("nan")
            ba, bb = _boot(ga), _boot(gb)
            lo = hi = p = float("nan")
            nboot = 0
            if ba is not None and bb is not None and ba.shape == bb.shape:
                reps = (ba - bb).mean(0)
                nboot = reps.size
                lo, hi = stats.centred_ci(point, reps, a)
                p = stats.bootstrap_p(point, reps, 0.0)
            pre = untestable(mpre, verdicts.mi_precondition(f"{std}/{adv} ({est}, last epoch)",
                                                            list(ga["I_XT"]) + list(gb["I_XT"]), n_mi, cfg))
            out.append(Claim(
                STUDY, f"{adv} ends with less I(X;T) than standard ({est}, clean inputs, "
                "mean over layers of standard minus adversarial, bits)",
                point, ">", 0.0,
                "per layer: " + ", ".join(f"{k} {v:+.3f}" for k, v in diff.items())
                + (f"; paired resampling over the N = {n_mi} samples, {nboot} resamples" if nboot
                   else "; no resampling replicates (mutual_info.bootstrap = 0)"),
                min_effect=cfg.min_effect(STUDY, "less_ixt"), ci_low=lo, ci_high=hi, p_value=p, n=n_mi,
                key="mutual_info.less_ixt",
                test="paired resampling over samples (percentile interval centred on the estimate; bootstrap p)"
                if nboot else "", alpha=a, untestable=pre,
            ))
        for est in dict.fromkeys(all_clean["estimator"]):
            g = all_clean[all_clean["estimator"] == est]
            sa = g[g["method"] == std].groupby("epoch")["I_XT"].mean()
            sb = g[g["method"] == adv].groupby("epoch")["I_XT"].mean()
            t = stats.slope_difference(np.log1p(sa.index.to_numpy(float)), sa.to_numpy(),
                                       np.log1p(sb.index.to_numpy(float)), sb.to_numpy(), a)
            fin = g[(g["epoch"] == g.groupby("method")["epoch"].transform("max")) & g["method"].isin([std, adv])]
            pre = untestable(mpre, verdicts.mi_precondition(f"{std}/{adv} ({est}, last epoch)", fin["I_XT"], n_mi, cfg),
                             "" if min(len(sa), len(sb)) >= 3 else "fewer than 3 saved epochs per model")
            out.append(Claim(
                STUDY, f"{adv}: I(X;T) advances more slowly than under standard training ({est}, clean inputs, "
                "slope of the layer-mean I(X;T) against ln(1 + epoch), standard minus adversarial, bits)",
                t["diff"], ">", 0.0,
                f"slopes: standard {t['slope_1']:+.3f}, {adv} {t['slope_2']:+.3f} bits per unit ln(1 + epoch); "
                f"Welch dof {t['dof']:.1f}",
                min_effect=cfg.min_effect(STUDY, "slower_ixt"), ci_low=t["ci_low"], ci_high=t["ci_high"],
                p_value=t["p_value"], n=min(len(sa), len(sb)), key="mutual_info.slower_ixt",
                test="difference of OLS slopes, Welch t test (scipy)", alpha=a, untestable=pre,
            ))
        t = distortion_contrast(dd, std, adv, a)
        drops = {(m, k): _accuracy_drop(dd, m, k, "clean") for m in (std, adv) for k in ("saturation", "shuffle")}
        data_pre = verdicts.binary_precondition(binary_share, cfg)
        out.append(Claim(
            STUDY, f"{adv} loses more accuracy to patch shuffling (relative to saturation) than standard "
            "(clean inputs; [shuffle drop - saturation drop], adversarial minus standard, points)",
            100 * t["diff"], ">", 0.0,
            "mean drops over non-identity levels: {std} saturation {s1:.1f} shuffle {h1:.1f}; {adv} saturation "
            "{s2:.1f} shuffle {h2:.1f} points; conservative SE (same images in every level and model)".format(
                std=std, adv=adv, s1=100 * drops[(std, "saturation")], h1=100 * drops[(std, "shuffle")],
                s2=100 * drops[(adv, "saturation")], h2=100 * drops[(adv, "shuffle")]),
            min_effect=cfg.min_effect(STUDY, "distortion"), ci_low=100 * t["ci_low"], ci_high=100 * t["ci_high"],
            p_value=t["p_value"], n=t["n"], key="mutual_info.distortion",
            test="z test with a worst-case-correlation SE (scipy)", alpha=a,
            untestable=untestable(mpre, data_pre),
        ))
    return out


# ----------------------------------------------------------------------------- figures


def saturated_layers(df: pd.DataFrame, margin: float = 0.1, estimator: str | None = None) -> dict[str, list[str]]:
    """Per method, the layers whose I(X;T) at the last epoch (clean inputs) is within ``margin``
    bits of its ceiling log2 N (every sample its own cluster, no trend left): for ``estimator``,
    or for every estimator when None."""
    out: dict[str, list[str]] = {}
    if df.empty:
        return out
    ceiling = math.log2(max(int(df["n"].max()), 1))
    last = df[df["epoch"] == df.groupby("method")["epoch"].transform("max")]
    last = last[last["input"] == "clean"]
    if estimator is not None:
        last = last[last["estimator"] == estimator]
    for method, g in last.groupby("method", sort=False):
        low = g.groupby("layer", sort=False)["I_XT"].min()
        out[str(method)] = [str(ly) for ly, v in low.items() if v >= ceiling - margin]
    return out


def plot_information_plane(df: pd.DataFrame, path, methods: Sequence[str], num_classes: int | None = None) -> dict:
    """Rows: (method, input); columns: probe layers; I(X;T) against I(T;Y), coloured by epoch,
    one marker per estimator, each estimator's epochs joined in order.  All panels share one
    scale from 0 to the ceilings, drawn dotted: log2 N (I(X;T)) and log2 K (I(T;Y)); saturated
    layers (every estimator at log2 N at the last epoch) say so.  Returns what was drawn."""
    matplotlib_headless()
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    layers = _layers(df)
    rows = [(m, i) for m in methods for i in INPUTS]
    epochs = sorted(df["epoch"].unique())
    norm = plt.Normalize(min(epochs), max(epochs))
    cmap = plt.get_cmap("viridis")
    fig, axes = plt.subplots(len(rows), len(layers), figsize=(3.0 * len(layers), 2.6 * len(rows)), squeeze=False,
                             sharex=True, sharey=True)
    ceiling = math.log2(max(int(df["n"].max()), 1)) if len(df) else math.nan
    # one scale for every panel, from 0 to the ceilings: a pinned series shows as pinned
    tops = [float(df["I_TY"].max())] if len(df) else [1.0]
    top_y = max(tops + ([math.log2(num_classes)] if num_classes else []))
    axes[0, 0].set_xlim(-0.03 * ceiling, 1.05 * ceiling)
    axes[0, 0].set_ylim(-0.03 * top_y, 1.08 * top_y)
    sat = saturated_layers(df)
    for r, (method, inp) in enumerate(rows):
        for c, layer in enumerate(layers):
            ax = axes[r, c]
            ax.axvline(ceiling, color="0.4", ls=":", lw=1)
            if num_classes:
                ax.axhline(math.log2(num_classes), color="0.4", ls=":", lw=1)
            ax.xaxis.set_major_locator(plt.MaxNLocator(4))
            ax.yaxis.set_major_locator(plt.MaxNLocator(4))
            g = df[(df["method"] == method) & (df["input"] == inp) & (df["layer"] == layer)]
            for est, ge in g.groupby("estimator", sort=False):
                ge = ge.sort_values("epoch")
                ax.plot(ge["I_XT"], ge["I_TY"], color="0.7", lw=0.8, zorder=1)
                ax.scatter(ge["I_XT"], ge["I_TY"], c=cmap(norm(ge["epoch"])), marker=MARKERS.get(est, "o"),
                           s=22, zorder=2, edgecolors="none")
            ax.ticklabel_format(useOffset=False, style="plain")
            if layer in sat.get(method, []):
                ax.text(0.04, 0.5, "saturated:\nI(X;T) = log2 N", transform=ax.transAxes, fontsize=7,
                        va="center", color="C3")
            if r == 0:
                ax.set_title(layer)
            if c == 0:
                ax.set_ylabel(f"{method}\n{inp}\nI(T;Y) [bits]")
            if r == len(rows) - 1:
                ax.set_xlabel("I(X;T) [bits]")
    handles = [Line2D([], [], color="0.3", marker=mk, ls="", label=e) for e, mk in MARKERS.items()
               if e in set(df["estimator"])]
    fig.legend(handles=handles, loc="upper right", ncol=len(handles), fontsize=8)
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes, label="epoch", shrink=0.6)
    fig.suptitle("Information planes per probe layer (clean vs adversarial inputs; normal vs adversarial training); "
                 f"dotted: ceilings log2 N = {ceiling:.2f} bits" + (f", log2 K = {math.log2(num_classes):.2f}" if num_classes else ""))
    save_figure(fig, path)
    return {"ceiling": ceiling, "saturated": sat, "layers": layers}


def plot_vs_epoch(df: pd.DataFrame, path, methods: Sequence[str], estimator: str = "kde_upper",
                  num_classes: int | None = None) -> dict:
    """Paper Fig. 4, first row: accuracy, loss, I(X;T) and I(T;Y) against epoch; solid clean,
    dashed adversarial; one colour per layer.  Columns share their y axis across methods, from 0
    to the ceiling (log2 N for I(X;T), log2 K for I(T;Y), dotted), so a series pinned at the
    ceiling shows as such; saturated layers are named in the legend.  Returns what was drawn."""
    matplotlib_headless()
    import matplotlib.pyplot as plt

    if estimator not in set(df["estimator"]):
        estimator = df["estimator"].iloc[0]
    layers = _layers(df)
    colours = plt.get_cmap("tab10")
    fig, axes = plt.subplots(len(methods), 4, figsize=(15, 3.0 * len(methods)), squeeze=False, sharey="col")
    ceiling = math.log2(max(int(df["n"].max()), 1)) if len(df) else math.nan
    sat = saturated_layers(df, estimator=estimator)
    for r, method in enumerate(methods):
        m = df[df["method"] == method]
        for inp, ls in zip(INPUTS, ("-", "--")):
            g = m[(m["input"] == inp)].drop_duplicates("epoch").sort_values("epoch")
            axes[r, 0].plot(g["epoch"], g["accuracy"], ls=ls, color="k", label=inp)
            axes[r, 1].plot(g["epoch"], g["loss"], ls=ls, color="k", label=inp)
            for li, layer in enumerate(layers):
                gl = m[(m["input"] == inp) & (m["layer"] == layer) & (m["estimator"] == estimator)].sort_values("epoch")
                for col, q in ((2, "I_XT"), (3, "I_TY")):
                    tag = " (saturated)" if layer in sat.get(method, []) else ""
                    axes[r, col].plot(gl["epoch"], gl[q], ls=ls, color=colours(li), marker=".",
                                      label=f"{layer}{tag}" if inp == "clean" else None)
        axes[r, 2].axhline(ceiling, color="0.4", ls=":", lw=1)
        axes[r, 2].text(0.01, ceiling, f"log2 N = {ceiling:.2f}", transform=axes[r, 2].get_yaxis_transform(),
                        fontsize=7, va="bottom", color="0.3")
        axes[r, 2].set_ylim(0, ceiling * 1.08)
        if num_classes:
            axes[r, 3].axhline(math.log2(num_classes), color="0.4", ls=":", lw=1)
            axes[r, 3].text(0.01, math.log2(num_classes), f"log2 K = {math.log2(num_classes):.2f}", fontsize=7,
                            transform=axes[r, 3].get_yaxis_transform(), va="bottom", color="0.3")
            axes[r, 3].set_ylim(0, math.log2(num_classes) * 1.1)
        for col, name in enumerate(("accuracy", "loss", f"I(X;T) [bits, {estimator}]", f"I(T;Y) [bits, {estimator}]")):
            axes[r, col].ticklabel_format(useOffset=False, style="plain")
            axes[r, col].set_ylabel(name)
            axes[r, col].set_title(method if col == 0 else "")
            axes[r, col].set_xlabel("epoch")
        axes[r, 0].legend(fontsize=7)
        axes[r, 3].legend(fontsize=7, title="solid clean, dashed adversarial", title_fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    return {"ceiling": ceiling, "saturated": sat, "estimator": estimator}


def plot_distortions(dd: pd.DataFrame, path, methods: Sequence[str], estimator: str = "kde_lower") -> None:
    """Paper Fig. 5: accuracy, loss and MI per distortion level; rows (method, distortion)."""
    matplotlib_headless()
    import matplotlib.pyplot as plt

    if estimator not in set(dd["estimator"]):
        estimator = dd["estimator"].iloc[0]
    layers = _layers(dd)
    colours = plt.get_cmap("tab10")
    rows = [(m, k) for m in methods for k in ("saturation", "shuffle")]
    fig, axes = plt.subplots(len(rows), 4, figsize=(15, 2.8 * len(rows)), squeeze=False)
    for r, (method, kind) in enumerate(rows):
        g = dd[(dd["method"] == method) & (dd["distortion"] == kind)]
        levels = list(dict.fromkeys(g["level"]))
        pos = {lv: i for i, lv in enumerate(levels)}
        for inp, ls, mk in zip(INPUTS, ("-", "--"), ("o", "x")):
            gi = g[g["input"] == inp]
            one = gi.drop_duplicates("level")
            x = [pos[lv] for lv in one["level"]]
            axes[r, 0].plot(x, one["accuracy"], ls=ls, color="k", marker=mk, ms=4, label=inp)
            axes[r, 1].plot(x, one["loss"], ls=ls, color="k", marker=mk, ms=4, label=inp)
            for li, layer in enumerate(layers):
                gl = gi[(gi["layer"] == layer) & (gi["estimator"] == estimator)]
                xl = [pos[lv] for lv in gl["level"]]
                for col, q in ((2, "I_XT"), (3, "I_TY")):
                    axes[r, col].plot(xl, gl[q], ls=ls, color=colours(li), marker=mk, ms=4,
                                      label=layer if inp == "clean" else None)
        for col, name in enumerate(("accuracy", "loss", f"I(X;T) [{estimator}]", f"I(T;Y) [{estimator}]")):
            ax = axes[r, col]
            ax.ticklabel_format(axis="y", useOffset=False, style="plain")
            ax.set_xticks(range(len(levels)), [f"{lv:g}" for lv in levels])
            ax.set_xlabel(f"{kind} level ({'p' if kind == 'saturation' else 'k x k patches'})")
            ax.set_ylabel(name)
        axes[r, 0].set_title(f"{method}: {kind}")
        axes[r, 0].legend(fontsize=7)
        axes[r, 3].legend(fontsize=7, title="solid o clean, dashed x adversarial", title_fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


# ----------------------------------------------------------------------------- entry point


def build_all(epochs_csv, distortions_csv, *, methods: Sequence[str], plane, vs_epoch, distortions_fig,
              claims_out, final: tuple, dist: tuple, num_classes: int | None = None,
              cfg: verdicts.ClaimSettings | None = None, binary_share: float | None = None) -> list[Claim]:
    """Everything ``report_mi`` writes; returns the claims."""
    df = pd.read_csv(epochs_csv)
    dd = pd.read_csv(distortions_csv)
    methods = [m for m in methods if m in set(df["method"])]
    write_table(final_table(df), final[0], final[1], title="Mutual information at the last saved epoch (bits)",
                note="KDE bounds (noise variance from mutual_info.kde) and binning; no published numbers "
                "(the paper reports figures only).", floatfmt=".3f", ci_fmt=".3f")
    write_table(distortion_table(dd), dist[0], dist[1], title="Accuracy and loss under distortions (final models)",
                note="Distortions applied after the attack; saturation p = 2 and shuffle k = 0 are the identity.",
                floatfmt=".3f", ci_fmt=".3f")
    plot_information_plane(df, plane, methods, num_classes=num_classes)
    plot_vs_epoch(df, vs_epoch, methods, num_classes=num_classes)
    plot_distortions(dd, distortions_fig, methods)
    result = mi_claims(df, dd, methods, num_classes=num_classes, cfg=cfg, binary_share=binary_share)
    write_claims(result, claims_out)
    return result


