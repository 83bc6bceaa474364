"""Kim et al. Tables 1 and 2 with controls, the beta sweep, t-SNE (bottleneck_tables, bottleneck_tsne)."""

from __future__ import annotations

import logging

from advfeatures import h5io
from advfeatures.reporting import bottleneck as rb
from advfeatures.reporting import (
    matplotlib_headless,
    save_figure,
    verdicts,
    write_claims,
    write_table,
)
from advfeatures.reporting.bottleneck import tsne_figure
from advfeatures.stages.job import Job, main

log = logging.getLogger("advfeatures")


def bottleneck_tables(job: Job) -> None:
    with verdicts.level(verdicts.settings(job.p.claims).alpha):  # every interval at report.claims.alpha
        _bottleneck_tables(job)


def _bottleneck_tables(job: Job) -> None:
    matplotlib_headless()
    p, out = job.p, job.output
    inputs = ["clean"] + list(p.attacks)
    read = lambda path: h5io.read_h5(path, kind="bottleneck")[0]  # noqa: E731
    files = iter(job.input.table)  # expand() order: method-major, then input
    recs = {(m, i): read(next(files)) for m in p.methods for i in inputs}
    files = iter(job.input.sweep)
    sweep_recs = {(m, b): read(next(files)) for m in p.sweep_methods for b in p.betas}
    num_classes = int(max(int(r["y"].max()) for r in recs.values()) + 1)

    t1 = rb.table1(recs, p.methods, inputs, dataset=p.dataset, arch=p.arch)
    write_table(t1, out.table1, out.table1_md, title=f"Kim et al. Table 1 ({p.dataset}, {p.arch}, beta {p.beta})",
                note=rb.__doc__.split("Table 2")[0].split("Table 1 (``kim_table1``): ")[-1].strip()
                + " Accuracies with their 95% Wilson interval; the CSV also has the channel count.", drop=["channels"])
    t2 = rb.table2(recs, p.methods, p.attacks, num_classes=num_classes, dataset=p.dataset, arch=p.arch)
    write_table(t2, out.table2, out.table2_md, title=f"Kim et al. Table 2 ({p.dataset}, {p.arch}, beta {p.beta})",
                note="Agreement (%) of NR. predictions with the adversarial prediction on successfully attacked "
                     "rows. nr_agree: IB on the attacked input with the TRUE label (paper); nr_agree_predlabel: "
                     "IB with the model's (adversarial) prediction as label; nr_agree_random: random mask with "
                     "the paper mask's channel count; chance = 1/(K-1); nonrobust_channels: mean channels Z_nr keeps "
                     "(when it keeps nearly all, NR. = Int. = the adversarial prediction by construction). "
                     "Intervals: 95% Wilson; the CSV also has n (all rows) and the channel count.",
                drop=["n", "channels"])
    sw = rb.beta_sweep(sweep_recs, p.sweep_methods, p.betas)
    write_table(sw, out.sweep, out.sweep_md, title="IB beta sweep on clean inputs (Kim et al. Fig. 5)")
    save_figure(rb.beta_sweep_figure(sw), out.sweep_fig)
    cl = rb.claims(t1, t2, sw, recs, sweep_recs, cfg=verdicts.settings(p.claims))
    df = write_claims(cl, out.claims)
    for row in df.itertuples(index=False):
        log.info("claim %s: %s (measured %.3g %s %.3g; %s)", row.verdict, row.claim, row.measured, row.comparison,
                 row.threshold, row.reason)


def bottleneck_tsne(job: Job) -> None:
    matplotlib_headless()
    t = job.p.tsne
    clean, _ = h5io.read_h5(job.input.clean, ["index", "y", "z_pool", "mask_robust"], kind="bottleneck")
    attacked, _ = h5io.read_h5(job.input.attacked, ["index", "z_pool"], kind="bottleneck")
    fig = tsne_figure(
        clean, attacked, points=int(t["points"]), perplexity=float(t["perplexity"]), seed=int(job.p.seed),
        title=f"t-SNE of mean-pooled Z, Z_r, Z_nr: {t['method']} model, clean vs {t['attack']} inputs "
              "(masks from the clean input, true label)",
    )
    save_figure(fig, job.output[0])


STAGES = {"bottleneck_tables": bottleneck_tables, "bottleneck_tsne": bottleneck_tsne}

if __name__ == "__main__":
    main(STAGES)
