"""Rule convert_pretrained: one pretrained checkpoint as the pipeline's model.pt + metrics.csv."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import run, start  # noqa: E402

from advfeatures.data import load_dataset  # noqa: E402
from advfeatures.pretrained import PretrainedConfig, convert  # noqa: E402
from advfeatures.training import AttackConfig  # noqa: E402


def main(snakemake):
    log, device = start(snakemake)
    p = snakemake.params.convert
    cfg = PretrainedConfig.from_dict({**p["pretrained"], "path": snakemake.input.source})
    health = convert(
        cfg,
        load_dataset(snakemake.input.data),
        arch=snakemake.wildcards.arch,
        arch_options=dict(snakemake.params.arch_options),
        method=snakemake.wildcards.method,
        model_out=snakemake.output.model,
        metrics_out=snakemake.output.metrics,
        eval_attack=AttackConfig(**p["eval"]["eval_attack"]),
        eval_subset_size=p["eval"]["eval_subset"],
        eval_batch_size=p["eval"]["eval_batch_size"],
        seed=snakemake.params.seed,
        device=device,
    )
    log.info("wrote %s (%s)", snakemake.output.model, health)


run(main, snakemake)  # noqa: F821
