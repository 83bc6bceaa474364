"""Rule transfer_target: one architecture trained by standard training on the original D, and the
transfer rate to it of adversarial examples made on the standard source model (Ilyas Fig. 3)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import pandas as pd  # noqa: E402
from _common import run, start  # noqa: E402

from advfeatures.data import load_dataset  # noqa: E402
from advfeatures.reporting import write_table  # noqa: E402
from advfeatures.synthesis import attack_configs, evaluate_model, transfer_rate  # noqa: E402
from advfeatures.training import TrainConfig, model_from_checkpoint, train  # noqa: E402
from advfeatures.utils import derive_seed  # noqa: E402


def main(snakemake):
    log, device = start(snakemake)
    wc, seed = snakemake.wildcards, int(snakemake.params.seed)
    spec = dict(snakemake.params.model)
    # own seed per target: the main architecture's target is an independent copy, not the source
    cfg = TrainConfig.from_dict(
        {
            **dict(snakemake.params.train),
            "arch": spec["arch"],
            "arch_options": dict(spec["options"]),
            "checkpoint_epochs": [],
            "seed": derive_seed(seed, "transfer_target", wc.train_arch),
            "device": str(device),
            "precision": snakemake.params.runtime["precision"],
            "channels_last": snakemake.params.runtime["channels_last"],
        }
    )
    data = load_dataset(snakemake.input.data)
    log.info("training transfer target %s (%s) on D: %d images", wc.train_arch, spec, len(data.x_train))
    rows = train(cfg, data, model_out=snakemake.output.model, metrics_out=snakemake.output.metrics,
                 state_dir=snakemake.params.resume_dir)
    target = model_from_checkpoint(snakemake.output.model, device)
    source = model_from_checkpoint(snakemake.input.source, device)
    ev = dict(snakemake.params.eval)
    name = ev["transfer_attack"]
    attack = attack_configs(ev["attacks"])[name]
    row = {"set": "D", "train_arch": wc.train_arch, "arch": spec["arch"], "arch_options": str(spec["options"])}
    row |= evaluate_model(target, data, {name: attack}, subset=ev["subset"], seed=seed, batch_size=ev["batch_size"])
    row |= transfer_rate(source, target, data, attack, subset=ev["subset"], seed=seed, batch_size=ev["batch_size"])
    row["train_seconds"] = sum(r["epoch_seconds"] for r in rows)
    log.info("transfer target on the original test set: %s", row)
    write_table(pd.DataFrame([row]), snakemake.output.eval)


run(main, snakemake)  # noqa: F821
