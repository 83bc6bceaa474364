"""Rule attack: adapter of advfeatures.stages.attack (rerun by hand: python -m advfeatures.stages.attack --help)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's package: its files are inputs
from advfeatures.stages import attack  # noqa: E402
from advfeatures.stages.job import snakemake_adapter  # noqa: E402

snakemake_adapter(attack.STAGES, snakemake)  # noqa: F821
