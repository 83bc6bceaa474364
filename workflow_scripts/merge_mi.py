"""Rule merge_mi: adapter of advfeatures.stages.mutual_info (rerun by hand: python -m advfeatures.stages.mutual_info --help)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's package: its files are inputs
from advfeatures.stages import mutual_info  # noqa: E402
from advfeatures.stages.job import snakemake_adapter  # noqa: E402

snakemake_adapter(mutual_info.STAGES, snakemake)  # noqa: F821
