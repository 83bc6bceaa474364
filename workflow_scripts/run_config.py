"""Rule run_config: adapter of advfeatures.stages.run_config (rerun by hand: python -m advfeatures.stages.run_config --help)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's package: its files are inputs
from advfeatures.stages import run_config  # noqa: E402
from advfeatures.stages.job import snakemake_adapter  # noqa: E402

snakemake_adapter(run_config.STAGES, snakemake)  # noqa: F821
