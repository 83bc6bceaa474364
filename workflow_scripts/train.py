"""Rule train: one training method on the prepared dataset."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import run, start  # noqa: E402

from advfeatures.data import load_dataset  # noqa: E402
from advfeatures.training import TrainConfig, train  # noqa: E402


def main(snakemake):
    log, device = start(snakemake)
    p = dict(snakemake.params.train)
    epochs = sorted(set(int(e) for e in p["checkpoint_epochs"]))
    cfg = TrainConfig.from_dict(
        {
            **p,
            "arch": snakemake.wildcards.arch,
            "arch_options": dict(snakemake.params.arch_options),
            "seed": snakemake.params.seed,
            "device": str(device),
            "precision": snakemake.params.runtime["precision"],
            "channels_last": snakemake.params.runtime["channels_last"],
        }
    )
    data = load_dataset(snakemake.input.data)
    train(
        cfg,
        data,
        model_out=snakemake.output.model,
        metrics_out=snakemake.output.metrics,
        checkpoint_outs=dict(zip(epochs, snakemake.output.checkpoints)),
        state_dir=snakemake.params.resume_dir,
    )
    log.info("wrote %s", snakemake.output.model)


run(main, snakemake)  # noqa: F821
