# rules of the mutual_info stage (Zhang et al.); see rules/common.smk for path helpers
#
# estimate_mi:     one CSV per (model, saved epoch): clean and PGD inputs, 5 probe layers, estimators
# mi_distortions:  final model: saturation and patch shuffling after the attack, per level
# merge_mi:        rep<r>/{dataset}/{arch}/mutual_info.csv and mutual_info_distortions.csv
# report_mi:       information planes, MI against epoch, distortions figure, tables and claims


rule estimate_mi:
    """I(X;T), I(T;Y) of the probe layers of one epoch checkpoint, on clean and PGD inputs."""
    input:
        model=P.checkpoint_pt(),
        data=P.data_h5(),
        script=script_input("estimate_mi"),
    output:
        P.mi_epoch_csv(),
    log:
        P.log_file("estimate_mi", tag("{dataset}_{arch}_{method}_epoch{epoch}")),
    benchmark:
        P.bench_file("estimate_mi", tag("{dataset}_{arch}_{method}_epoch{epoch}"))
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        **PLAN.resources("mutual_info"),
        gpu=PLAN.gpus(),
    params:
        mi=PLAN.mi_params(),
        seed=PLAN.seed_of,
        runtime=RUNTIME,
    script:
        "../workflow_scripts/estimate_mi.py"


rule mi_distortions:
    """Accuracy, loss and MI of the final model under saturation and patch shuffling."""
    input:
        model=P.model_pt(),
        data=P.data_h5(),
        script=script_input("mi_distortions"),
    output:
        P.mi_distortions_part_csv(),
    log:
        P.log_file("mi_distortions", tag("{dataset}_{arch}_{method}")),
    benchmark:
        P.bench_file("mi_distortions", tag("{dataset}_{arch}_{method}"))
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        **PLAN.resources("mutual_info"),
        gpu=PLAN.gpus(),
    params:
        mi=PLAN.mi_params(distortions=True),
        seed=PLAN.seed_of,
        runtime=RUNTIME,
    script:
        "../workflow_scripts/mi_distortions.py"


rule merge_mi:
    """One tidy CSV per study part from the per-job CSVs."""
    input:
        epochs=expand(
            P.mi_epoch_csv(),
            method=PLAN.mi_methods(),
            epoch=PLAN.checkpoint_epochs(),
            allow_missing=True,
        ),
        distortions=expand(
            P.mi_distortions_part_csv(), method=PLAN.mi_methods(), allow_missing=True
        ),
        script=script_input("merge_mi"),
    output:
        epochs=P.mi_csv(),
        distortions=P.mi_csv(name="mutual_info_distortions"),
    log:
        P.log_file("merge_mi", tag("{dataset}_{arch}")),
    benchmark:
        P.bench_file("merge_mi", tag("{dataset}_{arch}"))
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../workflow_scripts/merge_mi.py"


rule report_mi:
    """Figures (information planes, MI against epoch, distortions), tables and claims."""
    input:
        epochs=P.mi_csv(DATASET, ARCH),
        distortions=P.mi_csv(DATASET, ARCH, name="mutual_info_distortions"),
        data=P.data_h5(DATASET),
        script=script_input("report_mi"),
    output:
        plane=zhang_mutual_information_during_training(
            P.figure("mi_information_plane"), "mi_information_plane"
        ),
        vs_epoch=zhang_mutual_information_during_training(
            P.figure("mi_vs_epoch"), "mi_vs_epoch"
        ),
        distortions=zhang_distortions(
            P.figure("mi_distortions"), "mi_distortions_figure"
        ),
        claims=P.claims_csv("mutual_info"),
        final=zhang_mutual_information_during_training(
            P.table("mutual_info_final"), "mutual_info_final"
        ),
        final_md=P.table("mutual_info_final", "md"),
        dist=zhang_distortions(
            P.table("mutual_info_distortions"), "mutual_info_distortions_table"
        ),
        dist_md=P.table("mutual_info_distortions", "md"),
    log:
        P.log_file("report_mi", tag()),
    benchmark:
        P.bench_file("report_mi", tag())
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        methods=PLAN.mi_methods(),
        claims=config["report"]["claims"],
    script:
        "../workflow_scripts/report_mi.py"
