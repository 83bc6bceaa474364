# The report stage: the training table, results/claims.csv, the claims forest plots and the
# figures across studies, results/summary.md (every Markdown table and the claims of the run)
# and the captions of `snakemake --report results/report.html`.

# tables, claims and figures of the studies this run enables (config key studies)
STUDY_TABLES = {
    "ilyas": {
        "Ilyas et al. 2019: robust and non-robust datasets": [
            "ilyas_datasets",
            "ilyas_transfer",
        ]
    },
    "kim": {
        "Kim, Lee, Ro 2021: information bottleneck": [
            "kim_table1",
            "kim_table2",
            "kim_beta_sweep",
        ],
        "Kim, Lee, Ro 2021: attacks and NRF": ["kim_table3", "kim_table4"],
    },
    "zhang": {
        "Zhang et al.: mutual information": [
            "mutual_info_final",
            "mutual_info_distortions",
        ]
    },
}
STUDY_CLAIMS = {
    "ilyas": ["ilyas", "ilyas_transfer"],
    "kim": ["bottleneck", "attacks"],
    "zhang": ["mutual_info"],
}
STUDY_FIGURES = {
    "ilyas": ["ilyas_samples", "ilyas_transfer"],
    "kim": ["kim_beta_sweep", "kim_tsne", "robust_acc_vs_eps"],
    "zhang": ["mi_information_plane", "mi_vs_epoch", "mi_distortions"],
}
# the MI stage is skipped with mutual_info.methods: [] (e.g. a run of pretrained models only)
RUN_STUDIES = [
    s
    for s in STUDIES_ORDER
    if s in PLAN.studies and (s != "zhang" or PLAN.mi_methods())
]
STUDIES = {k: v for s in RUN_STUDIES for k, v in STUDY_TABLES[s].items()}
CLAIM_FILES = [claims_csv(c) for s in RUN_STUDIES for c in STUDY_CLAIMS[s]]
FIGURES = [f for s in RUN_STUDIES for f in STUDY_FIGURES[s]]


# figures across studies: the claims pictures, paper vs this run, Ilyas et al. Fig. 2b-style
# bars (only when the Ilyas study runs) and the training curves
CROSS_FIGURES = ["claims_forest", "claims_overview", "paper_vs_ours", "training_curves"]
if "ilyas" in RUN_STUDIES:
    CROSS_FIGURES.append("ilyas_bars")
FIGURES += CROSS_FIGURES
# the tables of this run that have published numbers
PUBLISHED_TABLES = [
    t
    for t in ["ilyas_datasets", "kim_table1", "kim_table2", "kim_table3", "kim_table4"]
    if any(t in ts for ts in STUDIES.values())
]
published_numbers = study_report("Published numbers", "Paper vs this run")


localrules:
    training_table,
    gather_claims,
    summary,
    claims_figures,
    summary_figures,


rule training_table:
    """Final clean / PGD accuracy and wall time of every trained model."""
    input:
        metrics=expand(
            metrics_csv(), dataset=DATASET, arch=ARCH, method=PLAN.train_methods()
        ),
        script=script_input("training_table"),
    output:
        csv=training_trained_models(table("training"), "training"),
        md=table("training", "md"),
    log:
        log_file("training_table"),
    benchmark:
        bench_file("training_table")
    conda:
        CONDA_ENV
    threads: 1
    params:
        methods=PLAN.train_methods(),
        benchmarks=[train_bench(m) for m in PLAN.train_methods()],
        attack=config["training"]["common"]["eval_attack"],
    script:
        "../workflow_scripts/training_table.py"


rule gather_claims:
    """Every stage's machine-checkable claims in one file."""
    input:
        claims=CLAIM_FILES,
        script=script_input("gather_claims"),
    output:
        claims_all_studies("results/claims.csv", "claims"),
    log:
        log_file("gather_claims"),
    benchmark:
        bench_file("gather_claims")
    conda:
        CONDA_ENV
    threads: 1
    script:
        "../workflow_scripts/gather_claims.py"


rule claims_figures:
    """Forest plots of the claims (all studies and one per study) and the verdict overview."""
    input:
        all="results/claims.csv",
        claims=CLAIM_FILES,
        script=script_input("claims_figures"),
    output:
        forest=claims_all_studies(figure("claims_forest"), "claims_forest"),
        overview=claims_all_studies(figure("claims_overview"), "claims_overview"),
        studies=[
            claims_all_studies(figure(f"claims_{Path(f).stem}"), "claims_forest")
            for f in CLAIM_FILES
        ],
    log:
        log_file("claims_figures"),
    benchmark:
        bench_file("claims_figures")
    conda:
        CONDA_ENV
    threads: 1
    script:
        "../workflow_scripts/claims_figures.py"


rule summary_figures:
    """Paper vs this run, Ilyas et al. Fig. 2b-style bars, training curves of every method."""
    input:
        tables=[table(t) for t in PUBLISHED_TABLES],
        metrics=expand(
            metrics_csv(), dataset=DATASET, arch=ARCH, method=PLAN.train_methods()
        ),
        script=script_input("summary_figures"),
    output:
        **(
            {
                "ilyas_bars": ilyas_robust_and_non_robust_datasets(
                    figure("ilyas_bars"), "ilyas_bars"
                )
            }
            if "ilyas" in RUN_STUDIES
            else {}
        ),
        paper_vs_ours=published_numbers(figure("paper_vs_ours"), "paper_vs_ours"),
        training_curves=training_trained_models(
            figure("training_curves"), "training_curves"
        ),
    log:
        log_file("summary_figures"),
    benchmark:
        bench_file("summary_figures")
    conda:
        CONDA_ENV
    threads: 1
    params:
        methods=PLAN.train_methods(),
        setting=f"{DATASET} / {ARCH}",
    script:
        "../workflow_scripts/summary_figures.py"


rule summary:
    """results/summary.md: the tables of every study and the claims (one page per run)."""
    input:
        training=table("training", "md"),
        tables=[table(t, "md") for ts in STUDIES.values() for t in ts],
        claims="results/claims.csv",
        script=script_input("summary"),
    output:
        "results/summary.md",
    log:
        log_file("summary"),
    conda:
        CONDA_ENV
    # no benchmark: the summary reads results/benchmarks for the run time of the whole DAG
    threads: 1
    params:
        studies=STUDIES,
        figures=[figure(f) for f in FIGURES],
        bench_dir="results/benchmarks",
    script:
        "../workflow_scripts/summary.py"


TARGETS += ["results/summary.md"]
TARGETS += rules.claims_figures.output + rules.summary_figures.output
