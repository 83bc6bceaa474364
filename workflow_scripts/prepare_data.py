"""Rule prepare_data: write data/{dataset}.h5 from the configured source."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import run, start  # noqa: E402

from advfeatures.data import prepare_dataset  # noqa: E402


def main(snakemake):
    log, _ = start(snakemake)
    p = snakemake.params.dataset
    out = prepare_dataset(
        p["name"],
        snakemake.output[0],
        root=p.get("root"),
        download=p.get("download", True),
        seed=p["seed"],
        subset_train=p.get("subset_train"),
        subset_test=p.get("subset_test"),
        params=dict(p),
    )
    log.info("wrote %s", out)


run(main, snakemake)  # noqa: F821
