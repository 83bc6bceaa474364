# Wildcards of the synthesis stage (rules in rules/synthesis.smk); which model each set is made
# from and what each job receives come from advfeatures.plan. Included at the top of that file.


SYN = config["synthesis"]
SYN_KINDS = PLAN.synthesis_kinds()


wildcard_constraints:
    kind="|".join(SYNTHESIS_KINDS),
    train_arch=r"[A-Za-z0-9_\-]+",
