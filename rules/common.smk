# Shared helpers of the rule files (paths, config slices, library inputs, resources).
#
# Conventions (see docs/architecture.md):
# - Paths come from the helpers below; no rule builds one by hand.
# - Every config value a job uses reaches it through `params:` (a config slice), never through
#   `snakemake.config` in the script, so that changing it reruns exactly the jobs that use it.
# - Every rule lists its workflow script with `script_input(...)` as an input, because Snakemake
#   compares a `script` directive's file by mtime only; profiles/default drops the `code` rerun
#   trigger and the input checksum decides instead (touched: no rerun; edited: its jobs rerun).
#   script_input() adds the library files the script imports (advfeatures.deps: its import
#   graph), because Snakemake does not track imported modules: editing a module reruns the jobs
#   that import it and their descendants, nothing else.
# - Stage files append what `rule all` must build to TARGETS (or to their study, STUDY_TARGETS).

import os
import re
from pathlib import Path

from snakemake.exceptions import WorkflowError

from advfeatures.deps import module_files, script_files
from advfeatures.localgpus import ASSIGN_ENV, gpu_slots
from advfeatures.paths import RunPaths, data_key
from advfeatures.plan import Plan, beta_tag
from advfeatures.registry import STUDIES as STUDIES_ORDER
from advfeatures.registry import SYNTHESIS_KINDS

SCRIPTS = Path(workflow.basedir) / "workflow_scripts"
# every rule runs in this environment under --software-deployment-method conda (path relative
# to the rule files); jobs started without it use the environment snakemake runs in
CONDA_ENV = "../envs/advfeatures.yaml"

PLAN = Plan(config)
DATASET = PLAN.dataset
ARCH = PLAN.arch
SEED = PLAN.seed
# every path of this run (advfeatures.paths): results/<run>/..., data keyed by its settings
P = RunPaths(PLAN.run, data_key(PLAN.dataset_params()))
REPS = PLAN.replicates
RUNTIME = PLAN.runtime()
TARGETS = []
STUDY_TARGETS = {study: [] for study in PLAN.studies}


wildcard_constraints:
    dataset=r"[A-Za-z0-9_\-]+",
    arch=r"[A-Za-z0-9_\-]+",
    method=r"[A-Za-z0-9_]+",
    epoch=r"\d+",
    rep=r"\d+",


# ----------------------------------------------------------------------------- script and library inputs


def lib_files(*modules):
    """Source files of advfeatures ``modules`` and of all they import (advfeatures.deps)."""
    # relative to the working directory, so `--directory elsewhere` works and moving the
    # checkout does not change the input list
    return [
        os.path.relpath(f) for f in module_files(*modules, root=Path(workflow.basedir))
    ]


def script_input(name):
    """A rule's workflow script and the library files it imports (its import graph), as inputs.

    ``name`` is the script's file name without ``.py`` (the rule's name); the file the rule's
    ``script`` directive runs must be the same (checked at parse time by check_script_inputs in
    the Snakefile). The library files come from the ``ast`` of the script and of the modules it
    imports (advfeatures.deps), so they cannot drift from the code.
    """
    script = SCRIPTS / f"{name}.py"
    if not script.exists():
        raise ValueError(f"rules: script_input({name!r}) names missing file {script}")
    libs = script_files(script, root=Path(workflow.basedir))
    return [os.path.relpath(f) for f in [script, *libs]]


def check_script_inputs(rules):
    """Each rule that runs a script lists that script among its inputs (script_input())."""
    for r in rules:
        # a script rule's run_func is Snakemake's own wrapper around the script: allowed
        run_block = r.run_func_src is not None and not r.script
        if r.shellcmd is not None or r.notebook or r.wrapper or run_block:
            raise WorkflowError(
                f"rules: rule {r.name} (file {r.snakefile}) has a shell, run, notebook or "
                "wrapper directive; "
                "profiles/default omits the `code` rerun trigger, so move it into a "
                "workflow script listed with script_input(...)"
            )
        if not r.script:
            continue
        script = os.path.relpath(
            os.path.normpath(
                os.path.join(os.path.dirname(str(r.snakefile)), str(r.script))
            )
        )
        if script not in {str(f) for f in r.input}:
            raise WorkflowError(
                f"rules: rule {r.name} (file {r.snakefile}) runs {script} but does not list it "
                f"as an input; add script=script_input(...) to its input"
            )


# ----------------------------------------------------------------------------- report entries


def study_report(category, subcategory):
    """``entry(path, caption)``: marks ``path`` for ``snakemake --report`` in one study's section
    (caption ``report/<caption>.rst``)."""

    def entry(path, caption):
        return report(
            path,
            caption=f"../report/{caption}.rst",
            category=category,
            subcategory=subcategory,
        )

    return entry


claims_all_studies = study_report("Claims", "All studies")
ilyas_robust_and_non_robust_datasets = study_report(
    "Ilyas et al. 2019", "Robust and non-robust datasets"
)
ilyas_transfer_across_architectures = study_report(
    "Ilyas et al. 2019", "Transfer across architectures"
)
kim_attacks_and_nrf = study_report("Kim, Lee, Ro 2021", "Attacks and NRF")
kim_information_bottleneck = study_report("Kim, Lee, Ro 2021", "Information bottleneck")
training_trained_models = study_report("Training", "Trained models")
zhang_distortions = study_report("Zhang et al.", "Distortions")
zhang_mutual_information_during_training = study_report(
    "Zhang et al.", "Mutual information during training"
)


# ----------------------------------------------------------------------------- paths
# every path helper (P.data_h5, P.model_pt, P.attack_h5, P.table, P.log_file, ...):
# advfeatures.paths.RunPaths; per-replicate paths carry the {rep} wildcard


# ----------------------------------------------------------------------------- config slices
# which jobs exist and what each receives: advfeatures.plan (the config was checked by the
# Snakefile through advfeatures.config before this file runs)


def method_regex(methods):
    """A wildcard constraint matching exactly ``methods`` (none: a pattern that never matches)."""
    return "|".join(re.escape(m) for m in methods) if methods else "(?!)"


def train_bench(method, rep="{rep}"):
    """The benchmark file of the job that makes ``method``'s model (train or convert_pretrained)."""
    name = "convert_pretrained" if method in PLAN.pretrained_methods() else "train"
    return P.bench_file(name, f"rep{rep}_{DATASET}_{ARCH}_{method}")


def tag(*parts):
    """The log / benchmark name of a per-replicate job: rep{rep}_<parts joined by _>."""
    return "_".join(["rep{rep}", *parts])


# ----------------------------------------------------------------------------- resources


# Local runs: `gpu` is a global resource equal to the machine's GPU count times
# ADVFEATURES_JOBS_PER_GPU (advfeatures.localgpus;
# 0 without CUDA, where Snakemake scales a job's gpu=1 down to 0 and runs it on the CPU), so
# `--cores all` never runs more GPU jobs than devices.  `--resources gpu=N` overrides it; on a
# cluster (--jobs/executor) the scheduler of the cluster places the jobs instead.
# Each GPU job of a local run claims its own device (advfeatures.localgpus.claim_for_job).
if workflow.global_resources["_nodes"].value is None:
    if "gpu" not in workflow.global_resources:
        workflow.register_resource("gpu", gpu_slots())
    os.environ[ASSIGN_ENV] = "1"


def study_targets(study):
    """The reports of one study (rules ilyas, kim, zhang); an error when the run leaves it out."""
    if study not in PLAN.studies:
        raise WorkflowError(
            f"study {study!r} is not in config key studies ({PLAN.studies}); add it there, "
            f"e.g. --config 'studies=[{study}]'"
        )
    return STUDY_TARGETS[study]
