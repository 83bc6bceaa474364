"""Kim et al. Tables 3 and 4, the robust-accuracy-vs-eps figure, the claims (attack_tables)."""

from __future__ import annotations

import logging

from advfeatures.reporting import attacks as rep
from advfeatures.reporting import save_figure, verdicts, write_claims, write_markdown, write_table
from advfeatures.stages.job import Job, main

log = logging.getLogger("advfeatures")


NOTE3 = (
    "Accuracy (%) on `n` seeded test rows (each attack may use a nested subset; `clean_acc_same_rows` is the "
    "clean accuracy on those rows). `bound`: the perturbation budget (`unbounded` = no norm bound, only [0, 1], "
    "as the reference code runs CW and NRF). The paper's AA column is APGD-CE in its code, so its published value "
    "sits beside APGD-CE. `published`: Kim, Lee, Ro 2021 Table 3, only when this run matches the paper's setting."
)
NOTE4 = (
    "NRF-style attacks maximising or minimising the norm of the non-robust (G_nr) or robust (G_r) feature "
    "gradient (masks from the information bottleneck on the clean input). `published`: Kim, Lee, Ro 2021 "
    "Table 4 (unbounded attacks), only when this run matches the paper's setting."
)


def attack_tables(job: Job) -> None:
    with verdicts.level(verdicts.settings(job.p.claims).alpha):  # every interval at report.claims.alpha
        _attack_tables(job)


def _attack_tables(job: Job) -> None:
    setting, models = dict(job.p.setting), list(job.p.models)
    records = [rep.load_record(p) for p in job.input.attacks]
    out = job.output
    t3 = rep.table3(records, setting, models)
    # CSV: the tidy long form (n, norms per cell); Markdown: the paper's shape (models x attacks)
    write_table(t3, out.table3)
    write_markdown(rep.table3_view(t3), out.table3_md, title="Kim et al. Table 3: robust accuracy (%) per attack",
                   note=NOTE3 + " This view shows accuracy with its 95% Wilson interval (the paper's value in "
                   "parentheses); the CSV has every column.")
    t4 = rep.table4(records, setting, models)
    write_table(t4, out.table4, out.table4_md, title="Kim et al. Table 4: gradient ablations", note=NOTE4,
                drop=["method"])
    sweeps = rep.read_sweeps(job.input.sweeps)
    save_figure(rep.eps_figure(sweeps, eps_mark=float(setting["eps"])), out.figure)
    cfg = verdicts.settings(job.p.claims)
    df = write_claims(rep.claims(records, models, cfg=cfg), out.claims)
    for row in df.itertuples():
        log.info("claim %s: %s (%.2f; %s)", row.verdict, row.claim, row.measured, row.reason)


STAGES = {"attack_tables": attack_tables}

if __name__ == "__main__":
    main(STAGES)
