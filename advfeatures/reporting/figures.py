"""Figures across studies: the claims forest plot, paper-vs-ours charts, Ilyas et al. Fig. 2b-style
bars and training curves.

Every function takes tidy tables (the CSVs the stages write) and returns ``(fig, data)``:
``data`` is what was drawn (the rows, the intervals, the notes printed on the figure), so tests
check the content, not only that a file exists.  A figure whose data cannot show anything says so
on the figure (:func:`say_degenerate`) instead of drawing an empty or misleading axes.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from advfeatures.reporting import matplotlib_headless

#: one colour per verdict (colour-blind safe: Okabe-Ito)
VERDICT_COLOURS = {"holds": "#009E73", "fails": "#D55E00", "inconclusive": "#E69F00", "not testable": "#999999"}
STUDY_TITLES = {
    "ilyas": "Ilyas et al. 2019: robust and non-robust datasets",
    "kim2021": "Kim, Lee, Ro 2021: information bottleneck",
    "kim2021_attacks": "Kim, Lee, Ro 2021: attacks and NRF",
    "mutual_info": "Zhang et al. 2022: mutual information",
}


def _col(df: pd.DataFrame, *names: str) -> pd.Series:
    """The first of ``names`` that ``df`` has (claims.csv may gain or rename columns), else NaN."""
    for n in names:
        if n in df:
            return pd.to_numeric(df[n], errors="coerce")
    return pd.Series(np.nan, index=df.index)


def say_degenerate(ax, text: str) -> None:
    """Write why nothing is drawn in the middle of ``ax`` and hide its ticks."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9, wrap=True,
            bbox={"boxstyle": "round", "fc": "#f4f4f4", "ec": "#bbbbbb"})
    ax.set_xticks([])
    ax.set_yticks([])


# ----------------------------------------------------------------------------- claims


def forest_data(claims: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(testable rows to plot, not-testable rows with their reason) of a claims table.

    Columns used: study, claim, verdict, reason, measured (or effect), comparison, threshold,
    min_effect, ci_low/ci_high (or ci_lo/ci_hi); any other column is ignored."""
    c = claims.reset_index(drop=True)
    d = pd.DataFrame({
        "study": c["study"] if "study" in c else "",
        "claim": c["claim"].astype(str),
        "verdict": c["verdict"].astype(str),
        "reason": c["reason"].fillna("").astype(str) if "reason" in c else "",
        "effect": _col(c, "measured", "effect"),
        "lo": _col(c, "ci_low", "ci_lo"),
        "hi": _col(c, "ci_high", "ci_hi"),
        "threshold": _col(c, "threshold"),
        "min_effect": _col(c, "min_effect").fillna(0.0),
        "comparison": c["comparison"].astype(str) if "comparison" in c else ">",
    })
    nt = (d["verdict"] == "not testable") | ~np.isfinite(d["effect"].to_numpy(float))
    return d[~nt].reset_index(drop=True), d[nt].reset_index(drop=True)


def claims_forest(claims: pd.DataFrame, title: str = "", wrap: int = 70):
    """Forest plot: one row per testable claim with its own x scale (claims are in points, %,
    bits or channels): the measured effect and its interval, coloured by verdict; a black line at
    the threshold, a grey band within the minimum effect of it (too small to count), the claimed
    side marked by an arrow.  Below, the not-testable claims with their reason."""
    matplotlib_headless()
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    plotted, nt = forest_data(claims)
    n, m = len(plotted), len(nt)
    nt_lines = not_testable_lines(nt)
    height = 0.55 * max(n, 1) + 0.22 * len(nt_lines) + 1.6  # 0.22: the not-testable text's line height below
    fig = plt.figure(figsize=(11, height))
    top = 1 - 0.85 / height
    nt_frac = (0.22 * len(nt_lines) + 0.35) / height if nt_lines else 0.0
    bottom = nt_frac + 0.35 / height
    fig.suptitle(title or "Claims", fontsize=11, x=0.02, ha="left", y=1 - 0.12 / height)
    data = {"plotted": plotted, "not_testable": nt, "notes": []}
    if n == 0:
        ax = fig.add_axes((0.05, bottom, 0.9, max(top - bottom, 0.05)))
        note = "no testable claim on this run" + (f" ({m} not testable, listed below)" if m else "")
        say_degenerate(ax, note)
        data["notes"].append(note)
    else:
        gs = fig.add_gridspec(n, 1, left=0.47, right=0.85, top=top, bottom=bottom, hspace=1.1)
        several = plotted["study"].nunique() > 1
        for i, r in enumerate(plotted.itertuples()):
            ax = fig.add_subplot(gs[i, 0])
            if several and (i == 0 or plotted["study"].iloc[i - 1] != r.study):
                ax.text(-0.015, 1.55, STUDY_TITLES.get(r.study, r.study), transform=ax.transAxes, ha="right",
                        va="center", fontsize=8.5, weight="bold")
            colour = VERDICT_COLOURS.get(r.verdict, "k")
            t, me = float(r.threshold), float(r.min_effect)
            up = r.comparison.startswith(">")
            pts = [v for v in (r.effect, r.lo, r.hi, t, t + (me if up else -me)) if math.isfinite(v)]
            lo_x, hi_x = min(pts), max(pts)
            pad = 0.15 * (hi_x - lo_x) or 0.5 * max(abs(hi_x), 1e-3)
            ax.set_xlim(lo_x - pad, hi_x + pad)
            ax.set_ylim(-1, 1)
            if me > 0 and math.isfinite(t):
                ax.axvspan(t - me, t + me, color="0.88", zorder=0)
            if math.isfinite(t):
                ax.axvline(t, color="k", lw=1.0, zorder=1)
                ax.annotate("", xy=(t + (1 if up else -1) * 0.6 * pad, 0.62), xytext=(t, 0.62),
                            arrowprops={"arrowstyle": "->", "color": "0.35", "lw": 0.9})
            if math.isfinite(r.lo) and math.isfinite(r.hi):
                ax.plot([r.lo, r.hi], [0, 0], color=colour, lw=2.4, solid_capstyle="butt", zorder=2)
            ax.plot([r.effect], [0], "o", color=colour, ms=6, zorder=3, mec="k", mew=0.5)
            ax.set_yticks([])
            ax.tick_params(axis="x", labelsize=7, length=2, pad=1)
            ax.xaxis.set_major_locator(plt.MaxNLocator(4))
            ax.text(-0.015, 0.5, textwrap.shorten(r.claim, wrap + 40, placeholder=" ..."), transform=ax.transAxes,
                    ha="right", va="center", fontsize=7.5, wrap=False)
            ax.text(1.015, 0.5, f"{r.verdict}\n{_effect_text(r)}", transform=ax.transAxes, ha="left",
                    va="center", fontsize=7, color=colour)
            for s in ("top", "right", "left"):
                ax.spines[s].set_visible(False)
        handles = [Line2D([], [], color=c, marker="o", lw=2.4, label=v) for v, c in VERDICT_COLOURS.items()
                   if v != "not testable"]
        handles += [Line2D([], [], color="k", lw=1, label="threshold (arrow: claimed side)"),
                    Line2D([], [], color="0.8", lw=6, label="within the minimum effect")]
        fig.legend(handles=handles, loc="upper left", ncol=5, fontsize=7, frameon=False,
                   bbox_to_anchor=(0.015, 1 - 0.3 / height))
    if nt_lines:
        fig.text(0.02, nt_frac, f"Not testable ({m}):\n" + "\n".join(f"- {s}" for s in nt_lines),
                 va="top", ha="left", fontsize=7, color="0.25", family="sans-serif")
    data["not_testable_lines"] = nt_lines
    return fig, data


def not_testable_lines(nt: pd.DataFrame, width: int = 170) -> list[str]:
    """The not-testable claims grouped by reason: one line per reason (a claim with several
    failed preconditions counts under each), with how many claims it stops and which."""
    groups: dict[str, list[str]] = {}
    for r in nt.itertuples():
        for part in (str(r.reason).split(" | ") if r.reason else ["nothing measured"]):
            groups.setdefault(part, []).append(str(r.claim).split(":")[0] if ":" in str(r.claim) else str(r.claim))
    lines = []
    for reason, who in groups.items():
        names = ", ".join(dict.fromkeys(who))
        lines.append(textwrap.shorten(f"{reason} ({len(who)} claim{'s' if len(who) > 1 else ''}: {names})", width,
                                      placeholder=" ..."))
    return lines


def _effect_text(r) -> str:
    ci = f" [{r.lo:.3g}, {r.hi:.3g}]" if math.isfinite(r.lo) and math.isfinite(r.hi) else ""
    return f"{r.effect:.3g}{ci} ({r.comparison} {r.threshold:g})"


def verdict_overview(claims: pd.DataFrame):
    """Stacked horizontal bars: per study, how many claims hold, fail, are inconclusive or not
    testable (the picture of the summary's verdict table)."""
    matplotlib_headless()
    import matplotlib.pyplot as plt

    studies = list(dict.fromkeys(claims["study"])) if len(claims) else []
    counts = pd.crosstab(claims["study"], claims["verdict"]).reindex(index=studies, columns=list(VERDICT_COLOURS),
                                                                     fill_value=0) if studies else pd.DataFrame()
    fig, ax = plt.subplots(figsize=(8, 0.5 * max(len(studies), 1) + 1.2))
    if not studies:
        say_degenerate(ax, "no claims in this run")
        return fig, {"counts": counts}
    left = np.zeros(len(studies))
    for v, colour in VERDICT_COLOURS.items():
        vals = counts[v].to_numpy(float)
        ax.barh(range(len(studies)), vals, left=left, color=colour, label=v, edgecolor="white")
        for i, (x0, w) in enumerate(zip(left, vals)):
            if w:
                ax.text(x0 + w / 2, i, str(int(w)), ha="center", va="center", fontsize=8, color="white")
        left += vals
    ax.set_yticks(range(len(studies)), [STUDY_TITLES.get(s, s) for s in studies], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("claims")
    ax.legend(ncol=4, fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    for s in ("top", "right"):
        ax.spines[s].set_visible(False)
    fig.tight_layout()
    return fig, {"counts": counts}


# ----------------------------------------------------------------------------- paper vs ours


def paper_vs_ours(panels: Mapping[str, pd.DataFrame], *, setting: str = ""):
    """One panel per paper table: our value with its interval beside the paper's, per row.

    ``panels[title]``: columns ``label``, ``ours``, ``lo``, ``hi``, ``paper`` (NaN where the paper
    has no number for this row or the run is not the paper's setting).  A panel without a single
    paper value says so instead of drawing bars."""
    matplotlib_headless()
    import matplotlib.pyplot as plt

    titles = list(panels)

    def shown(p):  # rows with both numbers
        return int((p["paper"].notna() & p["ours"].notna()).sum()) if len(p) else 0

    heights = [0.3 * shown(p) + 1.0 if shown(p) else 0.9 for p in panels.values()] or [0.9]
    fig, axes = plt.subplots(len(heights), 1, figsize=(8, sum(heights) + 0.3), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    data = {}
    for ax, title in zip(axes[:, 0], titles or [""]):
        p = panels.get(title, pd.DataFrame(columns=["label", "ours", "lo", "hi", "paper"])).reset_index(drop=True)
        ax.set_title(title, fontsize=9, loc="left")
        has = p["paper"].notna() & p["ours"].notna() if len(p) else pd.Series(dtype=bool)
        if not has.any():
            note = ("no published number for this run's setting" + (f" ({setting})" if setting else "")
                    + ": the paper's numbers are shown only where dataset, architecture and budget match")
            say_degenerate(ax, textwrap.fill(note, 90))
            data[title] = {"rows": p.iloc[0:0], "note": note}
            continue
        q = p[has].reset_index(drop=True)
        y = np.arange(len(q))
        err = np.vstack([(q["ours"] - q["lo"]).clip(lower=0).fillna(0), (q["hi"] - q["ours"]).clip(lower=0).fillna(0)])
        ax.errorbar(q["ours"], y, xerr=err, fmt="o", color="C0", label="this run (95% interval)", capsize=2)
        ax.plot(q["paper"], y, "D", mfc="none", color="k", label="paper")
        for yi, (o, pp) in enumerate(zip(q["ours"], q["paper"])):
            ax.plot([o, pp], [yi, yi], color="0.7", lw=0.8, zorder=0)
        ax.set_yticks(y, q["label"], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(-2, 102)
        ax.set_xlabel("accuracy (%)", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
        data[title] = {"rows": q, "note": ""}
    fig.tight_layout()
    return fig, data


def paper_panels(tables: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The paper-vs-ours rows of every table that has published numbers (the CSVs of the
    stages): ``ilyas_datasets``, ``kim_table1``, ``kim_table2``, ``kim_table3``, ``kim_table4``."""
    out = {}

    def rows(df, label, ours, paper):
        if df is None or ours not in df or paper not in df:
            return pd.DataFrame(columns=["label", "ours", "lo", "hi", "paper"])
        return pd.DataFrame({"label": label(df).astype(str).to_numpy(), "ours": df[ours].to_numpy(float),
                             "lo": df.get(f"{ours} lo", pd.Series(np.nan, index=df.index)).to_numpy(float),
                             "hi": df.get(f"{ours} hi", pd.Series(np.nan, index=df.index)).to_numpy(float),
                             "paper": pd.to_numeric(df[paper], errors="coerce").to_numpy(float)})

    t = tables.get("ilyas_datasets")
    if t is not None:
        robust = next((c for c in t.columns if c.startswith("robust acc l2") and not c.endswith((" lo", " hi"))), None)
        parts = [rows(t, lambda d: d["training set"] + ": clean", "clean acc", "published clean acc")]
        if robust:
            parts.append(rows(t, lambda d: d["training set"] + ": robust (L2)", robust, "published robust acc l2"))
        out["Ilyas et al. 2019 Table 1 / Fig. 2(b): accuracy of models trained on each set"] = pd.concat(parts)
    t = tables.get("kim_table1")
    if t is not None:
        t = t[t["masks"].astype(str).str.contains("paper")] if "masks" in t else t
        parts = [rows(t, lambda d, k=k: d["model"] + " " + d["input"] + ": " + k, c, p)
                 for k, c, p in (("Int.", "int_acc", "published_int"), ("R.", "r_acc", "published_r"),
                                 ("NR.", "nr_acc", "published_nr"))]
        out["Kim et al. Table 1: Int. / R. / NR. accuracy"] = pd.concat(parts)
    t = tables.get("kim_table2")
    if t is not None:
        out["Kim et al. Table 2: NR. prediction = adversarial prediction"] = rows(
            t, lambda d: d["model"] + " " + d["attack"], "nr_agree", "published")
    t = tables.get("kim_table3")
    if t is not None:
        out["Kim et al. Table 3: robust accuracy per attack"] = rows(
            t, lambda d: d["model"] + " " + d["label"] + [f" ({b})" if isinstance(b, str) and b else ""
                                                          for b in d["bound"]],
            "accuracy", "published")
    t = tables.get("kim_table4")
    if t is not None:
        out["Kim et al. Table 4: gradient ablations"] = rows(
            t, lambda d: d["model"] + " " + d["gradient"] + " " + d["direction"] + " (" + d["bound"].astype(str) + ")",
            "accuracy", "published")
    return out


# ----------------------------------------------------------------------------- Ilyas Fig. 2b


def ilyas_bars(table: pd.DataFrame):
    """Ilyas et al. Fig. 2(b) style: per training set, clean and robust accuracy (%) on the
    original test set with Wilson intervals; the paper's values as open diamonds where the run
    matches its setting.  ``table``: the ``ilyas_datasets`` CSV."""
    matplotlib_headless()
    import matplotlib.pyplot as plt

    acc_cols = [c for c in table.columns if (c == "clean acc" or c.startswith("robust acc "))
                and not c.endswith((" lo", " hi"))]
    pub = {"clean acc": "published clean acc", "robust acc l2": "published robust acc l2"}
    sets = table["training set"].astype(str).tolist()
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(sets) + 2), 3.8))
    width = 0.8 / max(len(acc_cols), 1)
    drawn = []
    for j, col in enumerate(acc_cols):
        x = np.arange(len(sets)) + (j - (len(acc_cols) - 1) / 2) * width
        v = table[col].to_numpy(float)
        lo, hi = table.get(f"{col} lo"), table.get(f"{col} hi")
        err = None
        if lo is not None and hi is not None:
            err = np.vstack([np.clip(v - lo.to_numpy(float), 0, None), np.clip(hi.to_numpy(float) - v, 0, None)])
            err = np.nan_to_num(err)
        ax.bar(x, v, width, yerr=err, capsize=3, label=col.replace("acc", "accuracy"), color=f"C{j}", alpha=0.85)
        if col in pub and pub[col] in table and table[pub[col]].notna().any():
            ax.plot(x, table[pub[col]].to_numpy(float), "D", mfc="none", mec="k", ms=7,
                    label="paper" if j == 0 else None)
        drawn.append(pd.DataFrame({"set": sets, "quantity": col, "value": v,
                                   "lo": lo.to_numpy(float) if lo is not None else np.nan,
                                   "hi": hi.to_numpy(float) if hi is not None else np.nan}))
    ax.set_xticks(np.arange(len(sets)), [textwrap.fill(s, 16) for s in sets], fontsize=7)
    ax.set_ylabel("accuracy on the original test set (%)")
    ax.set_ylim(0, 105)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=len(acc_cols) + 1, loc="upper right")
    ax.set_title("Models trained by standard training on each set (Ilyas et al. Fig. 2b style)", fontsize=9)
    note = ""
    if not acc_cols or table.empty:
        note = "no accuracy columns in the table"
        say_degenerate(ax, note)
    fig.tight_layout()
    return fig, {"bars": pd.concat(drawn, ignore_index=True) if drawn else pd.DataFrame(), "note": note}


# ----------------------------------------------------------------------------- training


def training_curves(metrics: Mapping[str, pd.DataFrame], chance: float | None = None):
    """Test accuracy on clean inputs and under the evaluation PGD attack, and the training loss,
    against epoch: one colour per method (``metrics[method]``: its metrics.csv)."""
    matplotlib_headless()
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharex=True)
    panels = (("test_clean_acc", "clean test accuracy (%)", 100.0), ("test_pgd_acc", "PGD test accuracy (%)", 100.0),
              ("train_loss", "training loss", 1.0))
    drawn = []
    for i, (method, df) in enumerate(metrics.items()):
        for ax, (col, _label, scale) in zip(axes, panels):
            if col not in df:
                continue
            d = df[["epoch", col]].dropna()  # PGD accuracy is measured at some epochs only
            ax.plot(d["epoch"], scale * d[col].astype(float), "-o", ms=3, color=f"C{i}", label=method)
            drawn.append(pd.DataFrame({"method": method, "quantity": col, "epoch": d["epoch"],
                                       "value": scale * d[col].astype(float)}))
    for ax, (_, label, scale) in zip(axes, panels):
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if scale == 100.0:
            ax.set_ylim(-2, 102)
            if chance is not None:
                ax.axhline(100 * chance, color="0.5", ls=":", lw=1)
                ax.text(0.01, 100 * chance + 1.5, "chance", transform=ax.get_yaxis_transform(), fontsize=7, color="0.4")
    notes = []
    if not drawn:
        notes.append("no training metrics")
        say_degenerate(axes[1], notes[-1])
    else:
        axes[0].legend(fontsize=7)
    fig.suptitle("Training curves of every method (test accuracy on the fixed evaluation subset)", fontsize=10)
    fig.tight_layout()
    return fig, {"curves": pd.concat(drawn, ignore_index=True) if drawn else pd.DataFrame(), "notes": notes}


def flat(values: Sequence[float], tol: float = 1e-9) -> bool:
    """True when the finite ``values`` do not vary (a line that carries no trend)."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(float(x))], dtype=float)
    return v.size == 0 or float(np.ptp(v)) <= tol
