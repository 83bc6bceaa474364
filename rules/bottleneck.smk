# rules of the bottleneck stage (Kim, Lee, Ro 2021); see rules/common.smk for path helpers
#
# distill:            one HDF5 per (model, input in clean | attack, beta)
# bottleneck_tables:  Tables 1 and 2 with controls, the beta sweep (csv + figure), claims
# bottleneck_tsne:    t-SNE of Z, Z_r, Z_nr for clean and attacked inputs


include: "helpers/bottleneck.smk"


rule distill:
    """IB distillation (sigma, sigma_z, robust masks, predictions of Z, Z_r, Z_nr) on one input kind."""
    input:
        unpack(distill_inputs),
        script=script_input("distill"),
    output:
        P.bottleneck_h5(),
    log:
        P.log_file("distill", tag("{dataset}_{arch}_{method}_{input}_beta{beta}")),
    benchmark:
        P.bench_file("distill", tag("{dataset}_{arch}_{method}_{input}_beta{beta}"))
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        **PLAN.resources("bottleneck"),
        gpu=PLAN.gpus(),
    params:
        ib=PLAN.ib_params(),
        seed=PLAN.seed_of,
        runtime=RUNTIME,
    script:
        "../workflow_scripts/distill.py"


rule bottleneck_tables:
    """Kim et al. Tables 1 and 2 with the label-leakage controls, the beta sweep and the claims."""
    input:
        table=table_distill_files(DATASET, ARCH),
        sweep=sweep_distill_files(DATASET, ARCH),
        script=script_input("bottleneck_tables"),
    output:
        table1=kim_information_bottleneck(P.table("kim_table1"), "kim_table1"),
        table1_md=P.table("kim_table1", "md"),
        table2=kim_information_bottleneck(P.table("kim_table2"), "kim_table2"),
        table2_md=P.table("kim_table2", "md"),
        sweep=kim_information_bottleneck(
            P.table("kim_beta_sweep"), "kim_beta_sweep_table"
        ),
        sweep_md=P.table("kim_beta_sweep", "md"),
        sweep_fig=kim_information_bottleneck(
            P.figure("kim_beta_sweep"), "kim_beta_sweep_figure"
        ),
        claims=P.claims_csv("bottleneck"),
    log:
        P.log_file("bottleneck_tables", tag()),
    benchmark:
        P.bench_file("bottleneck_tables", tag())
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        dataset=DATASET,
        arch=ARCH,
        beta=beta_tag(IB["beta"]),
        methods=PLAN.ib_methods(),
        attacks=IB["attacks"],
        sweep_methods=PLAN.ib_methods("sweep_methods"),
        betas=PLAN.ib_betas(),
        claims=config["report"]["claims"],
    script:
        "../workflow_scripts/bottleneck_tables.py"


rule bottleneck_tsne:
    """t-SNE (scikit-learn) of pooled Z, Z_r and Z_nr for clean and attacked test inputs."""
    input:
        clean=P.bottleneck_h5(
            "clean", beta_tag(IB["beta"]), IB["tsne"]["method"], DATASET, ARCH
        ),
        attacked=P.bottleneck_h5(
            IB["tsne"]["attack"],
            beta_tag(IB["beta"]),
            IB["tsne"]["method"],
            DATASET,
            ARCH,
        ),
        script=script_input("bottleneck_tsne"),
    output:
        kim_information_bottleneck(P.figure("kim_tsne"), "kim_tsne"),
    log:
        P.log_file("bottleneck_tsne", tag()),
    benchmark:
        P.bench_file("bottleneck_tsne", tag())
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        tsne=IB["tsne"],
        seed=PLAN.seed_of,
    script:
        "../workflow_scripts/bottleneck_tsne.py"
