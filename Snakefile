# advfeatures: one workflow reproducing Ilyas et al. 2019, Kim, Lee, Ro 2021 and Zhang et al.
# Thin by design: the science lives in the advfeatures package; rules/*.smk wire files together.

import os

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

from advfeatures.config import ConfigError, validate_config

min_version("9.0")


# next to this Snakefile, so `--directory elsewhere` still merges --configfile overlays over it
configfile: os.path.join(workflow.basedir, "config.yaml")


# reject a bad config before any job runs, naming the failing key by its path
SCHEMA = os.path.join(workflow.basedir, "schemas", "config.schema.yaml")
try:
    validate_config(config, SCHEMA)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/synthesis.smk"
include: "rules/bottleneck.smk"
include: "rules/attacks.smk"
include: "rules/mutual_info.smk"
include: "rules/report.smk"


# the front page of `snakemake --report results/report.html`
report: "report/workflow.rst"


# each script a rule runs is one of its inputs, so that editing it reruns its jobs (common.smk)
check_script_inputs(workflow.rules)


rule all:
    default_target: True
    input:
        TARGETS,
