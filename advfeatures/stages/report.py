"""Stages gather_claims (one replicate) and gather_run_claims (the run): every stage's claims in
one claims.csv."""

from __future__ import annotations

import logging

from advfeatures import reporting
from advfeatures.stages.job import Job, main

log = logging.getLogger("advfeatures")


def gather_claims(job: Job) -> None:
    df = reporting.gather_claims(job.input.claims, job.output[0])
    log.info("%d claims: %s", len(df), df["verdict"].value_counts().to_dict())


STAGES = {"gather_claims": gather_claims, "gather_run_claims": gather_claims}

if __name__ == "__main__":
    main(STAGES)
