"""Tables, figures and claims of the Ilyas et al. 2019 study (robust / non-robust datasets)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from advfeatures.reporting import Claim

STUDY = "ilyas"
SET_ORDER = ("d_r", "d_nr", "d_rand", "d_det")
SET_LABELS = {
    "d_r": "D_R (robust features)",
    "d_nr": "D_NR (non-robust features)",
    "d_rand": "D_rand (random target labels)",
    "d_det": "D_det (deterministic target labels)",
}

# Published numbers: Ilyas et al. 2019, CIFAR-10, ResNet-50, test accuracy / robust accuracy at
# L2 eps 0.25 (source: /work/shared/reference.md section 1, table).  In percent.
PUBLISHED = {
    "D (standard)": (95.3, 4.5),
    "d_r": (84.0, 48.0),
    "d_nr": (88.0, 0.0),
    "d_rand": (63.3, 0.0),
    "d_det": (43.7, 0.0),
}
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
        d = {"training set": row["training set"], "clean acc": 100 * float(r["clean_acc"])}
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
    return pd.DataFrame(out)


def claims(evals: pd.DataFrame, reference: pd.DataFrame, num_classes: int) -> list[Claim]:
    """The study's machine-checkable claims (accuracies in percent)."""

    def get(kind: str, col: str) -> float:
        sub = evals[evals["set"] == kind]
        return 100 * float(sub.iloc[0][col]) if len(sub) and col in sub else float("nan")

    std = reference[reference["set"] == "D (standard)"]
    std_clean = 100 * float(std.iloc[0]["clean_acc"]) if len(std) else float("nan")
    chance = 100.0 / num_classes
    out = [
        Claim(
            STUDY, "model trained on D_R is far more robust than on D_NR (L2 robust acc, points)",
            get("d_r", "robust_acc_l2") - get("d_nr", "robust_acc_l2"), ">=", 10.0,
            "difference of robust accuracies under L2 PGD at synthesis.eval eps",
        ),
        Claim(
            STUDY, "D_NR gives good clean accuracy (ratio to the standard model on D)",
            get("d_nr", "clean_acc") / std_clean if std_clean else float("nan"), ">=", 0.8,
            "paper: 88% vs 95.3% (ratio 0.92)",
        ),
        Claim(
            STUDY, "D_NR gives near-zero robustness (L2 robust acc, %)",
            get("d_nr", "robust_acc_l2"), "<=", 10.0, "paper: 0%",
        ),
    ]
    for kind in ("d_rand", "d_det"):
        out.append(
            Claim(
                STUDY, f"{SET_LABELS[kind].split(' ')[0]} generalises well above chance to the real test set (clean acc, %)",
                get(kind, "clean_acc"), ">=", 3 * chance,
                f"threshold 3 x chance ({chance:.1f}%); paper (CIFAR-10): d_rand 63.3%, d_det 43.7%",
            )
        )
    return out


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
    return pd.DataFrame(
        {
            "architecture": tg.index.astype(str),
            "arch": tg["arch"].astype(str).to_numpy(),
            "options": tg["arch_options"].astype(str).to_numpy(),
            f"test acc trained on {kind}": 100 * sub["clean_acc"].astype(float).to_numpy(),
            "test acc trained on D": 100 * tg["clean_acc"].astype(float).to_numpy(),
            "transfer rate": 100 * tg["transfer_rate"].astype(float).to_numpy(),
            "transfer n": tg["transfer_n"].astype(int).to_numpy(),
        }
    ).reset_index(drop=True)


def transfer_correlation(df: pd.DataFrame, kind: str) -> tuple[float, float]:
    """Pearson r of (accuracy trained on ``kind``, transfer rate) and its two-sided p-value (scipy)."""
    from scipy.stats import pearsonr

    x, y = df[f"test acc trained on {kind}"].to_numpy(float), df["transfer rate"].to_numpy(float)
    if len(df) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan, math.nan
    res = pearsonr(x, y)
    return float(res.statistic), float(res.pvalue)


def transfer_figure(df: pd.DataFrame, kind: str, attack: str):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 3.4))
    xcol = f"test acc trained on {kind}"
    ax.scatter(df[xcol], df["transfer rate"])
    for _, r in df.iterrows():
        ax.annotate(r["architecture"], (r[xcol], r["transfer rate"]), fontsize=8,
                    xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(f"test accuracy (%), trained on {kind}")
    ax.set_ylabel(f"transfer rate (%) to the model trained on D\n({attack} PGD from the standard source)")
    ax.set_title("Transferability vs learning non-robust features (paper Fig. 3)", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
