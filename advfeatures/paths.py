"""Every file path of the workflow, in one place (the rule files use these helpers; no rule
builds a path by hand).

One run, one folder: :class:`RunPaths` roots every output of a run under ``results/<run>/``
(``run``: config key ``run``, :func:`advfeatures.config.run_name`).  Inside it each training
replicate has its own model set and reports under ``rep<r>/`` (wildcard ``{rep}``); the tables,
claims and figures over all replicates sit at the top of the run folder.  Prepared data is
shared between runs that agree on the dataset settings: ``data/<dataset>_<key>.h5``, ``key`` a
short hash of those settings (:func:`data_key`).  Resume state (not an output) lives under
``results/.resume/<run>/``.

Each helper takes its wildcards as arguments, defaulting to the wildcard pattern itself
(``model_pt()`` is ``results/<run>/rep{rep}/{dataset}/{arch}/{method}/model.pt``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

RESULTS = "results"
RESUME = f"{RESULTS}/.resume"
#: dataset settings that do not change the prepared data (left out of its key)
_NOT_IN_DATA_KEY = frozenset({"download"})


def data_key(dataset_params: Mapping) -> str:
    """8 hex digits naming the prepared data of ``dataset_params`` (the prepare_data params)."""
    kept = {k: v for k, v in dataset_params.items() if k not in _NOT_IN_DATA_KEY}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:8]


class RunPaths:
    """The paths of one run (``run``: its folder name) over data keyed by ``data_key``."""

    def __init__(self, run: str, data_key: str):
        self.run = run
        self.key = data_key
        self.root = f"{RESULTS}/{run}"
        self.resume_root = f"{RESUME}/{run}"

    # ------------------------------------------------------------------ data and replicates

    def data_h5(self, dataset="{dataset}"):
        return f"data/{dataset}_{self.key}.h5"

    def data_log(self, dataset="{dataset}", ext="log"):
        """prepare_data's log / benchmark: beside the data it made, shared by the runs using it."""
        return f"data/logs/{dataset}_{self.key}.{ext}"

    def rep_dir(self, rep="{rep}"):
        """One replicate: its models, attacks, sets and per-replicate reports."""
        return f"{self.root}/rep{rep}"

    def run_config(self):
        """The run's resolved config (every key, as the jobs received it)."""
        return f"{self.root}/config.yaml"

    # ------------------------------------------------------------------ models (per replicate)

    def run_dir(self, method="{method}", dataset="{dataset}", arch="{arch}", rep="{rep}"):
        return f"{self.rep_dir(rep)}/{dataset}/{arch}/{method}"

    def model_pt(self, method="{method}", dataset="{dataset}", arch="{arch}", rep="{rep}"):
        return f"{self.run_dir(method, dataset, arch, rep)}/model.pt"

    def metrics_csv(self, method="{method}", dataset="{dataset}", arch="{arch}", rep="{rep}"):
        return f"{self.run_dir(method, dataset, arch, rep)}/metrics.csv"

    def checkpoint_pt(self, epoch="{epoch}", method="{method}", dataset="{dataset}", arch="{arch}",
                      rep="{rep}"):
        return f"{self.run_dir(method, dataset, arch, rep)}/checkpoints/epoch_{epoch}.pt"

    def resume_dir(self, *parts: str, rep="{rep}", dataset="{dataset}", arch="{arch}"):
        """Where a long job keeps its resume state (not an output: survives a killed job)."""
        return "/".join([self.resume_root, f"rep{rep}", dataset, arch, *parts])

    def attack_h5(self, attack="{attack}", method="{method}", dataset="{dataset}", arch="{arch}",
                  rep="{rep}"):
        return f"{self.run_dir(method, dataset, arch, rep)}/attacks/{attack}.h5"

    def attack_sweep_csv(self, attack="{attack}", method="{method}", dataset="{dataset}",
                         arch="{arch}", rep="{rep}"):
        """Robust accuracy of one attack against the Linf eps list (attacks.sweep)."""
        return f"{self.run_dir(method, dataset, arch, rep)}/attacks/sweep_{attack}.csv"

    def synthetic_h5(self, kind="{kind}", dataset="{dataset}", arch="{arch}", rep="{rep}"):
        return f"{self.rep_dir(rep)}/{dataset}/{arch}/synthetic/{kind}.h5"

    def synthetic_run_dir(self, kind="{kind}", dataset="{dataset}", arch="{arch}",
                          train_arch="{train_arch}", rep="{rep}"):
        return f"{self.rep_dir(rep)}/{dataset}/{arch}/synthetic/{kind}/{train_arch}"

    def ilyas_eval_csv(self, method="{method}", dataset="{dataset}", arch="{arch}", rep="{rep}"):
        """Clean/robust accuracy of a model trained on D under the synthesis stage's attacks."""
        return f"{self.run_dir(method, dataset, arch, rep)}/ilyas_eval.csv"

    def transfer_target_dir(self, dataset="{dataset}", arch="{arch}", train_arch="{train_arch}",
                            rep="{rep}"):
        """A transfer target of paper Fig. 3: train_arch trained by standard training on the original D."""
        return f"{self.rep_dir(rep)}/{dataset}/{arch}/transfer/{train_arch}"

    def bottleneck_h5(self, input="{input}", beta="{beta}", method="{method}", dataset="{dataset}",
                      arch="{arch}", rep="{rep}"):
        return f"{self.run_dir(method, dataset, arch, rep)}/bottleneck/{input}_beta{beta}.h5"

    def mi_dir(self, method="{method}", dataset="{dataset}", arch="{arch}", rep="{rep}"):
        return f"{self.run_dir(method, dataset, arch, rep)}/mutual_info"

    def mi_epoch_csv(self, epoch="{epoch}", method="{method}", dataset="{dataset}", arch="{arch}",
                     rep="{rep}"):
        return f"{self.mi_dir(method, dataset, arch, rep)}/epoch_{epoch}.csv"

    def mi_distortions_part_csv(self, method="{method}", dataset="{dataset}", arch="{arch}", rep="{rep}"):
        return f"{self.mi_dir(method, dataset, arch, rep)}/distortions.csv"

    def mi_csv(self, dataset="{dataset}", arch="{arch}", name="mutual_info", rep="{rep}"):
        """Merged MI tables: name mutual_info (per epoch) or mutual_info_distortions."""
        return f"{self.rep_dir(rep)}/{dataset}/{arch}/{name}.csv"

    # ------------------------------------------------------------------ reports

    def table(self, name, ext="csv", rep="{rep}"):
        """One replicate's table."""
        return f"{self.rep_dir(rep)}/tables/{name}.{ext}"

    def figure(self, name, rep="{rep}"):
        """One replicate's figure."""
        return f"{self.rep_dir(rep)}/figures/{name}.png"

    def claims_csv(self, name, rep="{rep}"):
        """One replicate's claims of one stage (``name``), or all of them (``name`` None)."""
        return f"{self.rep_dir(rep)}/claims.csv" if name is None else f"{self.rep_dir(rep)}/claims/{name}.csv"

    def run_table(self, name, ext="csv"):
        """A table over every replicate: per-replicate rows and their mean with its interval."""
        return f"{self.root}/tables/{name}.{ext}"

    def run_figure(self, name):
        return f"{self.root}/figures/{name}.png"

    def run_claims_csv(self, name=None):
        """The run's claims (tested over the replicates) of one stage, or all of them."""
        return f"{self.root}/claims.csv" if name is None else f"{self.root}/claims/{name}.csv"

    def summary_md(self):
        return f"{self.root}/summary.md"

    def log_file(self, rule, tag=""):
        return f"{self.root}/logs/{rule}/{tag}.log" if tag else f"{self.root}/logs/{rule}.log"

    def bench_file(self, rule, tag=""):
        return f"{self.root}/benchmarks/{rule}/{tag}.tsv" if tag else f"{self.root}/benchmarks/{rule}.tsv"

    def bench_dir(self):
        return f"{self.root}/benchmarks"
