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
    targets = pd.concat([pd.read_csv(f) for f in snakemake.input.targets], ignore_index=True)
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
    write_table(df, snakemake.output.table, snakemake.output.table_md,
                title=f"Transfer to models trained on D vs accuracy trained on {p.kind} (paper Fig. 3)", note=note)
    save_figure(ilyas.transfer_figure(df, p.kind, p.attack), snakemake.output.figure)
    log.info("transfer table:\n%s", df.to_string(index=False))


run(main, snakemake)  # noqa: F821
