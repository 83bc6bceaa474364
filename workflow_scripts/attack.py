"""Rule attack: one suite attack against one trained model, written in the `attack` HDF5 layout."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import run, start  # noqa: E402

from advfeatures import h5io  # noqa: E402
from advfeatures.attacks.suite import attack_from_slice, attack_rows, evaluate_attack  # noqa: E402
from advfeatures.data import load_dataset  # noqa: E402
from advfeatures.training import model_from_checkpoint  # noqa: E402


def main(snakemake):
    log, device = start(snakemake)
    sl, seed, wc = dict(snakemake.params.attack), int(snakemake.params.seed), snakemake.wildcards
    attack, mask_fn = attack_from_slice(sl)
    data = load_dataset(snakemake.input.data)
    model = model_from_checkpoint(snakemake.input.model, map_location=device)
    index = attack_rows(data.y_test, sl["eval_subset"], sl["spec"].get("subset"), seed)
    log.info("%s (%s, %s) on %s: %d test rows", attack.name, attack.type, attack.bound, wc.method, len(index))
    res = evaluate_attack(
        model, attack, data.x_test[index], data.y_test[index], seed=seed,
        batch_size=int(sl["batch_size"]), mask_fn=mask_fn, progress=True,
    )
    log.info("clean acc %.4f, robust acc %.4f, max linf %.4f", res.clean_acc, res.robust_acc, float(res.linf.max()))
    h5io.write_h5(
        snakemake.output[0],
        {"x_adv": res.x_adv, "index": index, "y": res.y, "pred_clean": res.pred_clean, "pred_adv": res.pred_adv,
         "linf": res.linf.float(), "l2": res.l2.float()},
        kind="attack",
        producer="rule attack (advfeatures.attacks.suite.evaluate_attack)",
        params={**sl, "seed": seed},
        attrs={"attack": attack.name, "attack_type": attack.type, "method": wc.method, "bound": attack.bound,
               "attack_kwargs": attack.kwargs, "standard": bool(attack.extra.get("standard", False)),
               "mask": attack.extra.get("mask", ""), "clean_acc": res.clean_acc, "robust_acc": res.robust_acc},
    )


run(main, snakemake)  # noqa: F821
