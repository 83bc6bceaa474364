"""Stages of Zhang et al.: MI of the probe layers of one epoch checkpoint on clean and PGD
inputs (estimate_mi), and the merge of the per-job CSVs (merge_mi)."""

from __future__ import annotations

import logging

from advfeatures.data import load_dataset
from advfeatures.models.checkpoint import model_from_checkpoint
from advfeatures.mutual_info import epoch_mi, merge_csvs, write_rows
from advfeatures.stages.job import Job, main

log = logging.getLogger("advfeatures")


def estimate_mi(job: Job) -> None:
    wc, device = job.wildcards, job.device()
    model = model_from_checkpoint(job.input.model, map_location=device)
    data = load_dataset(job.input.data)
    method, epoch = wc["method"], wc["epoch"]
    rows = epoch_mi(
        model, data, job.params["mi"], seed=job.seed, method=method, epoch=int(epoch), device=device,
        progress=lambda s: log.info("%s epoch %s: %s", method, epoch, s),
    )
    write_rows(rows, job.output[0])
    log.info("wrote %s (%d rows)", job.output[0], len(rows))


def merge_mi(job: Job) -> None:
    for key in ("epochs", "distortions"):
        n = merge_csvs(list(getattr(job.input, key)), getattr(job.output, key))
        log.info("wrote %s (%d rows)", getattr(job.output, key), n)


STAGES = {"estimate_mi": estimate_mi, "merge_mi": merge_mi}

if __name__ == "__main__":
    main(STAGES)
