"""Rule combine_claims: adapter of advfeatures.stages.report_replicates (rerun by hand: python -m advfeatures.stages.report_replicates --help)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's package: its files are inputs
from advfeatures.stages import report_replicates  # noqa: E402
from advfeatures.stages.job import snakemake_adapter  # noqa: E402

snakemake_adapter(report_replicates.STAGES, snakemake)  # noqa: F821
