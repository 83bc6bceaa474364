# advfeatures: one workflow reproducing Ilyas et al. 2019, Kim, Lee, Ro 2021 and Zhang et al.
# Thin by design: the science lives in the advfeatures package; rules/*.smk wire files together.

import os

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("9.0")


# next to this Snakefile, so `--directory elsewhere` still merges --configfile overlays over it
configfile: os.path.join(workflow.basedir, "config.yaml")


# reject a bad config before any job runs, naming the failing key by its path
try:
    validate(config, "schemas/config.schema.yaml")
except WorkflowError as exc:
    err = exc.__context__  # the jsonschema ValidationError snakemake wrapped
    if not hasattr(err, "absolute_path"):
        raise
    while err.context:  # anyOf/oneOf: report the branch that got deepest, if any did
        weak = lambda e: e.validator in ("type", "const")
        sub = max(err.context, key=lambda e: (len(e.absolute_path), not weak(e)))
        if len(sub.absolute_path) == len(err.absolute_path) and weak(sub):
            break
        err = sub
    key = ".".join(str(k) for k in err.absolute_path) or "<top level>"
    raise WorkflowError(
        f"invalid config: key {key}: {err.message} (checked by schemas/, see config.yaml)"
    ) from None


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/synthesis.smk"
include: "rules/bottleneck.smk"
include: "rules/attacks.smk"
include: "rules/mutual_info.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        TARGETS,
