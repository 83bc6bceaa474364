# Robust and non-robust datasets (Ilyas et al. 2019): synthesize the four sets, train a
# fresh model on each, evaluate on the original test set, transfer across architectures, report.
# Paths come from rules/common.smk; the science lives in advfeatures.synthesis.


include: "helpers/synthesis.smk"


rule synthesize:
    """One synthetic training set (d_r, d_nr, d_rand or d_det) from the whole training split."""
    input:
        data=data_h5(),
        model=lambda wc: model_pt(PLAN.synthesis_source(wc.kind), wc.dataset, wc.arch),
        script=script_input("synthesize"),
    output:
        synthetic_h5(),
    log:
        log_file("synthesize", "{dataset}_{arch}_{kind}"),
    benchmark:
        bench_file("synthesize", "{dataset}_{arch}_{kind}")
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        **PLAN.resources("synthesis"),
        gpu=PLAN.gpus(),
    params:
        synthesis=lambda wc: PLAN.synthesis_params(wc.kind),
        runtime=RUNTIME,
        seed=SEED,
        resume_dir=lambda wc: synthetic_resume_dir(wc.kind, wc.dataset, wc.arch),
    script:
        "../workflow_scripts/synthesize.py"


rule train_synthetic:
    """Standard training of a fresh model on one synthetic set; evaluation on the original test set."""
    input:
        data=data_h5(),
        synthetic=synthetic_h5(),
        script=script_input("train_synthetic"),
    output:
        model=f"{synthetic_run_dir()}/model.pt",
        metrics=f"{synthetic_run_dir()}/metrics.csv",
        eval=f"{synthetic_run_dir()}/eval.csv",
    log:
        log_file("train_synthetic", "{dataset}_{arch}_{kind}_{train_arch}"),
    benchmark:
        bench_file("train_synthetic", "{dataset}_{arch}_{kind}_{train_arch}")
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        **PLAN.resources("synthesis"),
        gpu=PLAN.gpus(),
    params:
        train=lambda wc: PLAN.synthetic_train_params(wc.kind),
        model=lambda wc: PLAN.synthetic_train_arch(wc.train_arch),
        eval=PLAN.synthetic_eval_params(),
        runtime=RUNTIME,
        seed=SEED,
        resume_dir=lambda wc: synthetic_resume_dir(
            wc.kind, wc.dataset, wc.arch, wc.train_arch
        ),
    script:
        "../workflow_scripts/train_synthetic.py"


rule ilyas_eval_reference:
    """The standard and robust models trained on D, evaluated with the same attacks as the sets."""
    input:
        data=data_h5(),
        model=model_pt(),
        source=model_pt("standard"),
        script=script_input("ilyas_eval_reference"),
    output:
        ilyas_eval_csv(),
    log:
        log_file("ilyas_eval_reference", "{dataset}_{arch}_{method}"),
    benchmark:
        bench_file("ilyas_eval_reference", "{dataset}_{arch}_{method}")
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        **PLAN.resources("synthesis"),
        gpu=PLAN.gpus(),
    params:
        eval=PLAN.synthetic_eval_params(),
        runtime=RUNTIME,
        seed=SEED,
    script:
        "../workflow_scripts/ilyas_eval_reference.py"


rule ilyas_report:
    """Table of the four sets beside D (and published numbers), sample figure, claims."""
    input:
        data=data_h5(DATASET),
        synthetic=expand(synthetic_h5(), kind=SYN_KINDS, dataset=DATASET, arch=ARCH),
        evals=expand(
            f"{synthetic_run_dir()}/eval.csv",
            kind=SYN_KINDS,
            dataset=DATASET,
            arch=ARCH,
            train_arch=ARCH,
        ),
        reference=expand(
            ilyas_eval_csv(),
            method=PLAN.synthesis_reference(),
            dataset=DATASET,
            arch=ARCH,
        ),
        script=script_input("ilyas_report"),
    output:
        table=ilyas_robust_and_non_robust_datasets(
            table("ilyas_datasets"), "ilyas_datasets"
        ),
        table_md=table("ilyas_datasets", "md"),
        samples=ilyas_robust_and_non_robust_datasets(
            figure("ilyas_samples"), "ilyas_samples"
        ),
        claims=claims_csv("ilyas"),
    log:
        log_file("ilyas_report"),
    benchmark:
        bench_file("ilyas_report")
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **PLAN.resources("report"),
    params:
        dataset=DATASET,
        arch=ARCH,
        robust_method=SYN["robust_method"],
        eval=SYN["eval"],
        seed=SEED,
        claims=config["report"]["claims"],
    script:
        "../workflow_scripts/ilyas_report.py"


rule transfer_target:
    """Paper Fig. 3's targets: one architecture trained by standard training on the ORIGINAL D
    (own seed), and the transfer rate to it from the standard source model of arch.name.
    """
    input:
        data=data_h5(),
        source=model_pt("standard"),
        script=script_input("transfer_target"),
    output:
        model=f"{transfer_target_dir()}/model.pt",
        metrics=f"{transfer_target_dir()}/metrics.csv",
        eval=f"{transfer_target_dir()}/transfer.csv",
    log:
        log_file("transfer_target", "{dataset}_{arch}_{train_arch}"),
    benchmark:
        bench_file("transfer_target", "{dataset}_{arch}_{train_arch}")
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        **PLAN.resources("train"),
        gpu=PLAN.gpus(),
    params:
        train=PLAN.transfer_target_train_params(),
        model=lambda wc: PLAN.synthetic_train_arch(wc.train_arch),
        eval=PLAN.synthetic_eval_params(),
        runtime=RUNTIME,
        seed=SEED,
        resume_dir=lambda wc: f"results/.resume/{wc.dataset}/{wc.arch}/transfer/{wc.train_arch}",
    script:
        "../workflow_scripts/transfer_target.py"


rule ilyas_transfer:
    """Paper Fig. 3: transfer rate from the standard source model to each architecture trained on
    D, against that architecture's test accuracy when trained on one synthetic set."""
    input:
        evals=expand(
            f"{synthetic_run_dir()}/eval.csv",
            kind=SYN["transfer"]["kind"],
            dataset=DATASET,
            arch=ARCH,
            train_arch=PLAN.transfer_archs(),
        ),
        targets=expand(
            f"{transfer_target_dir()}/transfer.csv",
            dataset=DATASET,
            arch=ARCH,
            train_arch=PLAN.transfer_archs(),
        ),
        script=script_input("ilyas_transfer"),
    output:
        table=ilyas_transfer_across_architectures(
            table("ilyas_transfer"), "ilyas_transfer_table"
        ),
        table_md=table("ilyas_transfer", "md"),
        figure=ilyas_transfer_across_architectures(
            figure("ilyas_transfer"), "ilyas_transfer_figure"
        ),
        claims=claims_csv("ilyas_transfer"),
    log:
        log_file("ilyas_transfer"),
    benchmark:
        bench_file("ilyas_transfer")
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **PLAN.resources("report"),
    params:
        kind=SYN["transfer"]["kind"],
        attack=SYN["transfer"]["attack"],
        claims=config["report"]["claims"],
    script:
        "../workflow_scripts/ilyas_transfer.py"


STUDY_TARGETS["ilyas"] += [
    table("ilyas_datasets"),
    table("ilyas_datasets", "md"),
    figure("ilyas_samples"),
    claims_csv("ilyas"),
    claims_csv("ilyas_transfer"),
    table("ilyas_transfer"),
    table("ilyas_transfer", "md"),
    figure("ilyas_transfer"),
]
