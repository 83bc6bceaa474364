"""Rule mi_distortions: adapter of advfeatures.stages.mi_distortions (rerun by hand: python -m advfeatures.stages.mi_distortions --help)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's package: its files are inputs
from advfeatures.stages import mi_distortions  # noqa: E402
from advfeatures.stages.job import snakemake_adapter  # noqa: E402

snakemake_adapter(mi_distortions.STAGES, snakemake)  # noqa: F821
