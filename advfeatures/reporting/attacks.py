"""Kim, Lee, Ro 2021 Tables 3 and 4, the robust-accuracy-vs-eps figure and the attack claims.

Inputs are the ``attack`` HDF5 files of the attack rule (one per model and suite attack) and the
sweep CSVs.  Accuracies are in percent, each with the number of test rows ``n`` it was measured
on.  A ``published`` value stands beside a measured one only when the run matches the paper's
setting (dataset CIFAR-10 or SVHN, VGG-16 or WRN-28-10, Linf eps 0.03) and the attack is the
one the paper's column reports; otherwise the cell is empty.

Paired comparisons (claims) use only the test rows both attacks ran on, so an attack run on a
smaller seeded subset is compared on the same examples.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from advfeatures import h5io, published, stats
from advfeatures.registry import ATTACKS as REGISTRY
from advfeatures.reporting import Claim, interval_cell, untestable, verdicts
from advfeatures.utils import AdvFeaturesError

STUDY = "kim2021_attacks"
METHOD_LABELS = {"standard": "standard", "pgd_linf": "ADV", "pgd_l2": "ADV-L2", "trades": "TRADES", "mart": "MART"}

# Published numbers: Kim, Lee, Ro 2021 Tables 3 and 4 (robust accuracy %, Linf eps 0.03), read from
# the package data advfeatures/published/kim2021.yaml.  The paper's "AA" column was APGD-CE only in
# the reference code, so it is put beside our apgd_ce attack, never beside the full AutoAttack.
PAPER_MODELS = {"ADV": "pgd_linf", "TRADES": "trades", "MART": "mart"}
_T3_COLS = ("Clean", "FGSM", "BIM", "PGD", "CW", "AA", "FAB", "NRF")
#: Table 4 columns as (mask, maximize): ||G_nr|| max, ||G_nr|| min, ||G_r|| max, ||G_r|| min
_T4_COLS = {"G_nr max": ("nonrobust", True), "G_nr min": ("nonrobust", False),
            "G_r max": ("robust", True), "G_r min": ("robust", False)}


def _published(source: str, columns) -> dict:
    """{(dataset, arch label): {method: {column key: value}}} of one table of the paper."""
    out: dict = {}
    for r in published.numbers("kim2021", source=source).itertuples():
        key = columns.get(r.column) if isinstance(columns, dict) else (r.column if r.column in columns else None)
        if key is None or r.model not in PAPER_MODELS:
            continue
        out.setdefault((r.dataset, r.arch), {}).setdefault(PAPER_MODELS[r.model], {})[key] = r.value
    return out


PUBLISHED_TABLE3 = _published("Table 3", _T3_COLS)
PUBLISHED_TABLE4 = _published("Table 4", _T4_COLS)
PAPER_EPS = 0.03


def paper_setting(setting: Mapping) -> tuple[str, str] | None:
    """(dataset, architecture label) of the paper when ``setting`` matches it, else None."""
    arch, opts = setting.get("arch"), setting.get("arch_options") or {}
    label = None
    if arch == "vgg16":
        label = "VGG-16"
    elif arch == "wrn" and int(opts.get("depth", 28)) == 28 and int(opts.get("widen_factor", 10)) == 10:
        label = "WRN-28-10"
    if label is None or not math.isclose(float(setting.get("eps", -1)), PAPER_EPS):
        return None
    key = (setting.get("dataset"), label)
    return key if key in PUBLISHED_TABLE3 else None


# ----------------------------------------------------------------------------- records


def load_record(path: str | Path) -> dict:
    """One attack file as a flat record (predictions as numpy arrays, accuracies in %)."""
    a, attrs = h5io.read_h5(path, ["index", "y", "pred_clean", "pred_adv", "linf", "l2"], kind="attack")
    p = attrs.get("params", {})
    spec = p.get("spec", {}) if isinstance(p, dict) else {}
    kwargs = h5io.read_attr_json(attrs, "attack_kwargs", {}) or {}
    correct_adv = a["pred_adv"] == a["y"]
    fooled = ~correct_adv & (a["pred_clean"] == a["y"])
    mask = None
    if str(attrs["attack_type"]) == "nrf":
        try:  # files made before the masks were recorded have none: their claims are not testable
            mask = h5io.read_h5(path, ["mask_robust"], kind="attack")[0]["mask_robust"].astype(bool)
        except AdvFeaturesError:
            mask = None
    return {
        "kwargs": dict(kwargs),
        "mask_robust": mask,
        "path": str(path),
        "method": str(attrs["method"]),
        "attack": str(attrs["attack"]),
        "type": str(attrs["attack_type"]),
        "bound": str(attrs["bound"]),
        "norm": spec.get("norm", "linf"),
        "mask": str(attrs.get("mask", "")),
        "maximize": bool(kwargs.get("maximize", True)),
        "standard": bool(attrs.get("standard", False)),
        "index": a["index"],
        "y": a["y"],
        "correct_clean": a["pred_clean"] == a["y"],
        "correct_adv": correct_adv,
        "n": int(len(a["y"])),
        "clean_acc": 100.0 * float(np.mean(a["pred_clean"] == a["y"])) if len(a["y"]) else math.nan,
        "degenerate": bool(attrs.get("degenerate", False)),
        "robust_acc": 100.0 * float(np.mean(correct_adv)) if len(a["y"]) else math.nan,
        "median_l2_fooled": float(np.median(a["l2"][fooled])) if fooled.any() else math.nan,
        "max_linf": float(a["linf"].max()) if len(a["linf"]) else math.nan,
    }


def paper_column(r: Mapping) -> str | None:
    """The Table 3 column of the paper this record reproduces (None: no published counterpart)."""
    t, unbounded = r["type"], r["bound"] == "unbounded"
    if t in ("fgsm", "bim", "fab"):
        return t.upper()
    if t == "pgd" and r["norm"] == "linf":
        return "PGD"
    if t == "cw" and unbounded:
        return "CW"
    if t == "apgd_ce":
        return "AA"
    if t == "nrf" and unbounded and r["mask"] == "nonrobust" and r["maximize"]:
        return "NRF"
    return None


def _label(r: Mapping) -> str:
    if r["type"] == "autoattack":
        return "AutoAttack (standard)" if r["standard"] else "AutoAttack (reduced budget)"
    if r["type"] == "nrf":
        g = "G_nr" if r["mask"] == "nonrobust" else "G_r"
        return f"NRF {'max' if r['maximize'] else 'min'} norm {g}"
    return REGISTRY[r["type"]].label


#: Table 3 column order of the paper (Clean, FGSM, BIM, PGD, CW, APGD/AA, FAB, NRF), by attack type;
#: within a type the paper's own column comes first; everything else (L2 PGD, ...) after, in job order
_TYPE_RANK = {"clean": 0, "fgsm": 1, "bim": 2, "pgd": 3, "cw": 4, "apgd_ce": 5, "autoattack": 5, "fab": 6, "nrf": 7}
EXTRA_RANK = len(_T3_COLS)


def column_rank(r: Mapping) -> tuple[int, int]:
    """Sort key of a record's Table 3 column: (paper position or EXTRA_RANK, 0 for the paper's own column)."""
    t = r["type"]
    if t == "pgd" and r.get("norm", "linf") != "linf":
        return (EXTRA_RANK, 1)
    return (_TYPE_RANK.get(t, EXTRA_RANK), 0 if paper_column(r) else 1)


#: wide-table column prefix -> paper position (labels from the registry; only Linf PGD is the paper's)
_LABEL_RANK = {"Clean": 0, **{REGISTRY[t].label + (" (Linf" if t == "pgd" else ""): rank
                              for t, rank in _TYPE_RANK.items() if t in REGISTRY}}


def _label_rank(column: str) -> int:
    """Paper position of a wide-table column name (``label (bound)``); extras last."""
    for prefix, rank in _LABEL_RANK.items():
        if column.startswith(prefix):
            return rank
    return EXTRA_RANK


def table3(records: Sequence[Mapping], setting: Mapping, models: Sequence[str]) -> pd.DataFrame:
    """Long-form Table 3: per model a clean row (largest subset) and one row per attack, in the
    paper's column order (:func:`column_rank`) whatever the order of the jobs."""
    key = paper_setting(setting)
    pub = PUBLISHED_TABLE3.get(key, {}) if key else {}
    rows = []
    for m in models:
        recs = [r for r in records if r["method"] == m]
        if not recs:
            continue
        big = max(recs, key=lambda r: r["n"])
        rows.append({"model": METHOD_LABELS.get(m, m), "method": m, "attack": "clean", "label": "Clean",
                     "bound": "", "n": big["n"], "accuracy": big["clean_acc"],
                     "clean_acc_same_rows": big["clean_acc"], "median_l2_fooled": math.nan, "max_linf": 0.0,
                     "published": pub.get(m, {}).get("Clean", math.nan)})
        for r in sorted(recs, key=column_rank):  # stable: extras keep job order
            col = paper_column(r)
            rows.append({"model": METHOD_LABELS.get(m, m), "method": m, "attack": r["attack"], "label": _label(r),
                         "bound": r["bound"], "n": r["n"], "accuracy": r["robust_acc"],
                         "clean_acc_same_rows": r["clean_acc"], "median_l2_fooled": r["median_l2_fooled"],
                         "max_linf": r["max_linf"],
                         "published": pub.get(m, {}).get(col, math.nan) if col else math.nan})
    return verdicts.add_wilson(pd.DataFrame(rows), ["accuracy", "clean_acc_same_rows"], "n")


def table3_wide(t3: pd.DataFrame) -> pd.DataFrame:
    """Table 3 as in the paper: one row per model, one column per attack (robust accuracy % with
    its Wilson interval, ``paper X`` where the paper has a number), and the row count n per attack."""
    # the gradient ablations belong to Table 4
    t = t3[~t3["label"].str.contains("min norm|norm G_r", regex=True)].copy()
    t["column"] = [f"{lab} ({b})" if isinstance(b, str) and b else lab for lab, b in zip(t["label"], t["bound"])]

    def cell(r) -> str:
        pub = "" if pd.isna(r["published"]) else f" (paper {r['published']:.1f})"
        return interval_cell(r["accuracy"], r.get("accuracy lo"), r.get("accuracy hi")) + pub

    t["cell"] = [cell(r) for _, r in t.iterrows()]
    # paper order whatever the job order, also for a column only some models have
    first = {c: i for i, c in reversed(list(enumerate(t["column"])))}
    order = sorted(first, key=lambda c: (_label_rank(c), first[c]))
    wide = t.pivot(index="model", columns="column", values="cell").reindex(columns=order)
    wide = wide.reindex(list(dict.fromkeys(t["model"]))).reset_index()
    n = t.drop_duplicates("column").set_index("column")["n"].reindex(order)
    wide.loc[len(wide)] = ["n (test rows)"] + [str(int(v)) for v in n]
    return wide


def table3_view(t3: pd.DataFrame) -> pd.DataFrame:
    """The Markdown view of Table 3: :func:`table3_wide` turned so that attacks are rows and
    models columns (as many columns as models, whatever the number of attacks)."""
    wide = table3_wide(t3).set_index("model")
    view = wide.T
    view.index.name = "attack (bound)"
    view.columns.name = None
    view = view.reset_index().rename(columns={"n (test rows)": "n"})
    return view[["attack (bound)", "n"] + [c for c in view.columns if c not in ("attack (bound)", "n")]]


def table4(records: Sequence[Mapping], setting: Mapping, models: Sequence[str]) -> pd.DataFrame:
    """Table 4: NRF-style attacks maximising / minimising the non-robust or robust gradient norm."""
    key = paper_setting(setting)
    pub = PUBLISHED_TABLE4.get(key, {}) if key else {}
    rows = []
    for m in models:
        for r in (r for r in records if r["method"] == m and r["type"] == "nrf"):
            published = pub.get(m, {}).get((r["mask"], r["maximize"]), math.nan) if r["bound"] == "unbounded" else math.nan
            rows.append({"model": METHOD_LABELS.get(m, m), "method": m, "attack": r["attack"],
                         "gradient": "G_nr" if r["mask"] == "nonrobust" else "G_r",
                         "direction": "max" if r["maximize"] else "min", "bound": r["bound"], "n": r["n"],
                         "clean_acc_same_rows": r["clean_acc"], "accuracy": r["robust_acc"],
                         "median_l2_fooled": r["median_l2_fooled"], "published": published})
    return verdicts.add_wilson(pd.DataFrame(rows), ["accuracy", "clean_acc_same_rows"], "n")


# ----------------------------------------------------------------------------- claims


def paired(a: Mapping, b: Mapping) -> tuple[float, float, int]:
    """Robust accuracies (%) of records ``a`` and ``b`` on the test rows both ran on, and that n."""
    common, ia, ib = np.intersect1d(a["index"], b["index"], return_indices=True)
    if len(common) == 0:
        return math.nan, math.nan, 0
    return (100.0 * float(a["correct_adv"][ia].mean()), 100.0 * float(b["correct_adv"][ib].mean()), len(common))


def paired_test(a: Mapping, b: Mapping, alpha: float = 0.05) -> dict:
    """Exact McNemar test of robust correctness under ``a`` vs ``b`` on their common test rows
    (:func:`advfeatures.stats.mcnemar_paired`; fractions)."""
    _, ia, ib = np.intersect1d(a["index"], b["index"], return_indices=True)
    return stats.mcnemar_paired(a["correct_adv"][ia], b["correct_adv"][ib], alpha)


def _find(records, method, pred) -> Mapping | None:
    hits = [r for r in records if r["method"] == method and pred(r)]
    return max(hits, key=lambda r: r["n"]) if hits else None


def _is_nrf(bound: str | None = None, mask="nonrobust", maximize=True):
    return lambda r: (r["type"] == "nrf" and (bound is None or r["bound"] == bound) and r["mask"] == mask
                      and r["maximize"] == maximize)


def _bound_name(r: Mapping) -> str:
    return "unbounded" if r["bound"] == "unbounded" else f"bounded ({r['bound']})"


#: the optimisation settings NRF shares with CW; a CW baseline must use the same ones, so that
#: NRF's extra feature term is the only difference (Kim et al. run both with c 0.1, lr 0.1, 200 steps)
CW_SHARED = ("c", "kappa", "lr", "steps", "stop_checks", "start")


def mask_check(r: Mapping, cfg: verdicts.ClaimSettings, rows: np.ndarray | None = None) -> str:
    """Empty when NRF-type record ``r`` stores IB masks that split the channels (on ``rows``,
    positions in ``r``), else why its claims are not testable."""
    if r["type"] != "nrf":
        return ""
    m = r.get("mask_robust")
    if m is None:
        return (f"attack file of {r['attack']} ({r['method']}) stores no IB masks (made by an older version); "
                "rerun the attack")
    return verdicts.mask_precondition(f"of {r['attack']} ({r['method']})", m if rows is None else m[rows], cfg)


def shared_mask_check(a: Mapping, b: Mapping) -> str:
    """Empty unless two NRF-type records used different IB masks on their common rows."""
    ma, mb = a.get("mask_robust"), b.get("mask_robust")
    if a["type"] != "nrf" or b["type"] != "nrf" or ma is None or mb is None:
        return ""
    _, ia, ib = np.intersect1d(a["index"], b["index"], return_indices=True)
    same = float(np.mean(np.all(ma[ia] == mb[ib], axis=1))) if len(ia) else 1.0
    if same < 1.0:
        return (f"{a['attack']} and {b['attack']} used different IB masks on {100 * (1 - same):.0f}% of their "
                "common rows (rerun both with the same subset and attacks.batch_size)")
    return ""


def claims(records: Sequence[Mapping], models: Sequence[str], *, num_classes: int | None = None,
           cfg: verdicts.ClaimSettings | None = None) -> list[Claim]:
    """Kim et al.'s attack claims, only between matched budgets:

    - Table 3: unbounded NRF stronger than unbounded CW (the paper's comparison: both C&W
      optimisations, same c, lr, steps; NRF adds the feature term); NRF projected to the shared
      Linf eps stronger than PGD, APGD-CE (the paper's "AA" column) and AutoAttack at the same eps.
      Pairs with different budgets (bounded vs unbounded) stay in the tables, without a verdict;
    - Table 4: maximising the norm of G_nr beats minimising it, and beats maximising G_r (same budget).

    Every comparison is paired on the test rows both attacks ran on: exact McNemar test of the
    rows' robust correctness.  Not testable: the model at chance or non-finite on its clean rows,
    fewer than ``min_rows`` common rows, an NRF-type attack whose IB masks are missing or degenerate
    (:func:`mask_check`: with no robust channel, NRF is CW plus a push along the whole margin
    gradient and RF is CW), two NRF-type attacks on different masks, or a CW baseline with
    other optimisation settings than NRF.
    """
    cfg = cfg or verdicts.settings()
    if num_classes is None:
        num_classes = len(np.unique(np.concatenate([r["y"] for r in records]))) if records else 2
    out: list[Claim] = []

    def compare(m, a, b, text, key, extra_pre="", note_extra=""):
        t = paired_test(a, b, cfg.alpha)
        big = max((r for r in records if r["method"] == m), key=lambda r: r["n"])
        _, ia, ib = np.intersect1d(a["index"], b["index"], return_indices=True)
        pre = untestable(
            verdicts.model_precondition(METHOD_LABELS.get(m, m), big["clean_acc"], num_classes, cfg,
                                        degenerate=bool(big.get("degenerate", False))),
            verdicts.rows_precondition("common attacked rows", t["n"], cfg),
            mask_check(a, cfg, ia), mask_check(b, cfg, ib), shared_mask_check(a, b), extra_pre,
        )
        note = (f"{_label(a)} ({a['bound']}): {100 * t['p_a']:.1f}% vs {_label(b)} ({b['bound']}): "
                f"{100 * t['p_b']:.1f}% robust accuracy on the same {t['n']} test rows; discordant rows "
                f"{t['n10']} / {t['n01']}; measured = difference in points{note_extra}")
        for r in (a, b):
            if r.get("mask_robust") is not None:
                mr = r["mask_robust"]
                note += (f"; {r['attack']} masks: {mr.sum(1).mean():.2f} robust / {(~mr).sum(1).mean():.2f} "
                         "non-robust channels per row")
                break
        return Claim(STUDY, text, 100 * t["diff"], "<", 0.0, note, min_effect=cfg.min_effect(STUDY, key),
                     ci_low=100 * t["ci_low"], ci_high=100 * t["ci_high"], p_value=t["p_value"], n=t["n"],
                     test="exact McNemar (statsmodels), paired rows; Newcombe interval", alpha=cfg.alpha,
                     untestable=pre, key=f"attacks.{key}")

    def cw_settings(nrf_r, cw_r) -> str:
        diff = [k for k in CW_SHARED if nrf_r["kwargs"].get(k) != cw_r["kwargs"].get(k)]
        if not diff:
            return ""
        return ("CW and NRF differ in " + ", ".join(
            f"{k} ({cw_r['kwargs'].get(k)} vs {nrf_r['kwargs'].get(k)})" for k in diff)
            + ": not only NRF's feature term; give both the same in attacks.suite")

    for m in models:
        label = METHOD_LABELS.get(m, m)
        nrf_u = _find(records, m, _is_nrf("unbounded"))
        if nrf_u is not None:
            cw = _find(records, m, lambda r: r["type"] == "cw" and r["bound"] == "unbounded")
            if cw is not None:
                out.append(compare(m, nrf_u, cw, f"{label}: unbounded NRF stronger than unbounded CW (paper Table 3)",
                                   "nrf_vs_cw", cw_settings(nrf_u, cw)))
        nrf_b = _find(records, m, lambda r: _is_nrf()(r) and r["bound"] != "unbounded")
        if nrf_b is not None:
            for bname, key, pred in (
                ("PGD", "nrf_vs_pgd", lambda r: r["type"] == "pgd" and r["norm"] == "linf"),
                ("APGD-CE", "nrf_vs_apgd", lambda r: r["type"] == "apgd_ce"),
                ("AutoAttack", "nrf_vs_autoattack", lambda r: r["type"] == "autoattack"),
            ):
                base = _find(records, m, lambda r, pred=pred, b=nrf_b["bound"]: pred(r) and r["bound"] == b)
                if base is None:
                    continue
                out.append(compare(m, nrf_b, base,
                                   f"{label}: NRF stronger than {bname} at the same budget ({nrf_b['bound']})", key))
        for up in (nrf_u, nrf_b):
            if up is None:
                continue
            down = _find(records, m, _is_nrf(up["bound"], "nonrobust", False))
            if down is not None:
                out.append(compare(m, up, down, f"{label}: maximising the norm of G_nr beats minimising it "
                                   f"({_bound_name(up)}; paper Table 4)", "max_vs_min_gnr"))
            r_up = _find(records, m, _is_nrf(up["bound"], "robust", True))
            if r_up is not None:
                out.append(compare(m, up, r_up, f"{label}: maximising the norm of G_nr beats maximising that of G_r "
                                   f"({_bound_name(up)}; paper Table 4)", "max_gnr_vs_max_gr"))
    return out


# ----------------------------------------------------------------------------- figure


def eps_figure(sweeps: pd.DataFrame, eps_mark: float | None = None):
    """Robust accuracy (%) against Linf eps, one line per (model, attack)."""
    from advfeatures.reporting import matplotlib_headless

    matplotlib_headless()
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    styles = {}
    for (method, attack), g in sweeps.groupby(["method", "attack"], sort=False):
        g = g.sort_values("eps")
        ls = styles.setdefault(attack, ["-", "--", ":", "-."][len(styles) % 4])
        n = int(g["n"].max())
        ax.plot(g["eps"], 100 * g["robust_acc"], ls, marker="o", ms=3,
                label=f"{METHOD_LABELS.get(method, method)} / {attack} (n={n})")
    if eps_mark is not None:
        ax.axvline(eps_mark, color="grey", lw=0.8, alpha=0.6)
    ax.set_xlabel("Linf eps")
    ax.set_ylabel("robust accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def read_sweeps(paths: Iterable[str | Path]) -> pd.DataFrame:
    paths = list(paths)
    return pd.concat([pd.read_csv(p) for p in paths], ignore_index=True) if paths else pd.DataFrame(
        columns=["method", "attack", "eps", "n", "robust_acc", "max_linf"])
