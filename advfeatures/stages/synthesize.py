"""Stages of the Ilyas et al. datasets: synthesize one set; train on it and evaluate on the
original test set (train_synthetic); evaluate the models trained on D the same way
(ilyas_eval_reference); train a transfer target of paper Fig. 3 on the original D and measure
the transfer rate to it from the standard source model (transfer_target)."""

from __future__ import annotations

import logging

import pandas as pd
import torch

from advfeatures import h5io
from advfeatures.attacks.evaluate import evaluate_model, pgd_settings, transfer_rate
from advfeatures.data import Dataset, load_dataset
from advfeatures.models.checkpoint import load_checkpoint, model_from_checkpoint
from advfeatures.stages.job import Job, main
from advfeatures.stages.train import train_config
from advfeatures.synthesis import SynthesisConfig, clear_state, synthetic_dataset
from advfeatures.synthesis import synthesize as make_set
from advfeatures.training import train
from advfeatures.utils import atomic_write, derive_seed

log = logging.getLogger("advfeatures")


def synthesize(job: Job) -> None:
    kind, device = job.wildcards["kind"], job.device()
    p = dict(job.params["synthesis"])
    cfg = SynthesisConfig.from_dict(kind, p, seed=job.seed)
    data = load_dataset(job.input.data)
    model = model_from_checkpoint(job.input.model, device)
    log.info("synthesizing %s from %s (%d training images)", kind, job.input.model, len(data.x_train))
    arrays = make_set(cfg, model, data.x_train, data.y_train, data.num_classes, state_dir=job.params["resume_dir"])
    hit = float((arrays["source_pred"] == arrays["y"]).float().mean())
    log.info(
        "%s: mean relative representation distance %.4f; source model predicts the label on %.1f%%",
        kind, float(arrays["rep_distance"].mean()), 100 * hit,
    )
    h5io.write_h5(
        job.output[0], arrays, kind="synthetic", producer="rule synthesize (advfeatures.synthesis.synthesize)",
        params={**cfg.relevant(), "source_method": p["source_method"]},
        attrs={"synthetic_kind": kind, "source_model": job.input.model, "source_method": p["source_method"],
               "dataset": data.name},
    )
    clear_state(job.params["resume_dir"])
    log.info("wrote %s", job.output[0])


def _eval_row(job: Job, model, source, data: Dataset, row: dict, model_path) -> dict:
    """``row`` plus clean / robust accuracy, the transfer rate from the standard source model (when
    ``source`` is given) and whether ``model_path`` is flagged degenerate
    (training.health.allow_degenerate; the claims' precondition reads it)."""
    ev = job.params["eval"]
    row["degenerate"] = bool(load_checkpoint(model_path)["meta"].get("degenerate", False))
    attacks = pgd_settings(ev["attacks"])
    row |= evaluate_model(model, data, attacks, subset=ev["subset"], seed=job.seed, batch_size=ev["batch_size"])
    if source is not None:
        row |= transfer_rate(source, model, data, attacks[ev["transfer_attack"]], subset=ev["subset"],
                             seed=job.seed, batch_size=ev["batch_size"])
    return row


def _write_row(row: dict, path) -> None:
    with atomic_write(path) as tmp:
        pd.DataFrame([row]).to_csv(tmp, index=False)


def train_synthetic(job: Job) -> None:
    wc, device = job.wildcards, job.device()
    spec = job.params["model"]
    cfg = train_config(job, {**job.params["train"], "checkpoint_epochs": []}, spec["arch"], spec["options"])
    base = load_dataset(job.input.data)
    arrays, _ = h5io.read_h5(job.input.synthetic, ["x", "y"], kind="synthetic")
    data = synthetic_dataset(base, torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["y"]), wc["kind"])
    log.info("training %s (%s) on %s: %d images", wc["train_arch"], spec, wc["kind"], len(data.x_train))
    rows = train(cfg, data, model_out=job.output.model, metrics_out=job.output.metrics,
                 state_dir=job.params["resume_dir"],
                 chance_check=False)  # near- or below-chance accuracy on the original test set is a result
    model = model_from_checkpoint(job.output.model, device)
    row = {"set": wc["kind"], "train_arch": wc["train_arch"], "arch": spec["arch"], "arch_options": str(spec["options"])}
    row = _eval_row(job, model, None, base, row, job.output.model)
    row["train_seconds"] = sum(r["epoch_seconds"] for r in rows)
    log.info("evaluation on the original test set: %s", row)
    _write_row(row, job.output.eval)


def ilyas_eval_reference(job: Job) -> None:
    wc, device = job.wildcards, job.device()
    data = load_dataset(job.input.data)
    model = model_from_checkpoint(job.input.model, device)
    source = model_from_checkpoint(job.input.source, device)
    row = {"set": f"D ({wc['method']})", "train_arch": wc["arch"], "arch": wc["arch"], "arch_options": ""}
    row = _eval_row(job, model, source, data, row, job.input.model)
    log.info("evaluation on the test set: %s", row)
    _write_row(row, job.output[0])


def transfer_target(job: Job) -> None:
    """Paper Fig. 3's target: ``train_arch`` trained by standard training on the original D, with
    its own seed (the main architecture's target is an independent copy, not the source), and the
    transfer rate to it of adversarial examples made on the standard source model."""
    wc, device = job.wildcards, job.device()
    spec = job.params["model"]
    cfg = train_config(job, {**job.params["train"], "checkpoint_epochs": []}, spec["arch"], spec["options"])
    cfg.seed = derive_seed(job.seed, "transfer_target", wc["train_arch"])
    data = load_dataset(job.input.data)
    log.info("training transfer target %s (%s) on D: %d images", wc["train_arch"], spec, len(data.x_train))
    rows = train(cfg, data, model_out=job.output.model, metrics_out=job.output.metrics,
                 state_dir=job.params["resume_dir"])
    target = model_from_checkpoint(job.output.model, device)
    source = model_from_checkpoint(job.input.source, device)
    ev = job.params["eval"]
    name = ev["transfer_attack"]
    attack = pgd_settings(ev["attacks"])[name]
    row = {"set": "D", "train_arch": wc["train_arch"], "arch": spec["arch"], "arch_options": str(spec["options"])}
    row |= evaluate_model(target, data, {name: attack}, subset=ev["subset"], seed=job.seed,
                          batch_size=ev["batch_size"])
    row |= transfer_rate(source, target, data, attack, subset=ev["subset"], seed=job.seed,
                         batch_size=ev["batch_size"])
    row["train_seconds"] = sum(r["epoch_seconds"] for r in rows)
    log.info("transfer target on the original test set: %s", row)
    _write_row(row, job.output.eval)


STAGES = {
    "synthesize": synthesize,
    "train_synthetic": train_synthetic,
    "ilyas_eval_reference": ilyas_eval_reference,
    "transfer_target": transfer_target,
}

if __name__ == "__main__":
    main(STAGES)
