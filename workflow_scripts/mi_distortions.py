"""Rule mi_distortions: accuracy, loss and MI of the final model under saturation / patch shuffling."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import run, start  # noqa: E402

from advfeatures.data import load_dataset  # noqa: E402
from advfeatures.mutual_info import distortion_mi, write_rows  # noqa: E402
from advfeatures.training import model_from_checkpoint  # noqa: E402


def main(snakemake):
    log, device = start(snakemake)
    method = snakemake.wildcards.method
    model = model_from_checkpoint(snakemake.input.model, map_location=device)
    data = load_dataset(snakemake.input.data)
    rows = distortion_mi(
        model, data, dict(snakemake.params.mi), seed=snakemake.params.seed, method=method,
        device=device, progress=lambda s: log.info("%s: %s", method, s),
    )
    write_rows(rows, snakemake.output[0])
    log.info("wrote %s (%d rows)", snakemake.output[0], len(rows))


run(main, snakemake)  # noqa: F821
