# Wildcards and input functions of the attacks stage (rules in rules/attacks.smk); what each job
# receives comes from advfeatures.plan. Included at the top of that file.


wildcard_constraints:
    attack=r"[a-z][a-z0-9_]*",


ATK = config["attacks"]


def attack_lib(wc):
    """Lazy library inputs of one attack job (advfeatures.deps.LAZY): NRF runs the bottleneck."""
    return lib_files(*PLAN.attack_modules(wc.attack))
