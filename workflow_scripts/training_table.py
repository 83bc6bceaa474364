"""Rule training_table: final accuracies and wall times of the trained models."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import run, start  # noqa: E402

from advfeatures.reporting.summary import write_training_table  # noqa: E402


def main(snakemake):
    start(snakemake)
    methods = snakemake.params.methods
    write_training_table(
        dict(zip(methods, snakemake.input.metrics)),
        dict(zip(methods, snakemake.params.benchmarks)),
        snakemake.output.csv,
        snakemake.output.md,
        attack=snakemake.params.attack,
    )


run(main, snakemake)  # noqa: F821
