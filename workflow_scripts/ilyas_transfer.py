"""Rule ilyas_transfer: test accuracy on one synthetic set vs transfer rate, per architecture."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import pandas as pd  # noqa: E402
from _common import run, start  # noqa: E402

from advfeatures.reporting import ilyas, matplotlib_headless, save_figure, write_table  # noqa: E402


def main(snakemake):
    log, _ = start(snakemake)
    matplotlib_headless()
    p = snakemake.params
    evals = pd.concat([pd.read_csv(f) for f in snakemake.input.evals], ignore_index=True)
    df = ilyas.transfer_table(evals, p.kind)
    note = (
        f"Each architecture trained by standard training on {p.kind}; transfer rate: share of untargeted "
        f"{p.attack} PGD examples made on the standard source model (on test rows both models get right and "
        "the source gets wrong) that also fool the architecture (n = 'transfer n')."
    )
    if len(df) >= 3:
        corr = df.iloc[:, 3].corr(df["transfer rate"])
        note += f" Pearson correlation of the two columns: {corr:.2f}."
    write_table(df, snakemake.output.table, snakemake.output.table_md,
                title=f"Transferability vs accuracy on {p.kind} (paper Fig. 3)", note=note)
    save_figure(ilyas.transfer_figure(df, p.kind, p.attack), snakemake.output.figure)
    log.info("transfer table:\n%s", df.to_string(index=False))


run(main, snakemake)  # noqa: F821
