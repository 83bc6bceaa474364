# Robust and non-robust datasets (Ilyas et al. 2019): synthesize the four sets, train a
# fresh model on each, evaluate on the original test set, transfer across architectures, report.
# Paths come from rules/common.smk; the science lives in advfeatures.synthesis.


include: "helpers/synthesis.smk"


rule synthesize:
    """One synthetic training set (d_r, d_nr, d_rand or d_det) from the whole training split."""
    input:
        data=P.data_h5(),
        model=lambda wc: P.model_pt(
            PLAN.synthesis_source(wc.kind), wc.dataset, wc.arch, wc.rep
        ),
        script=script_input("synthesize"),
    output:
        P.synthetic_h5(),
    log:
        P.log_file("synthesize", tag("{dataset}_{arch}_{kind}")),
    benchmark:
        P.bench_file("synthesize", tag("{dataset}_{arch}_{kind}"))
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        **PLAN.resources("synthesis"),
        gpu=PLAN.gpus(),
    params:
        synthesis=lambda wc: PLAN.synthesis_params(wc.kind),
        runtime=RUNTIME,
        seed=PLAN.seed_of,
        resume_dir=lambda wc: P.resume_dir(
            "synthetic", wc.kind, rep=wc.rep, dataset=wc.dataset, arch=wc.arch
        ),
    script:
        "../workflow_scripts/synthesize.py"


rule train_synthetic:
    """Standard training of a fresh model on one synthetic set; evaluation on the original test set."""
    input:
        data=P.data_h5(),
        synthetic=P.synthetic_h5(),
        script=script_input("train_synthetic"),
    output:
        model=f"{P.synthetic_run_dir()}/model.pt",
        metrics=f"{P.synthetic_run_dir()}/metrics.csv",
        eval=f"{P.synthetic_run_dir()}/eval.csv",
    log:
        P.log_file("train_synthetic", tag("{dataset}_{arch}_{kind}_{train_arch}")),
    benchmark:
        P.bench_file("train_synthetic", tag("{dataset}_{arch}_{kind}_{train_arch}"))
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
        seed=PLAN.seed_of,
        resume_dir=lambda wc: P.resume_dir(
            "synthetic",
            wc.kind,
            wc.train_arch,
            rep=wc.rep,
            dataset=wc.dataset,
            arch=wc.arch,
        ),
    script:
        "../workflow_scripts/train_synthetic.py"


rule ilyas_eval_reference:
    """The standard and robust models trained on D, evaluated with the same attacks as the sets."""
    input:
        data=P.data_h5(),
        model=P.model_pt(),
        source=P.model_pt("standard"),
        script=script_input("ilyas_eval_reference"),
    output:
        P.ilyas_eval_csv(),
    log:
        P.log_file("ilyas_eval_reference", tag("{dataset}_{arch}_{method}")),
    benchmark:
        P.bench_file("ilyas_eval_reference", tag("{dataset}_{arch}_{method}"))
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        **PLAN.resources("synthesis"),
        gpu=PLAN.gpus(),
    params:
        eval=PLAN.synthetic_eval_params(),
        runtime=RUNTIME,
        seed=PLAN.seed_of,
    script:
        "../workflow_scripts/ilyas_eval_reference.py"


rule ilyas_report:
    """Table of the four sets beside D (and published numbers), sample figure, claims."""
    input:
        data=P.data_h5(DATASET),
        synthetic=expand(
            P.synthetic_h5(),
            kind=SYN_KINDS,
            dataset=DATASET,
            arch=ARCH,
            allow_missing=True,
        ),
        evals=expand(
            f"{P.synthetic_run_dir()}/eval.csv",
            kind=SYN_KINDS,
            dataset=DATASET,
            arch=ARCH,
            train_arch=ARCH,
            allow_missing=True,
        ),
        reference=expand(
            P.ilyas_eval_csv(),
            method=PLAN.synthesis_reference(),
            dataset=DATASET,
            arch=ARCH,
            allow_missing=True,
        ),
        script=script_input("ilyas_report"),
    output:
        table=ilyas_robust_and_non_robust_datasets(
            P.table("ilyas_datasets"), "ilyas_datasets"
        ),
        table_md=P.table("ilyas_datasets", "md"),
        samples=ilyas_robust_and_non_robust_datasets(
            P.figure("ilyas_samples"), "ilyas_samples"
        ),
        claims=P.claims_csv("ilyas"),
    log:
        P.log_file("ilyas_report", tag()),
    benchmark:
        P.bench_file("ilyas_report", tag())
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
        seed=PLAN.seed_of,
        claims=config["report"]["claims"],
    script:
        "../workflow_scripts/ilyas_report.py"


rule transfer_target:
    """Paper Fig. 3's targets: one architecture trained by standard training on the ORIGINAL D
    (own seed), and the transfer rate to it from the standard source model of arch.name.
    """
    input:
        data=P.data_h5(),
        source=P.model_pt("standard"),
        script=script_input("transfer_target"),
    output:
        model=f"{P.transfer_target_dir()}/model.pt",
        metrics=f"{P.transfer_target_dir()}/metrics.csv",
        eval=f"{P.transfer_target_dir()}/transfer.csv",
    log:
        P.log_file("transfer_target", tag("{dataset}_{arch}_{train_arch}")),
    benchmark:
        P.bench_file("transfer_target", tag("{dataset}_{arch}_{train_arch}"))
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
        seed=PLAN.seed_of,
        resume_dir=lambda wc: P.resume_dir(
            "transfer", wc.train_arch, rep=wc.rep, dataset=wc.dataset, arch=wc.arch
        ),
    script:
        "../workflow_scripts/transfer_target.py"


rule ilyas_transfer:
    """Paper Fig. 3: transfer rate from the standard source model to each architecture trained on
    D, against that architecture's test accuracy when trained on one synthetic set."""
    input:
        evals=expand(
            f"{P.synthetic_run_dir()}/eval.csv",
            kind=SYN["transfer"]["kind"],
            dataset=DATASET,
            arch=ARCH,
            train_arch=PLAN.transfer_archs(),
            allow_missing=True,
        ),
        targets=expand(
            f"{P.transfer_target_dir()}/transfer.csv",
            dataset=DATASET,
            arch=ARCH,
            train_arch=PLAN.transfer_archs(),
            allow_missing=True,
        ),
        script=script_input("ilyas_transfer"),
    output:
        table=ilyas_transfer_across_architectures(
            P.table("ilyas_transfer"), "ilyas_transfer_table"
        ),
        table_md=P.table("ilyas_transfer", "md"),
        figure=ilyas_transfer_across_architectures(
            P.figure("ilyas_transfer"), "ilyas_transfer_figure"
        ),
        claims=P.claims_csv("ilyas_transfer"),
    log:
        P.log_file("ilyas_transfer", tag()),
    benchmark:
        P.bench_file("ilyas_transfer", tag())
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
