# Config slices, checks and input functions of the synthesis stage (rules in rules/synthesis.smk).
# Kept apart from the rules, as `snakemake --lint` asks; included at the top of that file.


SYN = config["synthesis"]
SYN_KINDS = list(SYN["kinds"])
SYN_SOURCE = {
    "d_r": SYN["robust_method"],
    "d_nr": "standard",
    "d_rand": "standard",
    "d_det": "standard",
}
SYN_REFERENCE = ["standard", SYN["robust_method"]]

for _m in SYN_REFERENCE:
    if _m not in train_methods():
        raise ValueError(
            f"config: synthesis needs training method {_m!r} (standard, synthesis.robust_method); "
            f"enable it under training.methods"
        )
if SYN["transfer"]["attack"] not in SYN["eval"]["attacks"]:
    raise ValueError(
        f"config: synthesis.transfer.attack {SYN['transfer']['attack']!r} is not a key of synthesis.eval.attacks"
    )


wildcard_constraints:
    kind="|".join(["d_r", "d_nr", "d_rand", "d_det"]),
    train_arch=r"[A-Za-z0-9_\-]+",


def synthesis_params(kind):
    """Only what changes this kind's images (inversion for d_r/d_nr, targeted for d_rand/d_det)."""
    part = "inversion" if kind in ("d_r", "d_nr") else "targeted"
    return {
        "batch_size": SYN["batch_size"],
        part: SYN[part],
        "source_method": SYN_SOURCE[kind],
    }


def synthetic_train_arch(name):
    """The architecture and options behind a train_arch name (arch.name or synthesis.transfer)."""
    specs = {
        k: v for k, v in SYN["transfer"]["architectures"].items() if v is not False
    }
    if name in specs:
        arch = specs[name]["arch"]
        return {
            "arch": arch,
            "options": deep_merge(arch_options(arch), specs[name].get("options") or {}),
        }
    if name == ARCH:
        return {"arch": ARCH, "options": arch_options(ARCH)}
    raise ValueError(
        f"unknown train_arch {name!r}: not arch.name nor under synthesis.transfer.architectures"
    )


def synthetic_train_params(kind):
    t = deep_merge(config["training"]["common"], SYN["train"])
    t = deep_merge(t, (SYN.get("train_per_kind") or {}).get(kind) or {})
    t["method"] = "standard"
    return t


def synthetic_eval_params():
    return {**SYN["eval"], "transfer_attack": SYN["transfer"]["attack"]}


def transfer_archs():
    """arch.name plus the synthesis.transfer.architectures entries not set to false."""
    specs = SYN["transfer"]["architectures"]
    return [ARCH] + [a for a, v in specs.items() if v is not False and a != ARCH]


def transfer_target_dir(dataset="{dataset}", arch="{arch}", train_arch="{train_arch}"):
    """A transfer target of paper Fig. 3: train_arch trained by standard training on the original D."""
    return f"results/{dataset}/{arch}/transfer/{train_arch}"


def transfer_target_train_params():
    """The standard model's training settings (training.common + methods.standard), no
    checkpoints and no PGD curve: the target's robust accuracy is measured after training, on the
    original test set (its eval.csv)."""
    t = train_params("standard")
    t["checkpoint_epochs"] = []
    t["eval_pgd_epochs"] = "none"
    return t
