# rules of the attacks stage (Kim, Lee, Ro 2021 Tables 3-4); see rules/common.smk for path helpers
#
# attack:         one HDF5 per (model, suite attack): adversarial images, predictions, norms
# attack_sweep:   robust accuracy of one Linf attack against the eps list (attacks.sweep)
# attack_tables:  Table 3, Table 4, the eps figure and the claims


include: "helpers/attacks.smk"


rule attack:
    """One suite attack against one trained model on the seeded test subset (eval mode)."""
    input:
        model=P.model_pt(),
        data=P.data_h5(),
        lib=attack_lib,
        script=script_input("attack"),
    output:
        P.attack_h5(),
    log:
        P.log_file("attack", tag("{dataset}_{arch}_{method}_{attack}")),
    benchmark:
        P.bench_file("attack", tag("{dataset}_{arch}_{method}_{attack}"))
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        **PLAN.resources("attack"),
        gpu=PLAN.gpus(),
    params:
        attack=lambda wc: PLAN.attack_slice(wc.attack),
        seed=PLAN.seed_of,
        runtime=RUNTIME,
    script:
        "../workflow_scripts/attack.py"


rule attack_sweep:
    """Robust accuracy of one Linf attack for each eps of attacks.sweep.eps (eps 0: clean)."""
    input:
        model=P.model_pt(),
        data=P.data_h5(),
        lib=attack_lib,
        script=script_input("attack_sweep"),
    output:
        P.attack_sweep_csv(),
    log:
        P.log_file("attack_sweep", tag("{dataset}_{arch}_{method}_{attack}")),
    benchmark:
        P.bench_file("attack_sweep", tag("{dataset}_{arch}_{method}_{attack}"))
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        **PLAN.resources("attack"),
        gpu=PLAN.gpus(),
    params:
        attack=lambda wc: PLAN.attack_slice(wc.attack),
        sweep=ATK["sweep"],
        seed=PLAN.seed_of,
        runtime=RUNTIME,
    script:
        "../workflow_scripts/attack_sweep.py"


rule attack_tables:
    """Kim et al. Table 3 (attack suite), Table 4 (gradient ablations), eps figure, claims."""
    input:
        attacks=[P.attack_h5(a, m, DATASET, ARCH) for m, a in PLAN.attack_cells()],
        sweeps=[P.attack_sweep_csv(a, m, DATASET, ARCH) for m, a in PLAN.sweep_cells()],
        script=script_input("attack_tables"),
    output:
        table3=kim_attacks_and_nrf(P.table("kim_table3"), "kim_table3"),
        table3_md=P.table("kim_table3", "md"),
        table4=kim_attacks_and_nrf(P.table("kim_table4"), "kim_table4"),
        table4_md=P.table("kim_table4", "md"),
        figure=kim_attacks_and_nrf(P.figure("robust_acc_vs_eps"), "robust_acc_vs_eps"),
        claims=P.claims_csv("attacks"),
    log:
        P.log_file("attack_tables", tag()),
    benchmark:
        P.bench_file("attack_tables", tag())
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        setting={
            "dataset": DATASET,
            "arch": ARCH,
            "arch_options": PLAN.arch_options(ARCH),
            "eps": ATK["eps"],
        },
        models=PLAN.attack_models(),
        suite=ATK["suite"],
        claims=config["report"]["claims"],
    script:
        "../workflow_scripts/attack_tables.py"
