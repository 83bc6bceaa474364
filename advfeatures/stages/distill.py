"""Stage distill: IB distillation of one model's features on clean or attacked test inputs."""

from __future__ import annotations

import logging

import torch

from advfeatures import h5io
from advfeatures.bottleneck import IBSettings, analyse_input, clean_masks_for, masks_on
from advfeatures.data import eval_subset, load_dataset
from advfeatures.models.checkpoint import model_from_checkpoint
from advfeatures.stages.job import Job, main
from advfeatures.utils import AdvFeaturesError, derive_seed

log = logging.getLogger("advfeatures")


def seeds_for(seed, method, input_kind, beta):
    return {k: derive_seed(seed, "bottleneck", method, input_kind, beta, k) for k in ("true", "pred", "random")}


def distill(job: Job) -> None:
    wc, p = job.wildcards, dict(job.params["ib"])
    seed, beta = job.seed, float(wc["beta"])
    settings = IBSettings(
        beta=beta, iterations=p["iterations"], lr=p["lr"], batch_size=p["batch_size"], threshold=p["threshold"]
    )
    model = model_from_checkpoint(job.input.model, map_location=job.device())
    data = load_dataset(job.input.data)
    method, kind = wc["method"], wc["input"]
    extra, clean_masks, attrs = {}, None, {"input": kind, "method": method, "beta": beta}
    if kind == "clean":
        index = eval_subset(data.y_test, p["subset"], derive_seed(seed, "eval_subset"))
        x = data.x_test[index]
    else:
        path = job.input.attack
        a, _ = h5io.read_h5(path, ["x_adv", "index", "y", "pred_clean", "pred_adv"], kind="attack")
        index = torch.from_numpy(a["index"]).long()
        if len(index) and (index.min() < 0 or index.max() >= len(data.y_test)):
            raise AdvFeaturesError(f"{path}: 'index' points outside x_test of {job.input.data}; rerun the attack")
        if not torch.equal(torch.from_numpy(a["y"]).long(), data.y_test[index]):
            raise AdvFeaturesError(f"{path}: labels 'y' differ from y_test[index]; made from another dataset? rerun it")
        x = torch.from_numpy(a["x_adv"]).float()
        extra = {"pred_adv_attack": a["pred_adv"], "pred_clean_attack": a["pred_clean"]}
        clean, _ = h5io.read_h5(
            job.input.clean, ["index", "mask_robust", "mask_robust_predlabel", "mask_random"], kind="bottleneck"
        )
        clean = {k: torch.from_numpy(v) for k, v in clean.items()}

        def recompute(rows):
            r = index[rows]
            return masks_on(model, data.x_test[r], data.y_test[r], settings, seeds_for(seed, method, "clean", beta))

        clean_masks, n_new = clean_masks_for(index, clean, recompute)
        attrs["clean_rows_recomputed"] = n_new
        if n_new:
            log.warning("%d attacked rows are not in %s: their clean masks were distilled here", n_new, job.input.clean)
    y = data.y_test[index]
    log.info("distilling %s inputs of %s (%d rows, beta %g)", kind, method, len(y), beta)
    rec = analyse_input(model, x, y, settings, seeds_for(seed, method, kind, beta), clean_masks=clean_masks)
    if extra and int((torch.from_numpy(extra["pred_adv_attack"]).long() != rec["pred_full"]).sum()):
        log.warning("model predictions on x_adv differ from the attack file's pred_adv on some rows")
    h5io.write_h5(
        job.output[0],
        {"index": index, **rec, **extra},
        kind="bottleneck",
        producer="rule distill",
        params={**p, "seed": seed, "beta": beta},
        attrs=attrs,
    )
    acc = lambda k: float((rec[k] == y).float().mean())  # noqa: E731
    log.info(
        "Int %.4f R %.4f NR %.4f; robust channels per sample %.2f of %d",
        acc("pred_full"), acc("pred_robust"), acc("pred_nonrobust"),
        float(rec["mask_robust"].sum(1).float().mean()), rec["mask_robust"].shape[1],
    )


STAGES = {"distill": distill}

if __name__ == "__main__":
    main(STAGES)
