"""Figures across studies (claims_figures, summary_figures): the claims forest plots and verdict
overview, paper-vs-ours, Ilyas et al. Fig. 2b-style bars and the training curves."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from advfeatures.reporting import figures, save_figure
from advfeatures.stages.job import Job, main

log = logging.getLogger("advfeatures")


def claims_figures(job: Job) -> None:
    """The run's claims.csv -> the forest plot of all studies, the verdict overview, and one
    forest plot per study's claims file (``output.studies`` in the order of ``input.claims``)."""
    claims = pd.read_csv(job.input.all)
    fig, data = figures.claims_forest(claims, "Claims of all studies: effect, 95% interval, threshold and verdict")
    save_figure(fig, job.output.forest)
    log.info("forest plot: %d claims drawn, %d not testable", len(data["plotted"]), len(data["not_testable"]))
    fig, _ = figures.verdict_overview(claims)
    save_figure(fig, job.output.overview)
    for src, out in zip(job.input.claims, job.output.studies, strict=True):
        df = pd.read_csv(src)
        study = str(df["study"].iloc[0]) if len(df) else Path(src).stem
        fig, _ = figures.claims_forest(df, figures.STUDY_TITLES.get(study, study))
        save_figure(fig, out)


def summary_figures(job: Job) -> None:
    """Paper vs this run (every table with published numbers), Ilyas et al. Fig. 2b-style bars,
    training curves of every method."""
    tables = {Path(p).stem: pd.read_csv(p) for p in job.input.tables}
    fig, data = figures.paper_vs_ours(figures.paper_panels(tables), setting=str(job.p.setting))
    save_figure(fig, job.output.paper_vs_ours)
    for title, d in data.items():
        log.info("paper vs ours, %s: %d rows%s", title, len(d["rows"]), f" ({d['note']})" if d["note"] else "")
    if "ilyas_datasets" in tables:
        fig, _ = figures.ilyas_bars(tables["ilyas_datasets"])
        save_figure(fig, job.output.ilyas_bars)
    metrics = {m: pd.read_csv(p) for m, p in zip(job.p.methods, job.input.metrics, strict=True)}
    fig, _ = figures.training_curves(metrics)
    save_figure(fig, job.output.training_curves)


STAGES = {"claims_figures": claims_figures, "summary_figures": summary_figures}

if __name__ == "__main__":
    main(STAGES)
