# The report stage: the training table, results/claims.csv, results/summary.md (the README's
# results section) and the captions of `snakemake --report results/report.html`.

STUDIES = {
    "Ilyas et al. 2019: robust and non-robust datasets": [
        "ilyas_datasets",
        "ilyas_transfer",
    ],
    "Kim, Lee, Ro 2021: information bottleneck": [
        "kim_table1",
        "kim_table2",
        "kim_beta_sweep",
    ],
    "Kim, Lee, Ro 2021: attacks and NRF": ["kim_table3", "kim_table4"],
    "Zhang et al.: mutual information": [
        "mutual_info_final",
        "mutual_info_distortions",
    ],
}
CLAIM_FILES = [
    claims_csv(s)
    for s in ("ilyas", "ilyas_transfer", "bottleneck", "attacks", "mutual_info")
]
if not MI["methods"]:  # the MI stage is skipped (mutual_info.methods: [])
    del STUDIES["Zhang et al.: mutual information"]
    CLAIM_FILES.remove(claims_csv("mutual_info"))
FIGURES = [
    "ilyas_samples",
    "ilyas_transfer",
    "kim_beta_sweep",
    "kim_tsne",
    "robust_acc_vs_eps",
    "mi_information_plane",
    "mi_vs_epoch",
    "mi_distortions",
]
if not MI["methods"]:
    FIGURES = [f for f in FIGURES if not f.startswith("mi_")]


localrules:
    training_table,
    gather_claims,
    summary,


rule training_table:
    """Final clean / PGD accuracy and wall time of every trained model."""
    input:
        metrics=expand(
            metrics_csv(), dataset=DATASET, arch=ARCH, method=train_methods()
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
        methods=train_methods(),
        benchmarks=[train_bench(m) for m in train_methods()],
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


rule summary:
    """results/summary.md: the tables of every study and the claims (README results section)."""
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
