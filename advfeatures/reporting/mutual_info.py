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


def trend_correlations(df: pd.DataFrame, method: str) -> pd.DataFrame:
    """Pearson r across epochs between the clean and the adversarial series, per layer,
    estimator and quantity; series flatter than FLAT_BITS (on either input) get r = NaN."""
    out = []
    m = df[df["method"] == method]
    for (layer, est), g in m.groupby(["layer", "estimator"], sort=False):
        w = g.pivot_table(index="epoch", columns="input", values=["I_XT", "I_TY"])
        for q in ("I_XT", "I_TY"):
            if (q, "clean") not in w or (q, "adversarial") not in w or len(w) < 3:
                continue
            a, b = w[(q, "clean")].to_numpy(), w[(q, "adversarial")].to_numpy()
            flat = np.ptp(a) < FLAT_BITS or np.ptp(b) < FLAT_BITS
            r = float("nan") if flat else float(np.corrcoef(a, b)[0, 1])
            out.append({"layer": layer, "estimator": est, "quantity": q, "r": r,
                        "mean_abs_diff": float(np.abs(a - b).mean())})
    return pd.DataFrame(out, columns=["layer", "estimator", "quantity", "r", "mean_abs_diff"])


def _pooled_accuracy(dd: pd.DataFrame, method: str, kind: str, inp: str) -> tuple[float, int, int]:
    """Mean accuracy over the non-identity levels of ``kind``: (fraction, successes, trials)."""
    g = dd[(dd["method"] == method) & (dd["distortion"] == kind) & (dd["input"] == inp)].drop_duplicates("level")
    rest = g[[not _identity(kind, lv) for lv in g["level"]]]
    if rest.empty:
        return math.nan, 0, 0
    k = int(round(float((rest["accuracy"] * rest["n"]).sum())))
    n = int(rest["n"].sum())
    return k / n, k, n


def _accuracy_drop(dd: pd.DataFrame, method: str, kind: str, inp: str) -> float:
    g = dd[(dd["method"] == method) & (dd["distortion"] == kind) & (dd["input"] == inp)]
    g = g.drop_duplicates("level")
    ident = g[[_identity(kind, lv) for lv in g["level"]]]
    rest = g[[not _identity(kind, lv) for lv in g["level"]]]
    if ident.empty or rest.empty:
        return float("nan")
    return float(ident["accuracy"].iloc[0] - rest["accuracy"].mean())


def _boot(g: pd.DataFrame) -> np.ndarray | None:
    """[layers, B] bootstrap replicates of I(X;T) of the rows ``g`` (None when absent)."""
    if "I_XT_boot" not in g:
        return None
    reps = [stats.decode_replicates(c) for c in g["I_XT_boot"]]
    if not reps or any(r.size == 0 for r in reps) or len({r.size for r in reps}) != 1:
        return None
    return np.vstack(reps)


def _centred_ci(point: float, replicates: np.ndarray, alpha: float) -> tuple[float, float]:
    """Percentile interval of the replicates shifted to centre on the point estimate (resampling
    with replacement duplicates samples and biases entropy estimates down by about the same
    amount for both sides of a paired difference; the shift removes what remains)."""
    lo, hi = stats.percentile_ci(replicates, alpha)
    shift = point - float(np.mean(replicates))
    return lo + shift, hi + shift


def mi_claims(df: pd.DataFrame, dd: pd.DataFrame, methods: Sequence[str], *, num_classes: int | None = None,
              cfg: verdicts.ClaimSettings | None = None) -> list[Claim]:
    """Zhang et al.'s qualitative findings as claims with statistics and preconditions.

    - "coincide": mean |clean - adversarial| over the series (bits, t interval over the series)
      must be at most ``coincide_max_offset`` AND the mean Pearson r of the series with a trend at
      least ``coincide_min_r`` (else *fails*);
    - "ends with less I(X;T)": standard minus adversarial at the last epoch, mean over layers,
      with a paired bootstrap interval over the N samples (``I_XT_boot`` of estimate_mi);
    - "advances more slowly": the slope of I(X;T) (mean over layers) against ln(1 + epoch),
      standard minus adversarial, with its t interval (OLS, scipy);
    - distortions: mean accuracy over saturation levels minus over shuffle levels (points; the
      identity level cancels), two-proportion test on the pooled rows.

    Not testable: a model at chance (clean accuracy at its last epoch), I(X;T) of the compared
    layers within ``mi_margin`` of log2 N or 0, or no series with a trend.
    """
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
        tc = trend_correlations(df, method)
        used = tc.dropna(subset=["r"])
        r_mean = float(used["r"].mean()) if len(used) else float("nan")
        off = tc["mean_abs_diff"].to_numpy()
        lo = hi = float("nan")
        if off.size >= 2:
            from scipy.stats import t as student

            half = float(student.ppf(1 - a / 2, off.size - 1) * off.std(ddof=1) / math.sqrt(off.size))
            lo, hi = float(off.mean()) - half, float(off.mean()) + half
        pre = untestable(model_pre(method), "" if len(used) else "no MI series has a trend over the epochs")
        fails = "" if not len(used) or r_mean >= cfg.coincide_min_r else (
            f"mean Pearson r {r_mean:.3f} below {cfg.coincide_min_r:g}")
        out.append(Claim(
            STUDY, f"{method}: MI trends on clean and adversarial inputs nearly coincide (mean |clean - adversarial| "
            f"over epochs, layers, estimators, I_XT and I_TY at most {cfg.coincide_max_offset:g} bits, AND mean "
            f"Pearson r at least {cfg.coincide_min_r:g})",
            float(off.mean()) if off.size else float("nan"), "<=", cfg.coincide_max_offset,
            f"{len(used)} of {len(tc)} series have a trend (> {FLAT_BITS} bits spread); mean r {r_mean:.3f}"
            + (f", min r {used['r'].min():.2f}" if len(used) else ""),
            ci_low=lo, ci_high=hi, n=int(off.size), test="t interval over the series (scipy); r threshold",
            alpha=a, untestable=pre, fails_because=fails,
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
            lo = hi = float("nan")
            nboot = 0
            if ba is not None and bb is not None and ba.shape == bb.shape:
                reps = (ba - bb).mean(0)
                nboot = reps.size
                lo, hi = _centred_ci(point, reps, a)
            pre = untestable(mpre, verdicts.mi_precondition(f"{std}/{adv} ({est}, last epoch)",
                                                            list(ga["I_XT"]) + list(gb["I_XT"]), n_mi, cfg))
            out.append(Claim(
                STUDY, f"{adv} ends with less I(X;T) than standard ({est}, clean inputs, "
                "mean over layers of standard minus adversarial, bits)",
                point, ">", 0.0,
                "per layer: " + ", ".join(f"{k} {v:+.3f}" for k, v in diff.items())
                + (f"; paired bootstrap over the N = {n_mi} samples, {nboot} resamples" if nboot
                   else "; no bootstrap replicates (mutual_info.bootstrap = 0)"),
                min_effect=cfg.min_effect(STUDY, "less_ixt"), ci_low=lo, ci_high=hi, n=n_mi,
                test="paired bootstrap over samples (percentile, centred)" if nboot else "", alpha=a,
                untestable=pre,
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
                f"slopes: standard {t['slope_1']:+.3f}, {adv} {t['slope_2']:+.3f} bits per unit ln(1 + epoch)",
                min_effect=cfg.min_effect(STUDY, "slower_ixt"), ci_low=t["ci_low"], ci_high=t["ci_high"],
                p_value=t["p_value"], n=min(len(sa), len(sb)), test="difference of OLS slopes, t test (scipy)",
                alpha=a, untestable=pre,
            ))
    for method in methods:
        drops = {(k, i): _accuracy_drop(dd, method, k, i) for k in ("saturation", "shuffle") for i in INPUTS}
        (p_sat, k_sat, n_sat), (p_sh, k_sh, n_sh) = (_pooled_accuracy(dd, method, k, "clean")
                                                     for k in ("saturation", "shuffle"))
        t = stats.two_proportions(k_sat, n_sat, k_sh, n_sh, a)
        robust = method != "standard"
        out.append(Claim(
            STUDY, f"{method}: loses {'more' if robust else 'less'} accuracy to patch shuffling than "
            "to saturation (clean inputs; mean drop over non-identity levels, shuffle minus saturation, points)",
            100 * t["diff"], ">" if robust else "<", 0.0,
            "drops clean: saturation {:.3f} shuffle {:.3f}; adversarial: saturation {:.3f} shuffle {:.3f}".format(
                drops[("saturation", "clean")], drops[("shuffle", "clean")],
                drops[("saturation", "adversarial")], drops[("shuffle", "adversarial")],
            ) + "; the levels reuse the same images, so the pooled test is approximate",
            min_effect=cfg.min_effect(STUDY, "distortion"), ci_low=100 * t["ci_low"], ci_high=100 * t["ci_high"],
            p_value=t["p_value"], n=min(n_sat, n_sh), test="two-proportion z test on pooled levels (statsmodels)",
            alpha=a, untestable=model_pre(method),
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
              cfg: verdicts.ClaimSettings | None = None) -> list[Claim]:
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
    result = mi_claims(df, dd, methods, num_classes=num_classes, cfg=cfg)
    write_claims(result, claims_out)
    return result


