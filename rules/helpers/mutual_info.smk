# Config slices, checks and input functions of the mutual_info stage (rules in rules/mutual_info.smk).
# Kept apart from the rules, as `snakemake --lint` asks; included at the top of that file.


MI = config["mutual_info"]


def mi_methods():
    return enabled_methods("mutual_info.methods", MI["methods"], trained=True)


def mi_params(distortions=False):
    """Estimator and input settings; the attack resolved (null -> training.common.attack)."""
    p = {k: MI[k] for k in ("n_samples", "batch_size", "estimators", "kde", "binning")}
    p["max_block_mib"] = MI.get("max_block_mib", 256)
    p["attack"] = MI["attack"] or config["training"]["common"]["attack"]
    if distortions:
        p["distortions"] = MI["distortions"]
    else:  # the claims' intervals need replicates only of the per-epoch estimates
        p["bootstrap"] = MI.get("bootstrap", 200)
    return p
