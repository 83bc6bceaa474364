"""Rule prepare_data: adapter of advfeatures.stages.data (rerun by hand: python -m advfeatures.stages.data --help)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's package: its files are inputs
from advfeatures.stages import data  # noqa: E402
from advfeatures.stages.job import snakemake_adapter  # noqa: E402

snakemake_adapter(data.STAGES, snakemake)  # noqa: F821
