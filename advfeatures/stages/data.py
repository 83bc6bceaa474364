"""Stage prepare_data: write data/{dataset}.h5 from the configured source."""

from __future__ import annotations

import logging

from advfeatures.data import prepare_dataset
from advfeatures.stages.job import Job, main

log = logging.getLogger("advfeatures")


def prepare_data(job: Job) -> None:
    p = job.params["dataset"]
    out = prepare_dataset(
        p["name"], job.output[0], root=p.get("root"), download=p.get("download", True), seed=p["seed"],
        subset_train=p.get("subset_train"), subset_test=p.get("subset_test"), params=dict(p),
    )
    log.info("wrote %s", out)


STAGES = {"prepare_data": prepare_data}

if __name__ == "__main__":
    main(STAGES)
