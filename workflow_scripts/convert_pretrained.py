"""Rule convert_pretrained: adapter of advfeatures.stages.convert_pretrained (rerun by hand: python -m advfeatures.stages.convert_pretrained --help)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's package: its files are inputs
from advfeatures.stages import convert_pretrained  # noqa: E402
from advfeatures.stages.job import snakemake_adapter  # noqa: E402

snakemake_adapter(convert_pretrained.STAGES, snakemake)  # noqa: F821
