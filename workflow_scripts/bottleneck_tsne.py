"""Rule bottleneck_tsne: t-SNE of pooled Z, Z_r, Z_nr for clean and attacked inputs (Kim et al. Fig. 2)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import run, start  # noqa: E402

from advfeatures import h5io  # noqa: E402
from advfeatures.reporting import matplotlib_headless, save_figure  # noqa: E402
from advfeatures.reporting.bottleneck import tsne_figure  # noqa: E402


def main(snakemake):
    start(snakemake)
    matplotlib_headless()
    t = snakemake.params.tsne
    clean, _ = h5io.read_h5(snakemake.input.clean, ["index", "y", "z_pool", "mask_robust"], kind="bottleneck")
    attacked, _ = h5io.read_h5(snakemake.input.attacked, ["index", "z_pool"], kind="bottleneck")
    fig = tsne_figure(
        clean, attacked, points=int(t["points"]), perplexity=float(t["perplexity"]), seed=int(snakemake.params.seed),
        title=f"t-SNE of mean-pooled Z, Z_r, Z_nr: {t['method']} model, clean vs {t['attack']} inputs "
              "(masks from the clean input, true label)",
    )
    save_figure(fig, snakemake.output[0])


run(main, snakemake)  # noqa: F821
