"""Training table and the run's summary.md (training_table, summary)."""

from __future__ import annotations

import logging
from pathlib import Path

from advfeatures.reporting.summary import build_summary, write_training_table
from advfeatures.stages.job import Job, main

log = logging.getLogger("advfeatures")


def training_table(job: Job) -> None:
    methods = job.p.methods
    write_training_table(
        dict(zip(methods, job.input.metrics)),
        dict(zip(methods, job.p.benchmarks)),
        job.output.csv,
        job.output.md,
        attack=job.p.attack,
    )


def summary(job: Job) -> None:
    tables = iter(job.input.tables)
    sections = [("Training", [job.input.training])]
    sections += [(title, [next(tables) for _ in names]) for title, names in job.p.studies.items()]
    run = Path(job.output[0]).parent
    k = int(job.p.replicates)
    reps = (f"{k} replicates (`rep0` ... `rep{k - 1}`): tables give every replicate and their mean with "
            "a between-replicate interval; claims are tested over the replicates" if k > 1 else
            "1 replicate (`rep0`): every result is about one trained model set; set `replicates` for "
            "training-seed variance")
    preamble = f"Run `{run.name}`: {reps}. Resolved config: `{job.input.config}`.\n"
    build_summary(
        sections,
        job.input.claims,
        job.output[0],
        job.p.figures,
        bench_dir=job.p.bench_dir,
        preamble=preamble,
        replicates=k,
    )


STAGES = {"training_table": training_table, "summary": summary}

if __name__ == "__main__":
    main(STAGES)
