"""Stage distill: IB distillation of one model's features on clean or attacked test inputs."""

from __future__ import annotations

import logging

import torch

from advfeatures import h5io
from advfeatures.bottleneck import (
    DistillResult,
    IBSettings,
    features,
    head_predict,
    predict_split,
    random_mask_like,
    spatial_variance,
)
from advfeatures.bottleneck import (
    distill as distill_ib,
)
from advfeatures.data import eval_subset, load_dataset
from advfeatures.models.checkpoint import model_from_checkpoint
from advfeatures.stages.job import Job, main
from advfeatures.utils import AdvFeaturesError, derive_seed, make_generator

log = logging.getLogger("advfeatures")


def _record_for(prefix: str, suffix: str, res: DistillResult, preds: dict[str, torch.Tensor]) -> dict:
    return {
        f"{prefix}sigma{suffix}": res.sigma,
        f"{prefix}mask_robust{suffix}": res.mask_robust,
        f"{prefix}threshold{suffix}": res.threshold,
        f"{prefix}pred_robust{suffix}": preds["robust"],
        f"{prefix}pred_nonrobust{suffix}": preds["nonrobust"],
    }


MASK_KINDS = ("", "_predlabel", "_random")  # true label (paper), predicted label, random (controls)


def analyse_input(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    settings: IBSettings,
    seeds: dict[str, int],
    *,
    clean_masks: dict[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Everything one ``bottleneck`` HDF5 file holds for inputs ``x`` (see advfeatures.h5io).

    On ``x`` itself: the IB with the true label (``sigma``, ``mask_robust``, ``pred_robust``,
    ``pred_nonrobust``; the paper), the IB with the model's predicted label (suffix
    ``_predlabel``; control) and a random mask with the true-label mask's channel count per
    row (suffix ``_random``; control).  With ``clean_masks`` (``{"", "_predlabel", "_random"}``
    -> [N, C] masks computed on the clean images of attacked ``x``): the predictions of the
    attacked features under the clean masks (``pred_robust_cleanmask{kind}``,
    ``pred_nonrobust_cleanmask{kind}``; paper Table 1) and the masks (``clean_mask_robust{kind}``).
    ``seeds``: generator seeds for the keys ``true``, ``pred`` and ``random``.
    """
    y = torch.as_tensor(y).long()
    kw = settings.kwargs()
    z = features(model, x)
    pred_full = head_predict(model, z)
    out: dict[str, torch.Tensor] = {
        "y": y, "pred_full": pred_full, "sigma_z": spatial_variance(z).cpu(),
        "z_pool": z.mean(dim=(2, 3)).cpu(),
    }
    res_t = distill_ib(model, None, y, z=z, generator=make_generator(seeds["true"]), **kw)
    res_p = distill_ib(model, None, pred_full, z=z, generator=make_generator(seeds["pred"]), **kw)
    rnd = random_mask_like(res_t.mask_robust, make_generator(seeds["random"]))
    out.update(_record_for("", "", res_t, predict_split(model, z, res_t.mask_robust)))
    out.update(_record_for("", "_predlabel", res_p, predict_split(model, z, res_p.mask_robust)))
    p_rnd = predict_split(model, z, rnd)
    out.update({"mask_random": rnd, "pred_robust_random": p_rnd["robust"], "pred_nonrobust_random": p_rnd["nonrobust"]})
    for kind, mask in (clean_masks or {}).items():
        p = predict_split(model, z, mask)
        out[f"clean_mask_robust{kind}"] = mask
        out[f"pred_robust_cleanmask{kind}"] = p["robust"]
        out[f"pred_nonrobust_cleanmask{kind}"] = p["nonrobust"]
    return out


def clean_masks_for(
    index: torch.Tensor,
    clean: dict[str, torch.Tensor] | None,
    recompute,
) -> tuple[dict[str, torch.Tensor], int]:
    """The clean-input masks of the rows ``index`` (rows of x_test), looked up in ``clean``.

    ``clean``: arrays of the clean input's bottleneck file (``index``, ``mask_robust``,
    ``mask_robust_predlabel``, ``mask_random``).  Rows it lacks are distilled by
    ``recompute(rows) -> {kind: mask}`` (positions into ``index``).  Returns the masks and the
    number of recomputed rows.
    """
    index = torch.as_tensor(index).long()
    n = len(index)
    pos = torch.full((n,), -1, dtype=torch.long)
    if clean is not None and len(clean["index"]):
        cidx = torch.as_tensor(clean["index"]).long()
        lookup = {int(v): i for i, v in enumerate(cidx.tolist())}
        pos = torch.tensor([lookup.get(int(v), -1) for v in index.tolist()], dtype=torch.long)
    have = pos >= 0
    masks: dict[str, torch.Tensor] = {}
    for kind in MASK_KINDS:
        key = f"mask_robust{kind}" if kind != "_random" else "mask_random"
        if clean is not None and have.any():
            cm = torch.as_tensor(clean[key]).bool()
            m = torch.zeros((n, cm.shape[1]), dtype=torch.bool)
            m[have] = cm[pos[have]]
            masks[kind] = m
    missing = torch.nonzero(~have).flatten()
    if len(missing):
        fresh = recompute(missing)
        for kind in MASK_KINDS:
            if kind not in masks:
                masks[kind] = torch.zeros((n, fresh[kind].shape[1]), dtype=torch.bool)
            masks[kind][missing] = fresh[kind]
    return masks, int(len(missing))


def masks_on(model, x, y, settings: IBSettings, seeds: dict[str, int]) -> dict[str, torch.Tensor]:
    """The three masks (true label, predicted label, random with the same count) of inputs ``x``."""
    z = features(model, x)
    kw = settings.kwargs()
    res_t = distill_ib(model, None, y, z=z, generator=make_generator(seeds["true"]), **kw)
    res_p = distill_ib(model, None, head_predict(model, z), z=z, generator=make_generator(seeds["pred"]), **kw)
    return {
        "": res_t.mask_robust,
        "_predlabel": res_p.mask_robust,
        "_random": random_mask_like(res_t.mask_robust, make_generator(seeds["random"])),
    }


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
