# rules of the attacks stage (Kim, Lee, Ro 2021 Tables 3-4); see rules/common.smk for path helpers
#
# attack:         one HDF5 per (model, suite attack): adversarial images, predictions, norms
# attack_sweep:   robust accuracy of one Linf attack against the eps list (attacks.sweep)
# attack_tables:  Table 3, Table 4, the eps figure and the claims


wildcard_constraints:
    attack=r"[a-z][a-z0-9_]*",


ATK = config["attacks"]


def attack_models():
    """attacks.models, each enabled under training.methods (checked before any job runs)."""
    bad = [m for m in ATK["models"] if m not in train_methods()]
    if bad:
        raise ValueError(
            f"config attacks.models names {bad}, not enabled under training.methods; "
            "enable them there or drop them here"
        )
    return list(ATK["models"])


def attack_cells():
    """(method, attack) pairs the suite runs: every suite attack on its models."""
    cells = []
    for name, spec in ATK["suite"].items():
        only = spec.get("models")
        bad = [m for m in (only or []) if m not in attack_models()]
        if bad:
            raise ValueError(
                f"config attacks.suite.{name}.models names {bad}, not in attacks.models"
            )
        cells += [(m, name) for m in attack_models() if not only or m in only]
    return cells


def sweep_cells():
    for name in ATK["sweep"]["attacks"]:
        if name not in ATK["suite"]:
            raise ValueError(
                f"config attacks.sweep.attacks names {name!r}, not in attacks.suite"
            )
    bad = [m for m in ATK["sweep"]["models"] if m not in attack_models()]
    if bad:
        raise ValueError(
            f"config attacks.sweep.models names {bad}, not in attacks.models"
        )
    return [(m, a) for m in ATK["sweep"]["models"] for a in ATK["sweep"]["attacks"]]


def attack_slice(name):
    """Everything one attack job uses: its suite entry and the shared settings."""
    if name not in ATK["suite"]:
        raise ValueError(f"attack {name!r} is not under config key attacks.suite")
    spec = ATK["suite"][name]
    out = {
        "name": name,
        "spec": spec,
        "eps": ATK["eps"],
        "eval_subset": ATK["eval_subset"],
        "batch_size": ATK["batch_size"],
    }
    if spec["type"] == "nrf":
        out["nrf"] = ATK["nrf"]
    return out


def attack_lib(wc):
    mods = ["attacks", "training", "models", "data"]
    if ATK["suite"].get(wc.attack, {}).get("type") == "nrf":
        mods.append("bottleneck")
    return lib(*mods)


rule attack:
    """One suite attack against one trained model on the seeded test subset (eval mode)."""
    input:
        model=model_pt(),
        data=data_h5(),
        lib=attack_lib,
        script=script_input("attack"),
    output:
        attack_h5(),
    log:
        log_file("attack", "{dataset}_{arch}_{method}_{attack}"),
    benchmark:
        bench_file("attack", "{dataset}_{arch}_{method}_{attack}")
    threads: config["threads"]
    resources:
        **compute_resources("attack"),
        gpu=gpus(),
    params:
        attack=lambda wc: attack_slice(wc.attack),
        seed=SEED,
        runtime=runtime_params(),
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/attack.py"


rule attack_sweep:
    """Robust accuracy of one Linf attack for each eps of attacks.sweep.eps (eps 0: clean)."""
    input:
        model=model_pt(),
        data=data_h5(),
        lib=attack_lib,
        script=script_input("attack_sweep"),
    output:
        attack_sweep_csv(),
    log:
        log_file("attack_sweep", "{dataset}_{arch}_{method}_{attack}"),
    benchmark:
        bench_file("attack_sweep", "{dataset}_{arch}_{method}_{attack}")
    threads: config["threads"]
    resources:
        **compute_resources("attack"),
        gpu=gpus(),
    params:
        attack=lambda wc: attack_slice(wc.attack),
        sweep=ATK["sweep"],
        seed=SEED,
        runtime=runtime_params(),
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/attack_sweep.py"


rule attack_tables:
    """Kim et al. Table 3 (attack suite), Table 4 (gradient ablations), eps figure, claims."""
    input:
        attacks=[attack_h5(a, m, DATASET, ARCH) for m, a in attack_cells()],
        sweeps=[attack_sweep_csv(a, m, DATASET, ARCH) for m, a in sweep_cells()],
        lib=lib("reporting.__init__", "reporting.attacks"),
        script=script_input("attack_tables"),
    output:
        table3=report(
            table("kim_table3"),
            caption="../report/kim_table3.rst",
            category="Kim, Lee, Ro 2021",
            subcategory="Attacks and NRF",
        ),
        table3_md=table("kim_table3", "md"),
        table4=report(
            table("kim_table4"),
            caption="../report/kim_table4.rst",
            category="Kim, Lee, Ro 2021",
            subcategory="Attacks and NRF",
        ),
        table4_md=table("kim_table4", "md"),
        figure=report(
            figure("robust_acc_vs_eps"),
            caption="../report/robust_acc_vs_eps.rst",
            category="Kim, Lee, Ro 2021",
            subcategory="Attacks and NRF",
        ),
        claims=claims_csv("attacks"),
    log:
        log_file("attack_tables"),
    benchmark:
        bench_file("attack_tables")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        setting={
            "dataset": DATASET,
            "arch": ARCH,
            "arch_options": arch_options(ARCH),
            "eps": ATK["eps"],
        },
        models=attack_models(),
        suite=ATK["suite"],
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/attack_tables.py"


TARGETS += rules.attack_tables.output
