"""Rule gather_claims: concatenate the stages' claims into results/claims.csv."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import run, start  # noqa: E402

from advfeatures.reporting import gather_claims  # noqa: E402


def main(snakemake):
    log, _ = start(snakemake)
    df = gather_claims(snakemake.input.claims, snakemake.output[0])
    log.info("%d claims: %s", len(df), df["verdict"].value_counts().to_dict())


run(main, snakemake)  # noqa: F821
