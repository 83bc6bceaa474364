"""Every file path of the workflow, in one place (the rule files import these helpers; no rule
builds a path by hand).  Each takes its wildcards as arguments, defaulting to the wildcard
pattern itself (``model_pt()`` is ``results/{dataset}/{arch}/{method}/model.pt``)."""

from __future__ import annotations


def data_h5(dataset="{dataset}"):
    return f"data/{dataset}.h5"


def run_dir(method="{method}", dataset="{dataset}", arch="{arch}"):
    return f"results/{dataset}/{arch}/{method}"


def model_pt(method="{method}", dataset="{dataset}", arch="{arch}"):
    return f"{run_dir(method, dataset, arch)}/model.pt"


def metrics_csv(method="{method}", dataset="{dataset}", arch="{arch}"):
    return f"{run_dir(method, dataset, arch)}/metrics.csv"


def checkpoint_pt(
    epoch="{epoch}", method="{method}", dataset="{dataset}", arch="{arch}"
):
    return f"{run_dir(method, dataset, arch)}/checkpoints/epoch_{epoch}.pt"


def resume_dir(method="{method}", dataset="{dataset}", arch="{arch}"):
    """Where a training job keeps its resume state (not an output: survives a killed job)."""
    return f"results/.resume/{dataset}/{arch}/{method}"


def attack_h5(attack="{attack}", method="{method}", dataset="{dataset}", arch="{arch}"):
    return f"{run_dir(method, dataset, arch)}/attacks/{attack}.h5"


def attack_sweep_csv(
    attack="{attack}", method="{method}", dataset="{dataset}", arch="{arch}"
):
    """Robust accuracy of one attack against the Linf eps list (attacks.sweep)."""
    return f"{run_dir(method, dataset, arch)}/attacks/sweep_{attack}.csv"


def synthetic_h5(kind="{kind}", dataset="{dataset}", arch="{arch}"):
    return f"results/{dataset}/{arch}/synthetic/{kind}.h5"


def synthetic_run_dir(
    kind="{kind}", dataset="{dataset}", arch="{arch}", train_arch="{train_arch}"
):
    return f"results/{dataset}/{arch}/synthetic/{kind}/{train_arch}"


def synthetic_resume_dir(
    kind="{kind}", dataset="{dataset}", arch="{arch}", train_arch=None
):
    """Resume state of synthesize (finished chunks) or, with train_arch, of train_synthetic."""
    base = f"results/.resume/{dataset}/{arch}/synthetic/{kind}"
    return f"{base}/{train_arch}" if train_arch else base


def ilyas_eval_csv(method="{method}", dataset="{dataset}", arch="{arch}"):
    """Clean/robust accuracy of a model trained on D under the synthesis stage's attacks."""
    return f"{run_dir(method, dataset, arch)}/ilyas_eval.csv"


def bottleneck_h5(
    input="{input}",
    beta="{beta}",
    method="{method}",
    dataset="{dataset}",
    arch="{arch}",
):
    return f"{run_dir(method, dataset, arch)}/bottleneck/{input}_beta{beta}.h5"


def mi_dir(method="{method}", dataset="{dataset}", arch="{arch}"):
    return f"{run_dir(method, dataset, arch)}/mutual_info"


def mi_epoch_csv(
    epoch="{epoch}", method="{method}", dataset="{dataset}", arch="{arch}"
):
    return f"{mi_dir(method, dataset, arch)}/epoch_{epoch}.csv"


def mi_distortions_part_csv(method="{method}", dataset="{dataset}", arch="{arch}"):
    return f"{mi_dir(method, dataset, arch)}/distortions.csv"


def mi_csv(dataset="{dataset}", arch="{arch}", name="mutual_info"):
    """Merged MI tables: name mutual_info (per epoch) or mutual_info_distortions."""
    return f"results/{dataset}/{arch}/{name}.csv"


def table(name, ext="csv"):
    return f"results/tables/{name}.{ext}"


def figure(name):
    return f"results/figures/{name}.png"


def claims_csv(name):
    return f"results/claims/{name}.csv"


def log_file(rule, tag=""):
    return f"results/logs/{rule}/{tag}.log" if tag else f"results/logs/{rule}.log"


def bench_file(rule, tag=""):
    return (
        f"results/benchmarks/{rule}/{tag}.tsv"
        if tag
        else f"results/benchmarks/{rule}.tsv"
    )


def transfer_target_dir(dataset="{dataset}", arch="{arch}", train_arch="{train_arch}"):
    """A transfer target of paper Fig. 3: train_arch trained by standard training on the original D."""
    return f"results/{dataset}/{arch}/transfer/{train_arch}"
