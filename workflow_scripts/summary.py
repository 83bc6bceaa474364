"""Rule summary: results/summary.md from every study's tables and the claims."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import run, start  # noqa: E402

from advfeatures.reporting.summary import build_summary  # noqa: E402


def main(snakemake):
    start(snakemake)
    tables = iter(snakemake.input.tables)
    sections = [("Training", [snakemake.input.training])]
    sections += [(title, [next(tables) for _ in names]) for title, names in snakemake.params.studies.items()]
    build_summary(
        sections,
        snakemake.input.claims,
        snakemake.output[0],
        snakemake.params.figures,
        bench_dir=snakemake.params.bench_dir,
    )


run(main, snakemake)  # noqa: F821
