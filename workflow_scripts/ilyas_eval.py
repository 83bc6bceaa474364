"""Rule ilyas_eval_reference: a model trained on D, evaluated as the synthetic-set models are."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import pandas as pd  # noqa: E402
from _common import run, start  # noqa: E402

from advfeatures.data import load_dataset  # noqa: E402
from advfeatures.reporting import write_table  # noqa: E402
from advfeatures.synthesis import attack_configs, evaluate_model, transfer_rate  # noqa: E402
from advfeatures.training import model_from_checkpoint  # noqa: E402


def main(snakemake):
    log, device = start(snakemake)
    data = load_dataset(snakemake.input.data)
    model = model_from_checkpoint(snakemake.input.model, device)
    source = model_from_checkpoint(snakemake.input.source, device)
    ev = dict(snakemake.params.eval)
    attacks = attack_configs(ev["attacks"])
    seed = snakemake.params.seed
    row = {"set": f"D ({snakemake.wildcards.method})", "train_arch": snakemake.wildcards.arch,
           "arch": snakemake.wildcards.arch, "arch_options": ""}
    row |= evaluate_model(model, data, attacks, subset=ev["subset"], seed=seed, batch_size=ev["batch_size"])
    row |= transfer_rate(source, model, data, attacks[ev["transfer_attack"]], subset=ev["subset"], seed=seed,
                         batch_size=ev["batch_size"])
    log.info("evaluation on the test set: %s", row)
    write_table(pd.DataFrame([row]), snakemake.output[0])


run(main, snakemake)  # noqa: F821
