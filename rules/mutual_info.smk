# rules of the mutual_info stage (Zhang et al.); see rules/common.smk for path helpers
#
# estimate_mi:     one CSV per (model, saved epoch): clean and PGD inputs, 5 probe layers, estimators
# mi_distortions:  final model: saturation and patch shuffling after the attack, per level
# merge_mi:        results/{dataset}/{arch}/mutual_info.csv and mutual_info_distortions.csv
# report_mi:       information planes, MI against epoch, distortions figure, tables and claims


include: "helpers/mutual_info.smk"


rule estimate_mi:
    """I(X;T), I(T;Y) of the probe layers of one epoch checkpoint, on clean and PGD inputs."""
    input:
        model=checkpoint_pt(),
        data=data_h5(),
        lib=lib("mutual_info", "stats", "attacks.pgd", "training", "models", "data"),
        script=script_input("estimate_mi"),
    output:
        mi_epoch_csv(),
    log:
        log_file("estimate_mi", "{dataset}_{arch}_{method}_epoch{epoch}"),
    benchmark:
        bench_file("estimate_mi", "{dataset}_{arch}_{method}_epoch{epoch}")
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        **compute_resources("mutual_info"),
        gpu=gpus(),
    params:
        mi=mi_params(),
        seed=SEED,
        runtime=runtime_params(),
    script:
        "../workflow_scripts/estimate_mi.py"


rule mi_distortions:
    """Accuracy, loss and MI of the final model under saturation and patch shuffling."""
    input:
        model=model_pt(),
        data=data_h5(),
        lib=lib(
            "mutual_info",
            "stats",
            "distortions",
            "attacks.pgd",
            "training",
            "models",
            "data",
        ),
        script=script_input("mi_distortions"),
    output:
        mi_distortions_part_csv(),
    log:
        log_file("mi_distortions", "{dataset}_{arch}_{method}"),
    benchmark:
        bench_file("mi_distortions", "{dataset}_{arch}_{method}")
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        **compute_resources("mutual_info"),
        gpu=gpus(),
    params:
        mi=mi_params(distortions=True),
        seed=SEED,
        runtime=runtime_params(),
    script:
        "../workflow_scripts/mi_distortions.py"


rule merge_mi:
    """One tidy CSV per study part from the per-job CSVs."""
    input:
        epochs=expand(
            mi_epoch_csv(),
            method=mi_methods(),
            epoch=checkpoint_epochs(),
            allow_missing=True,
        ),
        distortions=expand(
            mi_distortions_part_csv(), method=mi_methods(), allow_missing=True
        ),
        lib=lib("mutual_info"),
        script=script_input("mi_merge"),
    output:
        epochs=mi_csv(),
        distortions=mi_csv(name="mutual_info_distortions"),
    log:
        log_file("merge_mi", "{dataset}_{arch}"),
    benchmark:
        bench_file("merge_mi", "{dataset}_{arch}")
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../workflow_scripts/mi_merge.py"


rule report_mi:
    """Figures (information planes, MI against epoch, distortions), tables and claims."""
    input:
        epochs=mi_csv(DATASET, ARCH),
        distortions=mi_csv(DATASET, ARCH, name="mutual_info_distortions"),
        data=data_h5(DATASET),
        lib=lib("reporting.__init__", "reporting.mutual_info", "reporting.verdicts", "stats"),
        script=script_input("mi_report"),
    output:
        plane=report(
            figure("mi_information_plane"),
            caption="../report/mi_information_plane.rst",
            category="Zhang et al.",
            subcategory="Mutual information during training",
        ),
        vs_epoch=report(
            figure("mi_vs_epoch"),
            caption="../report/mi_vs_epoch.rst",
            category="Zhang et al.",
            subcategory="Mutual information during training",
        ),
        distortions=report(
            figure("mi_distortions"),
            caption="../report/mi_distortions_figure.rst",
            category="Zhang et al.",
            subcategory="Distortions",
        ),
        claims=claims_csv("mutual_info"),
        final=report(
            table("mutual_info_final"),
            caption="../report/mutual_info_final.rst",
            category="Zhang et al.",
            subcategory="Mutual information during training",
        ),
        final_md=table("mutual_info_final", "md"),
        dist=report(
            table("mutual_info_distortions"),
            caption="../report/mutual_info_distortions_table.rst",
            category="Zhang et al.",
            subcategory="Distortions",
        ),
        dist_md=table("mutual_info_distortions", "md"),
    log:
        log_file("report_mi"),
    benchmark:
        bench_file("report_mi")
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        methods=mi_methods(),
        claims=config["report"]["claims"],
    script:
        "../workflow_scripts/mi_report.py"


TARGETS += rules.report_mi.output
