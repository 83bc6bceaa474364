"""Rule train_synthetic: standard training on one synthetic set, evaluation on the original test set."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from _common import run, start  # noqa: E402

from advfeatures import h5io  # noqa: E402
from advfeatures.data import load_dataset  # noqa: E402
from advfeatures.reporting import write_table  # noqa: E402
from advfeatures.synthesis import attack_configs, evaluate_model, synthetic_dataset, transfer_rate  # noqa: E402
from advfeatures.training import TrainConfig, model_from_checkpoint, train  # noqa: E402


def main(snakemake):
    log, device = start(snakemake)
    wc = snakemake.wildcards
    spec = dict(snakemake.params.model)
    cfg = TrainConfig.from_dict(
        {
            **dict(snakemake.params.train),
            "arch": spec["arch"],
            "arch_options": dict(spec["options"]),
            "checkpoint_epochs": [],
            "seed": snakemake.params.seed,
            "device": str(device),
            "precision": snakemake.params.runtime["precision"],
            "channels_last": snakemake.params.runtime["channels_last"],
        }
    )
    base = load_dataset(snakemake.input.data)
    arrays, _ = h5io.read_h5(snakemake.input.synthetic, ["x", "y"], kind="synthetic")
    data = synthetic_dataset(base, torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["y"]), wc.kind)
    log.info("training %s (%s) on %s: %d images", wc.train_arch, spec, wc.kind, len(data.x_train))
    rows = train(
        cfg, data, model_out=snakemake.output.model, metrics_out=snakemake.output.metrics,
        state_dir=snakemake.params.resume_dir,
        chance_check=False,  # near- or below-chance accuracy on the original test set is a result
    )
    model = model_from_checkpoint(snakemake.output.model, device)
    source = model_from_checkpoint(snakemake.input.source, device)
    ev = dict(snakemake.params.eval)
    attacks = attack_configs(ev["attacks"])
    row = {"set": wc.kind, "train_arch": wc.train_arch, "arch": spec["arch"], "arch_options": str(spec["options"])}
    row |= evaluate_model(model, base, attacks, subset=ev["subset"], seed=snakemake.params.seed, batch_size=ev["batch_size"])
    row |= transfer_rate(
        source, model, base, attacks[ev["transfer_attack"]], subset=ev["subset"],
        seed=snakemake.params.seed, batch_size=ev["batch_size"],
    )
    row["train_seconds"] = sum(r["epoch_seconds"] for r in rows)
    log.info("evaluation on the original test set: %s", row)
    write_table(pd.DataFrame([row]), snakemake.output.eval)


run(main, snakemake)  # noqa: F821
