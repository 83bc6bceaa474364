"""Figures, tables and claims of the mutual-information study (Zhang et al.).

Inputs are the merged tidy CSVs of the stage:

- ``mutual_info.csv``: method, epoch, input (clean | adversarial), n (samples), layer, estimator
  (kde_upper | kde_lower | binning), accuracy, loss, I_XT, I_TY (bits);
- ``mutual_info_distortions.csv``: method, distortion (saturation | shuffle), level, input, n,
  layer, estimator, accuracy, loss, I_XT, I_TY.

The paper reports its findings only as figures (no numbers), so the tables carry no
``published`` column; the claims encode its qualitative findings (reference.md section 3).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from advfeatures.reporting import Claim, matplotlib_headless, save_figure, write_claims, write_table

STUDY = "mutual_info"
INPUTS = ("clean", "adversarial")
MARKERS = {"kde_upper": "o", "kde_lower": "^", "binning": "s"}
#: a series of fewer bits of spread than this over the epochs has no trend to correlate
FLAT_BITS = 0.01
#: "nearly coincide": mean correlation of the clean and adversarial trends at least this
COINCIDE_R = 0.8


def _layers(df: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(df["layer"]))  # first-seen order = probe order


def _tidy_axes(ax, min_span: float = 0.2) -> None:
    """No offset notation, and at least ``min_span`` bits on each axis (flat series stay flat)."""
    ax.ticklabel_format(useOffset=False, style="plain")
    for get, put in ((ax.get_xlim, ax.set_xlim), (ax.get_ylim, ax.set_ylim)):
        lo, hi = get()
        if hi - lo < min_span:
            mid = (lo + hi) / 2
            put(mid - min_span / 2, mid + min_span / 2)


def _identity(kind: str, level: float) -> bool:
    return (kind == "saturation" and level == 2) or (kind == "shuffle" and level <= 1)


# ----------------------------------------------------------------------------- tables


def final_table(df: pd.DataFrame) -> pd.DataFrame:
    """MI of every layer at each method's last saved epoch."""
    last = df.groupby("method")["epoch"].transform("max")
    t = df[df["epoch"] == last]
    cols = ["method", "epoch", "input", "layer", "estimator", "I_XT", "I_TY", "accuracy"]
    return t[cols].sort_values(["method", "input", "estimator"], kind="stable").reset_index(drop=True)


def distortion_table(dd: pd.DataFrame) -> pd.DataFrame:
    """Accuracy and loss per method, input, distortion and level (one row per level)."""
    t = dd.drop_duplicates(["method", "distortion", "level", "input"])
    return t[["method", "input", "distortion", "level", "accuracy", "loss"]].reset_index(drop=True)


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


def _accuracy_drop(dd: pd.DataFrame, method: str, kind: str, inp: str) -> float:
    g = dd[(dd["method"] == method) & (dd["distortion"] == kind) & (dd["input"] == inp)]
    g = g.drop_duplicates("level")
    ident = g[[_identity(kind, lv) for lv in g["level"]]]
    rest = g[[not _identity(kind, lv) for lv in g["level"]]]
    if ident.empty or rest.empty:
        return float("nan")
    return float(ident["accuracy"].iloc[0] - rest["accuracy"].mean())


def mi_claims(df: pd.DataFrame, dd: pd.DataFrame, methods: Sequence[str]) -> list[Claim]:
    out: list[Claim] = []
    for method in methods:
        tc = trend_correlations(df, method)
        used = tc.dropna(subset=["r"])
        out.append(Claim(
            STUDY, f"{method}: MI trends on clean and adversarial inputs nearly coincide "
            "(mean Pearson r across epochs over layers, estimators, I_XT and I_TY)",
            float(used["r"].mean()) if len(used) else float("nan"), ">=", COINCIDE_R,
            f"{len(used)} of {len(tc)} series have a trend (> {FLAT_BITS} bits spread); "
            + (f"min r {used['r'].min():.2f}; " if len(used) else "")
            + f"mean |clean - adversarial| {tc['mean_abs_diff'].mean():.3f} bits",
        ))
    std = "standard" if "standard" in methods else None
    last = df[df["epoch"] == df.groupby("method")["epoch"].transform("max")]
    clean = last[last["input"] == "clean"]
    all_clean = df[df["input"] == "clean"]
    for adv in [m for m in methods if m != "standard"]:
        if std is None:
            break
        for est in dict.fromkeys(clean["estimator"]):
            a = clean[(clean["method"] == std) & (clean["estimator"] == est)].set_index("layer")["I_XT"]
            b = clean[(clean["method"] == adv) & (clean["estimator"] == est)].set_index("layer")["I_XT"]
            diff = (a - b).dropna()
            ceiling = math.log2(df["n"].max()) if "n" in df else float("nan")  # I(X;T) <= log2 N
            saturated = int(((pd.concat([a, b]) > ceiling - FLAT_BITS)).sum())
            out.append(Claim(
                STUDY, f"{adv} ends with less I(X;T) than standard ({est}, clean inputs, "
                "mean over layers of standard minus adversarial, bits)",
                float(diff.mean()) if len(diff) else float("nan"), ">", 0.0,
                "per layer: " + ", ".join(f"{k} {v:+.3f}" for k, v in diff.items())
                + f"; {saturated} of {len(a) + len(b)} values within {FLAT_BITS} bits of the log2 N ceiling",
            ))
        for est in dict.fromkeys(all_clean["estimator"]):
            g = all_clean[all_clean["estimator"] == est]
            a = g[g["method"] == std].set_index(["epoch", "layer"])["I_XT"]
            b = g[g["method"] == adv].set_index(["epoch", "layer"])["I_XT"]
            diff = (a - b).dropna()
            per_epoch = diff.groupby(level="epoch").mean()
            out.append(Claim(
                STUDY, f"{adv}: I(X;T) advances more slowly than under standard training ({est}, clean inputs, "
                "mean over saved epochs and layers of standard minus adversarial, bits)",
                float(diff.mean()) if len(diff) else float("nan"), ">", 0.0,
                "per epoch: " + ", ".join(f"{k} {v:+.2f}" for k, v in per_epoch.items()),
            ))
    for method in methods:
        drops = {(k, i): _accuracy_drop(dd, method, k, i) for k in ("saturation", "shuffle") for i in INPUTS}
        measured = drops[("shuffle", "clean")] - drops[("saturation", "clean")]
        robust = method != "standard"
        out.append(Claim(
            STUDY, f"{method}: loses {'more' if robust else 'less'} accuracy to patch shuffling than "
            "to saturation (clean inputs; mean drop over non-identity levels, shuffle minus saturation)",
            measured, ">" if robust else "<", 0.0,
            "drops clean: saturation {:.3f} shuffle {:.3f}; adversarial: saturation {:.3f} shuffle {:.3f}".format(
                drops[("saturation", "clean")], drops[("shuffle", "clean")],
                drops[("saturation", "adversarial")], drops[("shuffle", "adversarial")],
            ),
        ))
    return out


# ----------------------------------------------------------------------------- figures


def plot_information_plane(df: pd.DataFrame, path, methods: Sequence[str]) -> None:
    """Rows: (method, input); columns: probe layers; I(X;T) against I(T;Y), coloured by epoch,
    one marker per estimator, each estimator's epochs joined in order."""
    matplotlib_headless()
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    layers = _layers(df)
    rows = [(m, i) for m in methods for i in INPUTS]
    epochs = sorted(df["epoch"].unique())
    norm = plt.Normalize(min(epochs), max(epochs))
    cmap = plt.get_cmap("viridis")
    fig, axes = plt.subplots(len(rows), len(layers), figsize=(3.0 * len(layers), 2.6 * len(rows)), squeeze=False)
    for r, (method, inp) in enumerate(rows):
        for c, layer in enumerate(layers):
            ax = axes[r, c]
            g = df[(df["method"] == method) & (df["input"] == inp) & (df["layer"] == layer)]
            for est, ge in g.groupby("estimator", sort=False):
                ge = ge.sort_values("epoch")
                ax.plot(ge["I_XT"], ge["I_TY"], color="0.7", lw=0.8, zorder=1)
                ax.scatter(ge["I_XT"], ge["I_TY"], c=cmap(norm(ge["epoch"])), marker=MARKERS.get(est, "o"),
                           s=22, zorder=2, edgecolors="none")
            _tidy_axes(ax)
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
    fig.suptitle("Information planes per probe layer (clean vs adversarial inputs; normal vs adversarial training)")
    save_figure(fig, path)


def plot_vs_epoch(df: pd.DataFrame, path, methods: Sequence[str], estimator: str = "kde_upper") -> None:
    """Paper Fig. 4, first row: accuracy, loss, I(X;T) and I(T;Y) against epoch; solid clean,
    dashed adversarial; one colour per layer."""
    matplotlib_headless()
    import matplotlib.pyplot as plt

    if estimator not in set(df["estimator"]):
        estimator = df["estimator"].iloc[0]
    layers = _layers(df)
    colours = plt.get_cmap("tab10")
    fig, axes = plt.subplots(len(methods), 4, figsize=(15, 3.0 * len(methods)), squeeze=False)
    for r, method in enumerate(methods):
        m = df[df["method"] == method]
        for inp, ls in zip(INPUTS, ("-", "--")):
            g = m[(m["input"] == inp)].drop_duplicates("epoch").sort_values("epoch")
            axes[r, 0].plot(g["epoch"], g["accuracy"], ls=ls, color="k", label=inp)
            axes[r, 1].plot(g["epoch"], g["loss"], ls=ls, color="k", label=inp)
            for li, layer in enumerate(layers):
                gl = m[(m["input"] == inp) & (m["layer"] == layer) & (m["estimator"] == estimator)].sort_values("epoch")
                for col, q in ((2, "I_XT"), (3, "I_TY")):
                    axes[r, col].plot(gl["epoch"], gl[q], ls=ls, color=colours(li), marker=".",
                                      label=f"{layer} ({inp})" if inp == "clean" else None)
        for col, name in enumerate(("accuracy", "loss", f"I(X;T) [bits, {estimator}]", f"I(T;Y) [bits, {estimator}]")):
            axes[r, col].ticklabel_format(useOffset=False, style="plain")
            axes[r, col].set_ylabel(name)
            axes[r, col].set_title(method if col == 0 else "")
            axes[r, col].set_xlabel("epoch")
        axes[r, 0].legend(fontsize=7)
        axes[r, 3].legend(fontsize=7, title="solid clean, dashed adversarial", title_fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


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
        for inp, ls in zip(INPUTS, ("-", "--")):
            gi = g[g["input"] == inp]
            one = gi.drop_duplicates("level")
            x = [pos[lv] for lv in one["level"]]
            axes[r, 0].plot(x, one["accuracy"], ls=ls, color="k", marker=".", label=inp)
            axes[r, 1].plot(x, one["loss"], ls=ls, color="k", marker=".", label=inp)
            for li, layer in enumerate(layers):
                gl = gi[(gi["layer"] == layer) & (gi["estimator"] == estimator)]
                xl = [pos[lv] for lv in gl["level"]]
                for col, q in ((2, "I_XT"), (3, "I_TY")):
                    axes[r, col].plot(xl, gl[q], ls=ls, color=colours(li), marker=".",
                                      label=layer if inp == "clean" else None)
        for col, name in enumerate(("accuracy", "loss", f"I(X;T) [{estimator}]", f"I(T;Y) [{estimator}]")):
            ax = axes[r, col]
            ax.ticklabel_format(axis="y", useOffset=False, style="plain")
            ax.set_xticks(range(len(levels)), [f"{lv:g}" for lv in levels])
            ax.set_xlabel(f"{kind} level ({'p' if kind == 'saturation' else 'k x k patches'})")
            ax.set_ylabel(name)
        axes[r, 0].set_title(f"{method}: {kind}")
        axes[r, 0].legend(fontsize=7)
        axes[r, 3].legend(fontsize=7, title="solid clean, dashed adversarial", title_fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


# ----------------------------------------------------------------------------- entry point


def build_all(epochs_csv, distortions_csv, *, methods: Sequence[str], plane, vs_epoch, distortions_fig,
              claims_out, final: tuple, dist: tuple) -> list[Claim]:
    """Everything ``report_mi`` writes; returns the claims."""
    df = pd.read_csv(epochs_csv)
    dd = pd.read_csv(distortions_csv)
    methods = [m for m in methods if m in set(df["method"])]
    write_table(final_table(df), final[0], final[1], title="Mutual information at the last saved epoch (bits)",
                note="KDE bounds (noise variance from mutual_info.kde) and binning; no published numbers "
                "(the paper reports figures only).", floatfmt=".3f")
    write_table(distortion_table(dd), dist[0], dist[1], title="Accuracy and loss under distortions (final models)",
                note="Distortions applied after the attack; saturation p = 2 and shuffle k = 0 are the identity.",
                floatfmt=".3f")
    plot_information_plane(df, plane, methods)
    plot_vs_epoch(df, vs_epoch, methods)
    plot_distortions(dd, distortions_fig, methods)
    result = mi_claims(df, dd, methods)
    write_claims(result, claims_out)
    return result


