# rules of the mutual_info stage (Zhang et al.); see rules/common.smk for path helpers
#
# estimate_mi:     one CSV per (model, saved epoch): clean and PGD inputs, 5 probe layers, estimators
# mi_distortions:  final model: saturation and patch shuffling after the attack, per level
# merge_mi:        results/{dataset}/{arch}/mutual_info.csv and mutual_info_distortions.csv
# report_mi:       information planes, MI against epoch, distortions figure, tables and claims


rule estimate_mi:
    """I(X;T), I(T;Y) of the probe layers of one epoch checkpoint, on clean and PGD inputs."""
    input:
        model=checkpoint_pt(),
        data=data_h5(),
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
        **PLAN.resources("mutual_info"),
        gpu=PLAN.gpus(),
    params:
        mi=PLAN.mi_params(),
        seed=SEED,
        runtime=RUNTIME,
    script:
        "../workflow_scripts/estimate_mi.py"


rule mi_distortions:
    """Accuracy, loss and MI of the final model under saturation and patch shuffling."""
    input:
        model=model_pt(),
        data=data_h5(),
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
        **PLAN.resources("mutual_info"),
        gpu=PLAN.gpus(),
    params:
        mi=PLAN.mi_params(distortions=True),
        seed=SEED,
        runtime=RUNTIME,
    script:
        "../workflow_scripts/mi_distortions.py"


rule merge_mi:
    """One tidy CSV per study part from the per-job CSVs."""
    input:
        epochs=expand(
            mi_epoch_csv(),
            method=PLAN.mi_methods(),
            epoch=PLAN.checkpoint_epochs(),
            allow_missing=True,
        ),
        distortions=expand(
            mi_distortions_part_csv(), method=PLAN.mi_methods(), allow_missing=True
        ),
        script=script_input("merge_mi"),
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
        "../workflow_scripts/merge_mi.py"


rule report_mi:
    """Figures (information planes, MI against epoch, distortions), tables and claims."""
    input:
        epochs=mi_csv(DATASET, ARCH),
        distortions=mi_csv(DATASET, ARCH, name="mutual_info_distortions"),
        data=data_h5(DATASET),
        script=script_input("report_mi"),
    output:
        plane=zhang_mutual_information_during_training(
            figure("mi_information_plane"), "mi_information_plane"
        ),
        vs_epoch=zhang_mutual_information_during_training(
            figure("mi_vs_epoch"), "mi_vs_epoch"
        ),
        distortions=zhang_distortions(figure("mi_distortions"), "mi_distortions_figure"),
        claims=claims_csv("mutual_info"),
        final=zhang_mutual_information_during_training(
            table("mutual_info_final"), "mutual_info_final"
        ),
        final_md=table("mutual_info_final", "md"),
        dist=zhang_distortions(
            table("mutual_info_distortions"), "mutual_info_distortions_table"
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
        methods=PLAN.mi_methods(),
        claims=config["report"]["claims"],
    script:
        "../workflow_scripts/report_mi.py"


# mutual_info.methods: [] skips the stage (e.g. a run of pretrained models only)
if PLAN.mi_methods():
    STUDY_TARGETS["zhang"] += rules.report_mi.output
