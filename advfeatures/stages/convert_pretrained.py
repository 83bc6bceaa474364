"""Stage convert_pretrained: one pretrained checkpoint as the pipeline's model.pt + metrics.csv."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from advfeatures.attacks.evaluate import robust_accuracy
from advfeatures.attacks.pgd import PGDSettings
from advfeatures.data import Dataset, eval_subset, load_dataset
from advfeatures.models.checkpoint import save_checkpoint
from advfeatures.models.pretrained import (
    CHANCE_ALPHA,
    PretrainedConfig,
    health_check,
    load_pretrained,
)
from advfeatures.stages.job import Job, main
from advfeatures.training import data_fingerprint, write_metrics
from advfeatures.utils import derive_seed

log = logging.getLogger("advfeatures")


def convert(
    cfg: PretrainedConfig,
    data: Dataset,
    *,
    arch: str,
    arch_options: dict | None,
    method: str,
    model_out: str | Path,
    metrics_out: str | Path,
    eval_attack: PGDSettings,
    eval_subset_size: int | None,
    seed: int,
    device: str | torch.device = "cpu",
    eval_batch_size: int = 500,
) -> dict:
    """Convert ``cfg.path`` into ``model_out`` (the trained layout) and a one-row ``metrics_out``.

    The metrics row is what training's last epoch reports (clean and PGD accuracy on the same
    seeded evaluation subset, :func:`advfeatures.attacks.evaluate.robust_accuracy`), with epoch 0
    and no training columns.  Returns the health-check numbers.
    """
    t0 = time.perf_counter()
    model, provenance = load_pretrained(
        cfg, arch=arch, arch_options=arch_options, model_kwargs=data.model_kwargs()
    )
    model = model.to(device)
    health = health_check(
        model, data.x_test, data.y_test, data.num_classes,
        allow_degenerate=cfg.allow_degenerate, batch_size=eval_batch_size, what=str(cfg.path),
    )
    log.info(
        "%s: %s in format %s, test accuracy %.4f on %d rows (chance %.3f, p %.2g)",
        cfg.path, arch, cfg.format, health["test_acc"], health["test_rows"], health["chance"],
        health["chance_pvalue"],
    )
    ev_idx = eval_subset(data.y_test, eval_subset_size, derive_seed(seed, "eval_subset"))
    x_ev, y_ev = data.x_test[ev_idx].to(device), data.y_test[ev_idx].to(device)
    clean, robust = robust_accuracy(
        model, x_ev, y_ev, eval_attack, derive_seed(seed, "eval"), eval_batch_size
    )
    meta = {
        "arch": arch,
        "arch_options": dict(arch_options or {}),
        "model_kwargs": {**data.model_kwargs(), **provenance["normalization"]},
        "method": method,
        "dataset": data.name,
        "fingerprint": provenance["sha256"][:16],
        "data_fingerprint": data_fingerprint(data),
        "epoch": 0,
        "pretrained": {**provenance, **health},
        # kept by pretrained.allow_degenerate although not above chance: claims mark it not testable
        "degenerate": health["chance_pvalue"] >= CHANCE_ALPHA,
    }
    save_checkpoint(Path(model_out), {"model": model.cpu().state_dict(), "meta": meta})
    write_metrics(metrics_out, [{
        "epoch": 0, "lr": "", "train_loss": "", "train_acc": "",
        "test_clean_acc": clean, "test_pgd_acc": robust,
        "epoch_seconds": round(time.perf_counter() - t0, 3),
    }])
    return {**health, "eval_clean_acc": clean, "eval_pgd_acc": robust}


def convert_pretrained(job: Job) -> None:
    p = job.params["convert"]
    cfg = PretrainedConfig.from_dict({**p["pretrained"], "path": job.input.source})
    health = convert(
        cfg,
        load_dataset(job.input.data),
        arch=job.wildcards["arch"],
        arch_options=dict(job.params["arch_options"]),
        method=job.wildcards["method"],
        model_out=job.output.model,
        metrics_out=job.output.metrics,
        eval_attack=PGDSettings(**p["eval"]["eval_attack"]),
        eval_subset_size=p["eval"]["eval_subset"],
        eval_batch_size=p["eval"]["eval_batch_size"],
        seed=job.seed,
        device=job.device(),
    )
    log.info("wrote %s (%s)", job.output.model, health)


STAGES = {"convert_pretrained": convert_pretrained}

if __name__ == "__main__":
    main(STAGES)
