# The report stage.  Per replicate (results/<run>/rep<r>/): the training table, the replicate's
# claims.csv and the figures across studies.  Over the replicates (results/<run>/): every table
# with per-replicate rows and their mean (combine_tables), the claims tested over the replicates
# (combine_claims), the claims forest plots, summary.md, the resolved config, and the captions of
# `snakemake --report results/<run>/report.html`.

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
CLAIM_NAMES = [c for s in RUN_STUDIES for c in STUDY_CLAIMS[s]]
FIGURES = [f for s in RUN_STUDIES for f in STUDY_FIGURES[s]]
TABLE_NAMES = ["training", *(t for ts in STUDIES.values() for t in ts)]


# figures across studies: per replicate, paper vs this run, Ilyas et al. Fig. 2b-style bars (only
# when the Ilyas study runs) and the training curves; over the replicates, the claims forest
# plots and the verdict overview
CROSS_FIGURES = ["paper_vs_ours", "training_curves"]
if "ilyas" in RUN_STUDIES:
    CROSS_FIGURES.append("ilyas_bars")
FIGURES += CROSS_FIGURES
RUN_FIGURES = [
    "claims_forest",
    "claims_overview",
    *(f"claims_{c}" for c in CLAIM_NAMES),
]
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
    combine_table,
    combine_claims,
    gather_run_claims,
    summary,
    claims_figures,
    summary_figures,
    run_config,


# ----------------------------------------------------------------------------- per replicate


rule training_table:
    """Final clean / PGD accuracy and wall time of every model of one replicate."""
    input:
        metrics=expand(
            P.metrics_csv(),
            dataset=DATASET,
            arch=ARCH,
            method=PLAN.train_methods(),
            allow_missing=True,
        ),
        script=script_input("training_table"),
    output:
        csv=training_trained_models(P.table("training"), "training"),
        md=P.table("training", "md"),
    log:
        P.log_file("training_table", tag()),
    benchmark:
        P.bench_file("training_table", tag())
    conda:
        CONDA_ENV
    threads: 1
    params:
        methods=PLAN.train_methods(),
        benchmarks=lambda wc: [train_bench(m, wc.rep) for m in PLAN.train_methods()],
        attack=config["training"]["common"]["eval_attack"],
    script:
        "../workflow_scripts/training_table.py"


rule gather_claims:
    """One replicate's claims of every stage in one file (Holm within each study)."""
    input:
        claims=[P.claims_csv(c) for c in CLAIM_NAMES],
        script=script_input("gather_claims"),
    output:
        P.claims_csv(None),
    log:
        P.log_file("gather_claims", tag()),
    benchmark:
        P.bench_file("gather_claims", tag())
    conda:
        CONDA_ENV
    threads: 1
    script:
        "../workflow_scripts/gather_claims.py"


rule summary_figures:
    """Paper vs this replicate, Ilyas et al. Fig. 2b-style bars, training curves of every method."""
    input:
        tables=[P.table(t) for t in PUBLISHED_TABLES],
        metrics=expand(
            P.metrics_csv(),
            dataset=DATASET,
            arch=ARCH,
            method=PLAN.train_methods(),
            allow_missing=True,
        ),
        script=script_input("summary_figures"),
    output:
        **(
            {
                "ilyas_bars": ilyas_robust_and_non_robust_datasets(
                    P.figure("ilyas_bars"), "ilyas_bars"
                )
            }
            if "ilyas" in RUN_STUDIES
            else {}
        ),
        paper_vs_ours=published_numbers(P.figure("paper_vs_ours"), "paper_vs_ours"),
        training_curves=training_trained_models(
            P.figure("training_curves"), "training_curves"
        ),
    log:
        P.log_file("summary_figures", tag()),
    benchmark:
        P.bench_file("summary_figures", tag())
    conda:
        CONDA_ENV
    threads: 1
    params:
        methods=PLAN.train_methods(),
        setting=lambda wc: f"{DATASET} / {ARCH}, replicate {wc.rep}",
    script:
        "../workflow_scripts/summary_figures.py"


# ----------------------------------------------------------------------------- over the replicates


rule combine_table:
    """One table over the replicates: per-replicate rows and the mean with its interval."""
    input:
        tables=lambda wc: [P.table(wc.table, rep=r) for r in REPS],
        script=script_input("combine_table"),
    output:
        csv=P.run_table("{table}"),
        md=P.run_table("{table}", "md"),
    log:
        P.log_file("combine_table", "{table}"),
    benchmark:
        P.bench_file("combine_table", "{table}")
    wildcard_constraints:
        table="|".join(TABLE_NAMES),
    conda:
        CONDA_ENV
    threads: 1
    params:
        replicates=REPS,
        alpha=config["report"]["claims"]["alpha"],
    script:
        "../workflow_scripts/combine_table.py"


rule combine_claims:
    """One stage's claims tested over the replicates."""
    input:
        claims=lambda wc: [P.claims_csv(wc.stage, rep=r) for r in REPS],
        script=script_input("combine_claims"),
    output:
        P.run_claims_csv("{stage}"),
    log:
        P.log_file("combine_claims", "{stage}"),
    benchmark:
        P.bench_file("combine_claims", "{stage}")
    wildcard_constraints:
        stage="|".join(CLAIM_NAMES),
    conda:
        CONDA_ENV
    threads: 1
    params:
        replicates=REPS,
        alpha=config["report"]["claims"]["alpha"],
    script:
        "../workflow_scripts/combine_claims.py"


rule gather_run_claims:
    """The run's claims of every stage in one file (Holm within each study)."""
    input:
        claims=[P.run_claims_csv(c) for c in CLAIM_NAMES],
        script=script_input("gather_run_claims"),
    output:
        claims_all_studies(P.run_claims_csv(), "claims"),
    log:
        P.log_file("gather_run_claims"),
    benchmark:
        P.bench_file("gather_run_claims")
    conda:
        CONDA_ENV
    threads: 1
    script:
        "../workflow_scripts/gather_run_claims.py"


rule claims_figures:
    """Forest plots of the claims (all studies and one per stage) and the verdict overview."""
    input:
        all=P.run_claims_csv(),
        claims=[P.run_claims_csv(c) for c in CLAIM_NAMES],
        script=script_input("claims_figures"),
    output:
        forest=claims_all_studies(P.run_figure("claims_forest"), "claims_forest"),
        overview=claims_all_studies(P.run_figure("claims_overview"), "claims_overview"),
        studies=[
            claims_all_studies(P.run_figure(f"claims_{c}"), "claims_forest")
            for c in CLAIM_NAMES
        ],
    log:
        P.log_file("claims_figures"),
    benchmark:
        P.bench_file("claims_figures")
    conda:
        CONDA_ENV
    threads: 1
    script:
        "../workflow_scripts/claims_figures.py"


rule run_config:
    """The run's resolved config, every key as the jobs received it (results/<run>/config.yaml)."""
    input:
        script=script_input("run_config"),
    output:
        P.run_config(),
    log:
        P.log_file("run_config"),
    conda:
        CONDA_ENV
    threads: 1
    params:
        config=dict(config),
    script:
        "../workflow_scripts/run_config.py"


rule summary:
    """results/<run>/summary.md: the tables of every study and the claims (one page per run)."""
    input:
        training=P.run_table("training", "md"),
        tables=[P.run_table(t, "md") for ts in STUDIES.values() for t in ts],
        claims=P.run_claims_csv(),
        config=P.run_config(),
        script=script_input("summary"),
    output:
        P.summary_md(),
    log:
        P.log_file("summary"),
    conda:
        CONDA_ENV
    # no benchmark: the summary reads the run's benchmarks for the run time of the whole DAG
    threads: 1
    params:
        studies=STUDIES,
        figures=[P.run_figure(f) for f in RUN_FIGURES]
        + [P.figure(f, r) for r in REPS for f in FIGURES],
        bench_dir=P.bench_dir(),
        replicates=len(REPS),
    script:
        "../workflow_scripts/summary.py"


TARGETS += [P.summary_md(), P.run_config()]
TARGETS += expand(P.claims_csv(None), rep=REPS)
TARGETS += rules.claims_figures.output
TARGETS += expand(rules.summary_figures.output, rep=REPS)
for _study in RUN_STUDIES:
    STUDY_TARGETS[_study] += [
        P.run_table(t, ext)
        for ts in STUDY_TABLES[_study].values()
        for t in ts
        for ext in ("csv", "md")
    ]
    STUDY_TARGETS[_study] += [P.run_claims_csv(c) for c in STUDY_CLAIMS[_study]]
    STUDY_TARGETS[_study] += [
        P.figure(f, r) for r in REPS for f in STUDY_FIGURES[_study]
    ]
