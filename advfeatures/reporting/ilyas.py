"""Tables, figures and claims of the Ilyas et al. 2019 study (robust / non-robust datasets)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from advfeatures import published, stats
from advfeatures.reporting import Claim, untestable, verdicts

STUDY = "ilyas"
SET_ORDER = ("d_r", "d_nr", "d_rand", "d_det")
SET_LABELS = {
    "d_r": "D_R (robust features)",
    "d_nr": "D_NR (non-robust features)",
    "d_rand": "D_rand (random target labels)",
    "d_det": "D_det (deterministic target labels)",
}

# Published numbers: Ilyas et al. 2019, CIFAR-10, ResNet-50 (package data
# advfeatures/published/ilyas2019.yaml): test accuracy from Table 1 (D, D_rand, D_det) and test /
# robust accuracy at L2 eps 0.25 read off Figure 2(b) (D, D_R, D_NR).  In percent; key -> (clean,
# robust), NaN where the paper has no number.
_PUBLISHED_ROWS = {"D": "D (standard)", "D_R": "d_r", "D_NR": "d_nr", "D_rand": "d_rand", "D_det": "d_det"}


def _published() -> dict[str, tuple[float, float]]:
    df = published.numbers("ilyas2019", dataset="cifar10")
    out = {}
    for row, key in _PUBLISHED_ROWS.items():
        g = df[df["row"] == row]
        fig, tab = g[g["source"] == "Figure 2(b)"], g[g["source"] == "Table 1"]

        def pick(col, fig=fig, tab=tab):
            for part in (tab, fig):  # a printed table value before one read off a chart
                v = part[part["column"] == col]["value"]
                if len(v):
                    return float(v.iloc[0])
            return math.nan

        out[key] = (pick("test accuracy"), pick("robust accuracy"))
    return out


PUBLISHED = _published()
PUBLISHED_SETTING = {"dataset": "cifar10", "arch": "resnet50", "l2_eps": 0.25}


def published_applies(dataset: str, arch: str, attacks: Mapping[str, Mapping]) -> bool:
    """True only when the run matches the paper's setting (CIFAR-10, ResNet-50, L2 eps 0.25)."""
    l2 = attacks.get("l2") or {}
    return (
        dataset == PUBLISHED_SETTING["dataset"]
        and arch == PUBLISHED_SETTING["arch"]
        and math.isclose(float(l2.get("eps", -1)), PUBLISHED_SETTING["l2_eps"])
    )


def datasets_table(
    evals: pd.DataFrame,
    reference: pd.DataFrame,
    synthetic_stats: Mapping[str, Mapping[str, float]],
    *,
    robust_method: str,
    with_published: bool,
) -> pd.DataFrame:
    """One row per training set: D (standard), D (robust), then the synthetic sets.

    ``evals``/``reference``: rows written by the train_synthetic / ilyas_eval_reference rules
    (accuracies as fractions).  ``synthetic_stats[kind]``: ``label_hit`` (fraction of images the
    source model assigns their training label) and ``rep_distance`` (mean relative distance).
    Accuracies in the table are percentages.
    """
    attack_cols = [c for c in evals.columns if c.startswith("robust_acc_")]
    rows = []
    for _, r in reference.iterrows():
        method = str(r["set"]).removeprefix("D (").removesuffix(")")
        key = "D (standard)" if method == "standard" else None
        rows.append({"training set": f"D ({method} training)", "key": key, "src": r})
    for kind in SET_ORDER:
        sub = evals[evals["set"] == kind]
        if len(sub):
            rows.append({"training set": SET_LABELS[kind], "key": kind, "src": sub.iloc[0]})
    out = []
    for row in rows:
        r, key = row["src"], row["key"]
        n_test = r.get("n_test", float("nan"))
        d = {"training set": row["training set"], "n": int(n_test) if pd.notna(n_test) else float("nan"),
             "clean acc": 100 * float(r["clean_acc"])}
        for c in attack_cols:
            d[c.replace("robust_acc_", "robust acc ")] = 100 * float(r[c])
        kind = key if key in SET_ORDER else None
        stats = synthetic_stats.get(kind, {}) if kind else {}
        d["source model agrees with label"] = 100 * stats["label_hit"] if stats else float("nan")
        d["rel. repr. distance"] = stats.get("rep_distance", float("nan"))
        pub = PUBLISHED.get(key) if with_published and key else None
        d["published clean acc"] = pub[0] if pub else float("nan")
        d["published robust acc l2"] = pub[1] if pub else float("nan")
        out.append(d)
    df = pd.DataFrame(out)
    accs = ["clean acc"] + [c.replace("robust_acc_", "robust acc ") for c in attack_cols]
    return verdicts.add_wilson(df, accs, "n")


def claims(evals: pd.DataFrame, reference: pd.DataFrame, num_classes: int,
           cfg: verdicts.ClaimSettings | None = None,
           synthetic_stats: Mapping[str, Mapping[str, float]] | None = None,
           eval_budget: str = "") -> list[Claim]:
    """The study's claims (accuracies in percent) with their statistics and preconditions.

    Every model is evaluated on the same seeded test rows (``n_test``), but only its accuracies
    are stored, so differences use the unpaired two-proportion test (statsmodels; conservative
    for the same rows) and levels the exact binomial test against the level (scipy).

    Preconditions (not testable):

    - robustness claims: the model at chance (a model at chance is trivially "not robust");
    - the paper's regime: the model trained on D keeps at most ``regime_robust_max`` % L2 robust
      accuracy at the evaluation budget (``eval_budget`` names it; paper: 4.5% at L2 eps 0.25),
      else "D_R more robust than D" and "D_NR near-zero robustness" are tested outside it;
    - D_rand / D_det: the targeted synthesis reached its target labels (``synthetic_stats[kind]
      ["label_hit"]``, the share of synthetic images the source model assigns their new label) on
      at least ``target_success_min`` %; a set that did not form is mostly clean images with a wrong
      label and says nothing about non-robust features (the reason names ``synthetic_stats[kind]
      ["budget"]``, the targeted budget, when given).

    Generalisation claims (D_NR, D_rand, D_det clean accuracy) have no model precondition: a model
    at chance there is the negative result itself, not a reason to stay silent.
    """
    cfg = cfg or verdicts.settings()
    a = cfg.alpha
    synthetic_stats = synthetic_stats or {}

    def src(kind: str):
        if kind == "d":
            sub = reference[reference["set"] == "D (standard)"]
        else:
            sub = evals[evals["set"] == kind]
        return sub.iloc[0] if len(sub) else None

    def acc(kind: str, col: str) -> tuple[float, int]:
        r = src(kind)
        if r is None or col not in r or pd.isna(r[col]):
            return math.nan, 0
        return 100 * float(r[col]), int(r["n_test"]) if "n_test" in r and pd.notna(r["n_test"]) else 0

    def exists(kind: str) -> str:
        return "" if src(kind) is not None else f"model trained on {'D (standard)' if kind == 'd' else kind} missing"

    def model_ok(kind: str) -> str:
        r = src(kind)
        name = "D (standard)" if kind == "d" else kind
        if r is None:
            return f"model trained on {name} missing"
        return verdicts.model_precondition(f"trained on {name}", 100 * float(r["clean_acc"]), num_classes, cfg,
                                           degenerate=bool(r.get("degenerate", False)))

    d_rob, _ = acc("d", "robust_acc_l2")
    budget = f" at {eval_budget}" if eval_budget else ""
    regime = "" if not math.isfinite(d_rob) or d_rob <= cfg.regime_robust_max else (
        f"outside the paper's regime: the model trained on D keeps {d_rob:.1f}% L2 robust accuracy{budget} "
        f"(limit {cfg.regime_robust_max:g}%; paper 4.5% at L2 eps 0.25); raise synthesis.eval.attacks.l2.eps")

    def formed(kind: str) -> str:
        st = synthetic_stats.get(kind)
        if not st or "label_hit" not in st:
            return ""
        hit = 100 * float(st["label_hit"])
        if hit < cfg.target_success_min:
            budget = f" at {st['budget']}" if st.get("budget") else ""
            return (f"{kind} did not form: the source model assigns the target label to only {hit:.1f}% of its "
                    f"images{budget} (limit {cfg.target_success_min:g}%); raise synthesis.targeted.eps or steps")
        return ""

    def diff(kind1: str, kind2: str, col: str, key: str, text: str, note: str, extra: str = "") -> Claim:
        (p1, n1), (p2, n2) = acc(kind1, col), acc(kind2, col)
        k1, k2 = round(p1 / 100 * n1) if n1 else 0, round(p2 / 100 * n2) if n2 else 0
        t = stats.two_proportions(k1, n1, k2, n2, a)
        return Claim(
            STUDY, text, p1 - p2, ">", 0.0, f"{note}; {p1:.1f}% (n={n1}) vs {p2:.1f}% (n={n2})",
            min_effect=cfg.min_effect(STUDY, key), ci_low=100 * t["ci_low"], ci_high=100 * t["ci_high"],
            p_value=t["p_value"], n=min(n1, n2), test="two-proportion z test (statsmodels)", alpha=a,
            untestable=untestable(model_ok(kind1), model_ok(kind2), extra), key=f"ilyas.{key}",
        )

    def level(kind: str, col: str, op: str, bar: float, key: str, text: str, note: str,
              pre: str = "") -> Claim:
        pct, n = acc(kind, col)
        if not math.isfinite(bar):
            pre = untestable(pre, "no reference accuracy for the bar")
            bar = math.nan
        k = round(pct / 100 * n) if n and math.isfinite(pct) else 0
        lo, hi = stats.wilson(k, n, a)
        return Claim(
            STUDY, text, pct, op, bar, note, min_effect=cfg.min_effect(STUDY, key), ci_low=100 * lo,
            ci_high=100 * hi, p_value=stats.binom_level(k, n, bar / 100) if math.isfinite(bar) else math.nan, n=n,
            test="exact binomial test against the level (scipy); Wilson interval", alpha=a,
            untestable=pre, key=f"ilyas.{key}",
        )

    std_clean, _ = acc("d", "clean_acc")
    chance = 100.0 / num_classes
    out = [
        diff("d_r", "d", "robust_acc_l2", "d_r_vs_d",
             "model trained (standard training) on D_R is more robust than the same model trained on D "
             "(L2 robust acc, points; headline claim)",
             "same architecture and training; L2 PGD at synthesis.eval eps", regime),
        diff("d_r", "d_nr", "robust_acc_l2", "d_r_vs_d_nr",
             "model trained on D_R is far more robust than on D_NR (L2 robust acc, points)",
             "difference of robust accuracies under L2 PGD at synthesis.eval eps"),
        level("d_nr", "clean_acc", ">=", 0.8 * std_clean, "d_nr_clean",
              "D_NR gives good clean accuracy (clean acc, % ; bar 0.8 x the standard model on D)",
              f"bar 0.8 x {std_clean:.1f}% (standard model on D); paper: 88% vs 95.3% (ratio 0.92)",
              pre=untestable(exists("d_nr"), model_ok("d"))),
        level("d_nr", "robust_acc_l2", "<=", cfg.near_zero_robust, "d_nr_robust",
              "D_NR gives near-zero robustness (L2 robust acc, %)", "paper: 0%",
              pre=untestable(model_ok("d_nr"), regime)),
    ]
    for kind in ("d_rand", "d_det"):
        name = SET_LABELS[kind].split(" ")[0]
        out.append(level(
            kind, "clean_acc", ">", chance, "generalises",
            f"{name} generalises to the real test set: clean acc above chance by at least the minimum effect (%)",
            f"threshold chance ({chance:.1f}%); paper (CIFAR-10): D_rand 63.3%, D_det 43.7% ('non-trivial')",
            pre=untestable(exists(kind), formed(kind)),
        ))
        out.append(level(
            kind, "robust_acc_l2", "<=", cfg.near_zero_robust, "synthetic_robust",
            f"{name} gives near-zero robustness (L2 robust acc, %)", "paper: 0% (D_rand and D_det)",
            pre=untestable(model_ok(kind), formed(kind)),
        ))
    return out


def transfer_claim(df: pd.DataFrame, kind: str, cfg: verdicts.ClaimSettings | None = None) -> Claim:
    """Paper Fig. 3: across architectures, the transfer rate rises with the test accuracy reached
    when trained on ``kind``: Pearson r > 0 with its Fisher-z interval and p-value (scipy).  Not
    testable with fewer than ``min_architectures`` architectures (a correlation of 3 points
    ranged from -0.98 to +0.50 between two machines)."""
    from scipy.stats import pearsonr

    cfg = cfg or verdicts.settings()
    x, y = df[f"test acc trained on {kind}"].to_numpy(float), df["transfer rate"].to_numpy(float)
    r = lo = hi = p = math.nan
    pre = ""
    if len(df) < cfg.min_architectures:
        pre = f"only {len(df)} architectures (at least {cfg.min_architectures} needed for a correlation)"
    if len(df) >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
        res = pearsonr(x, y)
        r, p = float(res.statistic), float(res.pvalue)
        if len(df) > 3:
            ci = res.confidence_interval(1 - cfg.alpha)
            lo, hi = float(ci.low), float(ci.high)
    elif not pre:
        pre = "a constant column: no correlation"
    return Claim(
        STUDY, f"architectures that learn more from non-robust features ({kind}) are more vulnerable to transfer "
        "(Pearson r of test accuracy trained on the set and transfer rate from the standard source; paper Fig. 3)",
        r, ">", 0.0, f"{len(df)} architectures: " + ", ".join(df["architecture"].astype(str))
        + ("; the paper's axis is D_det (trained on D_y+1)" if kind != "d_det" else ""),
        min_effect=cfg.min_effect(STUDY, "transfer_correlation"), ci_low=lo, ci_high=hi, p_value=p, n=len(df),
        test="Pearson correlation, Fisher-z interval (scipy)", alpha=cfg.alpha, untestable=pre,
        key="ilyas.transfer_correlation",
    )


def sample_rows(source_index: np.ndarray, y_source: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Positions of ``per_class`` seeded-random rows of each class (in class order)."""
    rng = np.random.default_rng(seed)
    picks = []
    for c in np.unique(y_source):
        rows = np.flatnonzero(y_source == c)
        picks.extend(sorted(rng.choice(rows, size=min(per_class, len(rows)), replace=False)))
    return np.asarray(picks, dtype=np.int64)


def samples_figure(
    original: np.ndarray,
    sets: Mapping[str, Mapping[str, np.ndarray]],
    rows: Sequence[int],
    classes: Sequence[str],
):
    """Grid: one column per chosen image; rows original, d_r, d_nr, d_rand, d_det (label shown).

    ``original`` [N,C,H,W] in [0,1] (the training split); ``sets[kind]`` holds ``x``, ``y`` and
    ``source_index`` of the synthetic file.  ``rows`` index the training split.
    """
    import matplotlib.pyplot as plt

    kinds = [k for k in SET_ORDER if k in sets]
    pos = {k: {int(s): i for i, s in enumerate(sets[k]["source_index"])} for k in kinds}
    fig, axes = plt.subplots(
        1 + len(kinds), len(rows), figsize=(1.1 * len(rows), 1.25 * (1 + len(kinds))), squeeze=False
    )

    def show(ax, img, title):
        img = np.clip(np.asarray(img, dtype=np.float32), 0, 1)
        if img.shape[0] == 1:
            ax.imshow(img[0], cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(img.transpose(1, 2, 0))
        ax.set_title(title, fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])

    for j, src in enumerate(rows):
        show(axes[0, j], original[src], "")
        for i, k in enumerate(kinds, start=1):
            p = pos[k].get(int(src))
            if p is None:
                axes[i, j].axis("off")
                continue
            show(axes[i, j], sets[k]["x"][p], f"label {classes[int(sets[k]['y'][p])]}")
    for i, name in enumerate(["original"] + [SET_LABELS[k].split(" ")[0] for k in kinds]):
        axes[i, 0].set_ylabel(name, fontsize=8)
    fig.suptitle("Ilyas et al. synthetic training sets (columns: training images)", fontsize=9)
    fig.tight_layout()
    return fig


def transfer_table(evals: pd.DataFrame, targets: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Paper Fig. 3, one row per architecture.

    ``evals``: eval rows of the models trained on the synthetic sets (``train_synthetic``);
    ``targets``: rows of the same architectures trained by standard training on the original D
    (``transfer_target``), with the transfer rate to them from the standard source model.
    x = test accuracy when trained on ``kind``; y = transfer rate to the D-trained model.
    """
    sub = evals[evals["set"] == kind].set_index("train_arch")
    tg = targets.set_index("train_arch")
    missing = sorted(set(tg.index) - set(sub.index))
    if missing:
        raise ValueError(f"no eval row of the models trained on {kind} for architectures {missing}")
    sub = sub.loc[tg.index]
    df = pd.DataFrame(
        {
            "architecture": tg.index.astype(str),
            "arch": tg["arch"].astype(str).to_numpy(),
            "options": tg["arch_options"].astype(str).to_numpy(),
            "n": sub["n_test"].astype(int).to_numpy() if "n_test" in sub else np.nan,
            f"test acc trained on {kind}": 100 * sub["clean_acc"].astype(float).to_numpy(),
            "test acc trained on D": 100 * tg["clean_acc"].astype(float).to_numpy(),
            "transfer rate": 100 * tg["transfer_rate"].astype(float).to_numpy(),
            "transfer n": tg["transfer_n"].astype(int).to_numpy(),
            "n D": tg["n_test"].astype(int).to_numpy() if "n_test" in tg else np.nan,
        }
    ).reset_index(drop=True)
    return verdicts.add_wilson(df, [f"test acc trained on {kind}", "test acc trained on D", "transfer rate"],
                               {f"test acc trained on {kind}": "n", "test acc trained on D": "n D",
                                "transfer rate": "transfer n"})


def transfer_correlation(df: pd.DataFrame, kind: str) -> tuple[float, float]:
    """Pearson r of (accuracy trained on ``kind``, transfer rate) and its two-sided p-value (scipy)."""
    from scipy.stats import pearsonr

    x, y = df[f"test acc trained on {kind}"].to_numpy(float), df["transfer rate"].to_numpy(float)
    if len(df) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan, math.nan
    res = pearsonr(x, y)
    return float(res.statistic), float(res.pvalue)


def transfer_figure(df: pd.DataFrame, kind: str, attack: str):
    """Paper Fig. 3: one point per architecture with its 95% Wilson interval on both axes; the
    Pearson r in the title; fewer than 3 architectures or a constant axis is said on the figure."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.6, 3.8))
    xcol = f"test acc trained on {kind}"

    def err(col):
        v = df[col].to_numpy(float)
        lo = df.get(f"{col} lo", pd.Series(v)).to_numpy(float)
        hi = df.get(f"{col} hi", pd.Series(v)).to_numpy(float)
        return np.nan_to_num(np.vstack([np.clip(v - lo, 0, None), np.clip(hi - v, 0, None)]))

    ax.errorbar(df[xcol], df["transfer rate"], xerr=err(xcol), yerr=err("transfer rate"), fmt="o", capsize=2)
    for _, r in df.iterrows():
        ax.annotate(r["architecture"], (r[xcol], r["transfer rate"]), fontsize=8,
                    xytext=(3, 3), textcoords="offset points")
    r, p = transfer_correlation(df, kind)
    if math.isfinite(r):
        ax.set_title(f"Transferability vs learning non-robust features (paper Fig. 3)\nPearson r = {r:.2f} "
                     f"(p = {p:.2g}, {len(df)} architectures)", fontsize=9)
    else:
        ax.set_title("Transferability vs learning non-robust features (paper Fig. 3)", fontsize=9)
        ax.text(0.5, 0.04, f"no correlation: {len(df)} architecture(s) or a constant axis (needs 3 or more)",
                transform=ax.transAxes, ha="center", fontsize=7, color="C3")
    ax.set_xlabel(f"test accuracy (%), trained on {kind}")
    ax.set_ylabel(f"transfer rate (%) to the model trained on D\n({attack} PGD from the standard source)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
