# rules of the bottleneck stage (Kim, Lee, Ro 2021); see rules/common.smk for path helpers
#
# distill:            one HDF5 per (model, input in clean | attack, beta)
# bottleneck_tables:  Tables 1 and 2 with controls, the beta sweep (csv + figure), claims
# bottleneck_tsne:    t-SNE of Z, Z_r, Z_nr for clean and attacked inputs


wildcard_constraints:
    input=r"[A-Za-z0-9_]+",
    beta=r"[0-9][0-9.e+\-]*",


IB = config["bottleneck"]


def beta_tag(beta):
    """The file-name form of a beta value (0.3 -> '0.3', 1.0 -> '1', 1e-2 -> '0.01')."""
    return f"{float(beta):g}"


def ib_methods(key="methods"):
    bad = [m for m in IB[key] if m not in train_methods()]
    if bad:
        raise ValueError(
            f"config bottleneck.{key} names {bad}, not enabled under training.methods; "
            "enable them there or drop them here"
        )
    return list(IB[key])


def ib_attacks():
    suite = (config.get("attacks") or {}).get("suite") or {}
    bad = [a for a in IB["attacks"] + [IB["tsne"]["attack"]] if a not in suite]
    if bad:
        raise ValueError(
            f"config bottleneck.attacks / bottleneck.tsne.attack name {bad}, not under attacks.suite; "
            "add them there or drop them here"
        )
    return list(IB["attacks"])


def ib_inputs():
    return ["clean"] + ib_attacks()


def ib_subset():
    """Clean rows: bottleneck.subset, else the attack stage's subset (covers every attacked row)."""
    if IB["subset"] is not None:
        return IB["subset"]
    return (config.get("attacks") or {}).get("eval_subset")


def ib_betas():
    return sorted({beta_tag(b) for b in IB["betas"]}, key=float)


def distill_inputs(wc):
    inputs = {
        "model": model_pt(wc.method, wc.dataset, wc.arch),
        "data": data_h5(wc.dataset),
    }
    if wc.input != "clean":
        inputs["attack"] = attack_h5(wc.input, wc.method, wc.dataset, wc.arch)
        inputs["clean"] = bottleneck_h5(
            "clean", wc.beta, wc.method, wc.dataset, wc.arch
        )
    return inputs


def table_distill_files(dataset="{dataset}", arch="{arch}"):
    return expand(
        bottleneck_h5(beta=beta_tag(IB["beta"]), dataset=dataset, arch=arch),
        method=ib_methods(),
        input=ib_inputs(),
    )


def sweep_distill_files(dataset="{dataset}", arch="{arch}"):
    return expand(
        bottleneck_h5(input="clean", dataset=dataset, arch=arch),
        method=ib_methods("sweep_methods"),
        beta=ib_betas(),
    )


rule distill:
    """IB distillation (sigma, sigma_z, robust masks, predictions of Z, Z_r, Z_nr) on one input kind."""
    input:
        unpack(distill_inputs),
        lib=lib("bottleneck", "training", "models", "data"),
        script=script_input("distill"),
    output:
        bottleneck_h5(),
    log:
        log_file("distill", "{dataset}_{arch}_{method}_{input}_beta{beta}"),
    benchmark:
        bench_file("distill", "{dataset}_{arch}_{method}_{input}_beta{beta}")
    threads: config["threads"]
    resources:
        **compute_resources("bottleneck"),
        gpu=gpus(),
    params:
        ib={
            **{k: IB[k] for k in ("iterations", "lr", "batch_size", "threshold")},
            "subset": ib_subset(),
        },
        seed=SEED,
        runtime=runtime_params(),
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/distill.py"


rule bottleneck_tables:
    """Kim et al. Tables 1 and 2 with the label-leakage controls, the beta sweep and the claims."""
    input:
        table=table_distill_files(DATASET, ARCH),
        sweep=sweep_distill_files(DATASET, ARCH),
        lib=lib("reporting.__init__", "reporting.bottleneck"),
        script=script_input("bottleneck_tables"),
    output:
        table1=report(
            table("kim_table1"),
            caption="../report/kim_table1.rst",
            category="Kim, Lee, Ro 2021",
            subcategory="Information bottleneck",
        ),
        table1_md=table("kim_table1", "md"),
        table2=report(
            table("kim_table2"),
            caption="../report/kim_table2.rst",
            category="Kim, Lee, Ro 2021",
            subcategory="Information bottleneck",
        ),
        table2_md=table("kim_table2", "md"),
        sweep=report(
            table("kim_beta_sweep"),
            caption="../report/kim_beta_sweep_table.rst",
            category="Kim, Lee, Ro 2021",
            subcategory="Information bottleneck",
        ),
        sweep_md=table("kim_beta_sweep", "md"),
        sweep_fig=report(
            figure("kim_beta_sweep"),
            caption="../report/kim_beta_sweep_figure.rst",
            category="Kim, Lee, Ro 2021",
            subcategory="Information bottleneck",
        ),
        claims=claims_csv("bottleneck"),
    log:
        log_file("bottleneck_tables"),
    benchmark:
        bench_file("bottleneck_tables")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        dataset=DATASET,
        arch=ARCH,
        beta=beta_tag(IB["beta"]),
        methods=ib_methods(),
        attacks=ib_attacks(),
        sweep_methods=ib_methods("sweep_methods"),
        betas=ib_betas(),
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/bottleneck_tables.py"


rule bottleneck_tsne:
    """t-SNE (scikit-learn) of pooled Z, Z_r and Z_nr for clean and attacked test inputs."""
    input:
        clean=bottleneck_h5(
            "clean", beta_tag(IB["beta"]), IB["tsne"]["method"], DATASET, ARCH
        ),
        attacked=bottleneck_h5(
            IB["tsne"]["attack"],
            beta_tag(IB["beta"]),
            IB["tsne"]["method"],
            DATASET,
            ARCH,
        ),
        lib=lib("reporting.__init__", "reporting.bottleneck"),
        script=script_input("bottleneck_tsne"),
    output:
        report(
            figure("kim_tsne"),
            caption="../report/kim_tsne.rst",
            category="Kim, Lee, Ro 2021",
            subcategory="Information bottleneck",
        ),
    log:
        log_file("bottleneck_tsne"),
    benchmark:
        bench_file("bottleneck_tsne")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        tsne=IB["tsne"],
        seed=SEED,
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/bottleneck_tsne.py"


TARGETS += rules.bottleneck_tables.output + rules.bottleneck_tsne.output
