# Config slices, checks and input functions of the bottleneck stage (rules in rules/bottleneck.smk).
# Kept apart from the rules, as `snakemake --lint` asks; included at the top of that file.


wildcard_constraints:
    input=r"[A-Za-z0-9_]+",
    beta=r"[0-9][0-9.e+\-]*",


IB = config["bottleneck"]


def beta_tag(beta):
    """The file-name form of a beta value (0.3 -> '0.3', 1.0 -> '1', 1e-2 -> '0.01')."""
    return f"{float(beta):g}"


def ib_methods(key="methods"):
    return enabled_methods(f"bottleneck.{key}", IB[key])


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
