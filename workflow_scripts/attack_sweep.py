"""Rule attack_sweep: robust accuracy of one Linf attack against the eps list (csv)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import pandas as pd  # noqa: E402
from _common import run, start  # noqa: E402

from advfeatures.attacks.suite import attack_from_slice, attack_rows, robust_accuracy_vs_eps  # noqa: E402
from advfeatures.data import load_dataset  # noqa: E402
from advfeatures.training import model_from_checkpoint  # noqa: E402


def main(snakemake):
    log, device = start(snakemake)
    sl, sweep, seed = dict(snakemake.params.attack), dict(snakemake.params.sweep), int(snakemake.params.seed)
    attack, mask_fn = attack_from_slice(sl)
    data = load_dataset(snakemake.input.data)
    model = model_from_checkpoint(snakemake.input.model, map_location=device)
    index = attack_rows(data.y_test, sl["eval_subset"], sweep["subset"], seed)
    rows = robust_accuracy_vs_eps(
        model, attack, data.x_test[index], data.y_test[index], sweep["eps"], seed=seed,
        batch_size=int(sl["batch_size"]), mask_fn=mask_fn,
    )
    df = pd.DataFrame(rows)
    df.insert(0, "attack", attack.name)
    df.insert(0, "method", snakemake.wildcards.method)
    out = Path(snakemake.output[0])
    tmp = out.with_name(f".{out.name}.tmp")
    df.to_csv(tmp, index=False)
    tmp.replace(out)
    log.info("wrote %s", out)


run(main, snakemake)  # noqa: F821
