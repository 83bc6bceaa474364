"""Rule attack_tables: Kim et al. Tables 3 and 4, the robust-accuracy-vs-eps figure, the claims."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import run, start  # noqa: E402

from advfeatures.reporting import attacks as rep  # noqa: E402
from advfeatures.reporting import save_figure, verdicts, write_claims, write_markdown, write_table  # noqa: E402

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


def main(snakemake):
    log, _ = start(snakemake)
    setting, models = dict(snakemake.params.setting), list(snakemake.params.models)
    records = [rep.load_record(p) for p in snakemake.input.attacks]
    out = snakemake.output
    t3 = rep.table3(records, setting, models)
    # CSV: the tidy long form (n, norms per cell); Markdown: the paper's shape (models x attacks)
    write_table(t3, out.table3)
    write_markdown(rep.table3_wide(t3), out.table3_md, title="Kim et al. Table 3: robust accuracy (%) per attack",
                   note=NOTE3 + " This Markdown view shows accuracy (published in parentheses); the CSV has every column.")
    t4 = rep.table4(records, setting, models)
    write_table(t4, out.table4, out.table4_md, title="Kim et al. Table 4: gradient ablations", note=NOTE4)
    sweeps = rep.read_sweeps(snakemake.input.sweeps)
    save_figure(rep.eps_figure(sweeps, eps_mark=float(setting["eps"])), out.figure)
    cfg = verdicts.settings(snakemake.params.claims)
    df = write_claims(rep.claims(records, models, cfg=cfg), out.claims)
    for row in df.itertuples():
        log.info("claim %s: %s (%.2f; %s)", row.verdict, row.claim, row.measured, row.reason)


run(main, snakemake)  # noqa: F821
