"""Stage run_config: the run's resolved config in its folder (results/<run>/config.yaml)."""

from __future__ import annotations

import yaml

from advfeatures.stages.job import Job, main
from advfeatures.utils import atomic_write


def run_config(job: Job) -> None:
    """The run's resolved config as the jobs received it (``python -m advfeatures.config resolve``
    prints where each value came from)."""
    text = "# The resolved config of this run: every key, as its jobs received it (rule run_config).\n"
    text += yaml.safe_dump(dict(job.p.config), sort_keys=False, width=100)
    with atomic_write(job.output[0]) as tmp:
        tmp.write_text(text)


STAGES = {"run_config": run_config}

if __name__ == "__main__":
    main(STAGES)
