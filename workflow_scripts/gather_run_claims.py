"""Rule gather_run_claims: adapter of advfeatures.stages.report (rerun by hand: python -m advfeatures.stages.report --help)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's package: its files are inputs
from advfeatures.stages import report  # noqa: E402
from advfeatures.stages.job import snakemake_adapter  # noqa: E402

snakemake_adapter(report.STAGES, snakemake)  # noqa: F821
