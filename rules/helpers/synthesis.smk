# Wildcards of the synthesis stage (rules in rules/synthesis.smk); which model each set is made
# from and what each job receives come from advfeatures.plan. Included at the top of that file.


SYN = config["synthesis"]
SYN_KINDS = PLAN.synthesis_kinds()


wildcard_constraints:
    kind="|".join(SYNTHESIS_KINDS),
    train_arch=r"[A-Za-z0-9_\-]+",


def transfer_target_dir(dataset="{dataset}", arch="{arch}", train_arch="{train_arch}"):
    """A transfer target of paper Fig. 3: train_arch trained by standard training on the original D."""
    return f"results/{dataset}/{arch}/transfer/{train_arch}"
