"""Rule merge_mi: concatenate the per-job MI CSVs into one tidy CSV per study part."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import run, start  # noqa: E402

from advfeatures.mutual_info import merge_csvs  # noqa: E402


def main(snakemake):
    log, _ = start(snakemake)
    for key in ("epochs", "distortions"):
        n = merge_csvs(list(snakemake.input[key]), snakemake.output[key])
        log.info("wrote %s (%d rows)", snakemake.output[key], n)


run(main, snakemake)  # noqa: F821
