# Config slices, checks and input functions of the attacks stage (rules in rules/attacks.smk).
# Kept apart from the rules, as `snakemake --lint` asks; included at the top of that file.


wildcard_constraints:
    attack=r"[a-z][a-z0-9_]*",


ATK = config["attacks"]


def attack_models():
    """attacks.models, each enabled under training.methods (checked before any job runs)."""
    return enabled_methods("attacks.models", ATK["models"])


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
    """Lazy library inputs of one attack job (advfeatures.deps.LAZY): NRF runs the bottleneck."""
    if ATK["suite"].get(wc.attack, {}).get("type") == "nrf":
        return lib_files("advfeatures.bottleneck")
    return []
