# advfeatures: one workflow reproducing Ilyas et al. 2019, Kim, Lee, Ro 2021 and Zhang et al.
# Thin by design: the science lives in the advfeatures package; rules/*.smk wire files together.

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "schemas/config.schema.yaml")


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
