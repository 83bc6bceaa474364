# Wildcards and input functions of the bottleneck stage (rules in rules/bottleneck.smk); what
# each job receives comes from advfeatures.plan. Included at the top of that file.


wildcard_constraints:
    input=r"[A-Za-z0-9_]+",
    beta=r"[0-9][0-9.e+\-]*",


IB = config["bottleneck"]


def distill_inputs(wc):
    inputs = {
        "model": P.model_pt(wc.method, wc.dataset, wc.arch, wc.rep),
        "data": P.data_h5(wc.dataset),
    }
    if wc.input != "clean":
        inputs["attack"] = P.attack_h5(wc.input, wc.method, wc.dataset, wc.arch, wc.rep)
        inputs["clean"] = P.bottleneck_h5(
            "clean", wc.beta, wc.method, wc.dataset, wc.arch, wc.rep
        )
    return inputs


def table_distill_files(dataset="{dataset}", arch="{arch}"):
    return expand(
        P.bottleneck_h5(beta=beta_tag(IB["beta"]), dataset=dataset, arch=arch),
        method=PLAN.ib_methods(),
        input=PLAN.ib_inputs(),
        allow_missing=True,
    )


def sweep_distill_files(dataset="{dataset}", arch="{arch}"):
    return expand(
        P.bottleneck_h5(input="clean", dataset=dataset, arch=arch),
        method=PLAN.ib_methods("sweep_methods"),
        beta=PLAN.ib_betas(),
        allow_missing=True,
    )
