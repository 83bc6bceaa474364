"""Ilyas et al. datasets table, samples, claims, transfer figure (ilyas_report, ilyas_transfer)."""

from __future__ import annotations

import logging

import pandas as pd

from advfeatures import h5io
from advfeatures.data import load_dataset
from advfeatures.reporting import (
    ilyas,
    matplotlib_headless,
    save_figure,
    verdicts,
    write_claims,
    write_table,
)
from advfeatures.stages.job import Job, main
from advfeatures.utils import derive_seed

log = logging.getLogger("advfeatures")


def ilyas_report(job: Job) -> None:
    with verdicts.level(verdicts.settings(job.p.claims).alpha):  # every interval at report.claims.alpha
        _ilyas_report(job)


def _ilyas_report(job: Job) -> None:
    matplotlib_headless()
    p = job.p
    data = load_dataset(job.input.data)
    evals = pd.concat([pd.read_csv(f) for f in job.input.evals], ignore_index=True)
    reference = pd.concat([pd.read_csv(f) for f in job.input.reference], ignore_index=True)
    sets, stats = {}, {}
    for path in job.input.synthetic:
        arrays, attrs = h5io.read_h5(path, kind="synthetic")
        kind = str(attrs["synthetic_kind"])
        sets[kind] = arrays
        stats[kind] = {
            "label_hit": float((arrays["source_pred"] == arrays["y"]).mean()),
            "rep_distance": float(arrays["rep_distance"].mean()),
        }
        if t := attrs.get("params", {}).get("targeted"):  # the budget of D_rand / D_det
            stats[kind]["budget"] = f"targeted L2 eps {t['eps']:g}, {t['steps']} steps of {t['alpha']:g}"
    with_pub = ilyas.published_applies(p.dataset, p.arch, p.eval["attacks"])
    df = ilyas.datasets_table(evals, reference, stats, robust_method=p.robust_method, with_published=with_pub)
    note = (
        f"Fresh {p.arch} models trained by standard training on each set, evaluated on the ORIGINAL test set "
        f"({int(evals['n_test'].iloc[0])} rows); robust acc under PGD "
        + ", ".join(f"{k}: eps {a['eps']}, {a['steps']} steps" for k, a in p.eval["attacks"].items())
        + ". 'source model agrees with label': share of synthetic images that the model they were made "
        "from assigns their training label. "
        + ("Published: Ilyas et al. 2019, CIFAR-10 ResNet-50, L2 eps 0.25." if with_pub
           else "Published columns empty: this run is not the paper's setting (CIFAR-10, ResNet-50, L2 eps 0.25).")
    )
    write_table(df, job.output.table, job.output.table_md,
                title=f"Ilyas et al. datasets on {p.dataset} / {p.arch}", note=note)
    first = next(iter(sets.values()))
    rows = ilyas.sample_rows(first["source_index"], first["y_source"], 1, derive_seed(p.seed, "ilyas_samples"))
    fig = ilyas.samples_figure(data.x_train.numpy(), sets, rows, data.classes)
    save_figure(fig, job.output.samples)
    cfg = verdicts.settings(p.claims)
    l2 = p.eval["attacks"].get("l2") or {}
    budget = f"L2 eps {l2['eps']} ({l2.get('steps')} PGD steps)" if "eps" in l2 else ""
    cl = write_claims(ilyas.claims(evals, reference, data.num_classes, cfg, synthetic_stats=stats, eval_budget=budget),
                      job.output.claims)
    log.info("table:\n%s", df.to_string(index=False))
    log.info("claims:\n%s", cl.to_string(index=False))


def ilyas_transfer(job: Job) -> None:
    with verdicts.level(verdicts.settings(job.p.claims).alpha):  # every interval at report.claims.alpha
        _ilyas_transfer(job)


def _ilyas_transfer(job: Job) -> None:
    matplotlib_headless()
    p = job.p
    evals = pd.concat([pd.read_csv(f) for f in job.input.evals], ignore_index=True)
    targets = pd.concat([pd.read_csv(f) for f in job.input.targets], ignore_index=True)
    df = ilyas.transfer_table(evals, targets, p.kind)
    note = (
        f"Paper Fig. 3. Transfer rate: share of untargeted {p.attack} PGD examples made on the standard "
        "source model (arch.name trained on D) that also fool the target, each architecture trained by "
        "standard training on the ORIGINAL D with its own seed (counted on test rows both models get right "
        f"and the source gets wrong; n = 'transfer n'). x: the architecture's test accuracy when trained on "
        f"{p.kind} (synthesis.transfer.kind)."
    )
    r, pval = ilyas.transfer_correlation(df, p.kind)
    note += (f" Pearson correlation of x and transfer rate: r = {r:.2f} (p = {pval:.2g}, {len(df)} architectures)."
             if r == r else f" Pearson correlation: undefined ({len(df)} architectures or a constant column).")
    write_table(df, job.output.table, job.output.table_md,
                title=f"Transfer to models trained on D vs accuracy trained on {p.kind} (paper Fig. 3)", note=note)
    save_figure(ilyas.transfer_figure(df, p.kind, p.attack), job.output.figure)
    log.info("transfer table:\n%s", df.to_string(index=False))
    cl = write_claims([ilyas.transfer_claim(df, p.kind, verdicts.settings(p.claims))], job.output.claims)
    log.info("claims:\n%s", cl.to_string(index=False))


STAGES = {"ilyas_report": ilyas_report, "ilyas_transfer": ilyas_transfer}

if __name__ == "__main__":
    main(STAGES)
