# advfeatures: one workflow reproducing Ilyas et al. 2019, Kim, Lee, Ro 2021 and Zhang et al.
# Thin by design: the science lives in the advfeatures package; rules/*.smk wire files together.

import os
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from advfeatures.config import ConfigError, workflow_config

min_version("9.0")

# The run's config (advfeatures.config, docs/configuration.md): the model's defaults, then
# config.yaml beside this Snakefile (the default run) unless a --configfile starts over with
# `base: defaults` (every preset) or --replace-workflow-config is given, then the other
# --configfile overlays and the --config values.
# Typed and cross-checked before any job runs; a bad key is one line naming it.
try:
    RUN_CONFIG = workflow_config(
        workflow.basedir,
        workflow.config_settings.configfiles,
        workflow.config_settings.config,
        replace=workflow.config_settings.replace_workflow_config,
    )
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None
config.clear()
config.update(RUN_CONFIG)
# every output of this run goes to results/<run>/ (config key run; advfeatures.paths)
print(f"advfeatures: run folder results/{config['run']}/", file=sys.stderr)
# the JSON schema generated from the same model (no defaults added: the config is complete)
validate(
    config,
    os.path.join(workflow.basedir, "schemas", "config.schema.yaml"),
    set_default=False,
)


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"


# each study's rules only when the run enables it (config key studies)
if "ilyas" in PLAN.studies:

    include: "rules/synthesis.smk"


if "kim" in PLAN.studies:

    include: "rules/bottleneck.smk"
    include: "rules/attacks.smk"


if "zhang" in PLAN.studies:

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
        [t for study in RUN_STUDIES for t in STUDY_TARGETS[study]],


# one study alone: `snakemake --cores all ilyas` (kim, zhang); its reports, not the summary
rule ilyas:
    input:
        lambda wc: study_targets("ilyas"),


rule kim:
    input:
        lambda wc: study_targets("kim"),


rule zhang:
    input:
        lambda wc: study_targets("zhang"),
