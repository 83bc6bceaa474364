"""What each job of the workflow receives, decided once from a resolved config.

The rule files declare jobs, files and resources; which models a study needs, which model each
synthetic set is made from, which settings a job gets (its ``params``, the config slices that
rerun it when they change) are decided here, in plain tested Python.  Torch-free (the Snakefile
imports it on every call).  The config passed in is complete and checked
(:func:`advfeatures.config.resolve`), so nothing here re-validates it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from advfeatures import registry as R


def deep_merge(base: Mapping, override: Mapping | None) -> dict:
    """``override`` over ``base``: mappings merge key by key, other values replace."""
    out = copy.deepcopy(dict(base))
    for k, v in (override or {}).items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def beta_tag(beta) -> str:
    """The file-name form of a beta value (0.3 -> '0.3', 1.0 -> '1', 1e-2 -> '0.01')."""
    return f"{float(beta):g}"


class Plan:
    """The jobs and params of one run (``config``: the resolved config dict)."""

    def __init__(self, config: Mapping[str, Any]):
        self.config = config
        self.dataset = config["dataset"]["name"]
        self.arch = config["arch"]["name"]
        self.seed = int(config["seed"])
        self.studies = list(config.get("studies", R.STUDIES))
        self.run = str(config.get("run") or "default")
        self.replicates = [str(r) for r in range(int(config.get("replicates", 1)))]

    # ------------------------------------------------------------------ replicates

    def replicate_seed(self, rep) -> int:
        """Replicate ``rep``'s seed: seed + rep (replicate 0 is the run with one replicate)."""
        return self.seed + int(rep)

    def seed_of(self, wc) -> int:
        """A job's seed from its ``rep`` wildcard (rule params: ``seed=PLAN.seed_of``)."""
        return self.replicate_seed(wc.rep)

    # ------------------------------------------------------------------ shared

    def runtime(self) -> dict:
        """Device and numeric settings every compute job receives."""
        return {k: self.config[k] for k in ("device", "precision", "channels_last")}

    def dataset_params(self) -> dict:
        """The prepared data's settings; its subsets use the run's seed, shared by the replicates."""
        return dict(self.config["dataset"]) | {"seed": self.seed}

    def arch_options(self, arch: str) -> dict:
        return (self.config["arch"].get("options") or {}).get(arch, {})

    def resources(self, kind: str) -> dict:
        """mem_mb / runtime (minutes) of a stage kind (config key resources.<kind>)."""
        r = self.config["resources"].get(kind) or {}
        return {"mem_mb": int(r.get("mem_mb", 4000)), "runtime": int(r.get("runtime", 60))}

    def gpus(self) -> int:
        return int(self.config["resources"]["gpus"])

    # ------------------------------------------------------------------ training

    def train_methods(self) -> list[str]:
        """Methods to train or convert: keys of training.methods not set to false."""
        return [m for m, v in self.config["training"]["methods"].items() if v is not False]

    def pretrained_methods(self) -> list[str]:
        methods = self.config["training"]["methods"]
        return [m for m in self.train_methods() if (methods[m] or {}).get("pretrained") is not None]

    def trained_methods(self) -> list[str]:
        return [m for m in self.train_methods() if m not in self.pretrained_methods()]

    def train_params(self, method: str) -> dict:
        """The full training slice of one method: training.common deep-merged with its override."""
        t = self.config["training"]
        cfg = deep_merge(t["common"], t["methods"][method] or {})
        cfg["method"] = method
        return cfg

    def pretrained_params(self, method: str) -> dict:
        """The slice a conversion job uses: the checkpoint settings and the training evaluation."""
        t = self.config["training"]
        cfg = deep_merge(t["common"], t["methods"][method] or {})
        return {"pretrained": cfg["pretrained"],
                "eval": {k: cfg[k] for k in ("eval_subset", "eval_batch_size", "eval_attack")}}

    def pretrained_source(self, method: str) -> str:
        return self.config["training"]["methods"][method]["pretrained"]["path"]

    def checkpoint_epochs(self) -> list[int]:
        return sorted({int(e) for e in self.config["training"]["common"].get("checkpoint_epochs") or ()})

    # ------------------------------------------------------------------ Ilyas et al.: synthesis

    @property
    def _syn(self) -> dict:
        return self.config["synthesis"]

    def synthesis_kinds(self) -> list[str]:
        return list(self._syn["kinds"])

    def synthesis_source(self, kind: str) -> str:
        """The model a set is made from: d_r inverts the robust model, the others the standard one."""
        return self._syn["robust_method"] if kind == "d_r" else "standard"

    def synthesis_reference(self) -> list[str]:
        """Models trained on D that the synthesis table compares the sets with."""
        return ["standard", self._syn["robust_method"]]

    def synthesis_params(self, kind: str) -> dict:
        """Only what changes this kind's images (inversion for d_r/d_nr, targeted for d_rand/d_det)."""
        part = "inversion" if kind in R.INVERSION_KINDS else "targeted"
        return {"batch_size": self._syn["batch_size"], part: self._syn[part],
                "source_method": self.synthesis_source(kind)}

    def synthetic_train_params(self, kind: str) -> dict:
        """Standard training on a set: training.common, synthesis.train, the kind's overrides."""
        t = deep_merge(self.config["training"]["common"], self._syn["train"])
        t = deep_merge(t, (self._syn.get("train_per_kind") or {}).get(kind) or {})
        t["method"] = "standard"
        return t

    def synthetic_eval_params(self) -> dict:
        return {**self._syn["eval"], "transfer_attack": self._syn["transfer"]["attack"]}

    def transfer_archs(self) -> list[str]:
        """arch.name plus the synthesis.transfer.architectures entries not set to false."""
        specs = self._syn["transfer"]["architectures"]
        return [self.arch] + [a for a, v in specs.items() if v is not False and a != self.arch]

    def synthetic_train_arch(self, name: str) -> dict:
        """The architecture and options behind a train_arch name (arch.name or synthesis.transfer)."""
        specs = {k: v for k, v in self._syn["transfer"]["architectures"].items() if v is not False}
        if name in specs:
            arch = specs[name]["arch"]
            return {"arch": arch, "options": deep_merge(self.arch_options(arch), specs[name].get("options") or {})}
        if name == self.arch:
            return {"arch": self.arch, "options": self.arch_options(self.arch)}
        raise ValueError(f"unknown train_arch {name!r}: not arch.name nor under synthesis.transfer.architectures")

    def transfer_target_train_params(self) -> dict:
        """The standard model's training settings, no checkpoints and no PGD curve: the target's
        robust accuracy is measured after training, on the original test set."""
        t = self.train_params("standard")
        t["checkpoint_epochs"] = []
        t["eval_pgd_epochs"] = "none"
        return t

    # ------------------------------------------------------------------ Kim et al.: attacks

    @property
    def _atk(self) -> dict:
        return self.config["attacks"]

    def attack_models(self) -> list[str]:
        return list(self._atk["models"])

    def attack_cells(self) -> list[tuple[str, str]]:
        """(method, attack) pairs the suite runs: every suite attack on its models."""
        cells = []
        for name, spec in self._atk["suite"].items():
            only = spec.get("models")
            cells += [(m, name) for m in self.attack_models() if not only or m in only]
        return cells

    def sweep_cells(self) -> list[tuple[str, str]]:
        sweep = self._atk["sweep"]
        return [(m, a) for m in sweep["models"] for a in sweep["attacks"]]

    def attack_slice(self, name: str) -> dict:
        """Everything one attack job uses: its suite entry and the shared settings."""
        if name not in self._atk["suite"]:
            raise ValueError(f"attack {name!r} is not under config key attacks.suite")
        spec = self._atk["suite"][name]
        out = {"name": name, "spec": spec, "eps": self._atk["eps"], "eval_subset": self._atk["eval_subset"],
               "batch_size": self._atk["batch_size"]}
        if R.ATTACKS[spec["type"]].needs_mask:
            out["nrf"] = self._atk["nrf"]
        return out

    def attack_modules(self, name: str) -> tuple[str, ...]:
        """Library modules an attack job loads lazily (rule inputs; advfeatures.deps.LAZY)."""
        spec = self._atk["suite"].get(name)
        return R.ATTACKS[spec["type"]].modules if spec else ()

    # ------------------------------------------------------------------ Kim et al.: bottleneck

    @property
    def _ib(self) -> dict:
        return self.config["bottleneck"]

    def ib_methods(self, key: str = "methods") -> list[str]:
        return list(self._ib[key])

    def ib_inputs(self) -> list[str]:
        return ["clean", *self._ib["attacks"]]

    def ib_betas(self) -> list[str]:
        return sorted({beta_tag(b) for b in self._ib["betas"]}, key=float)

    def ib_params(self) -> dict:
        """Clean rows: bottleneck.subset, else the attack stage's subset (covers every attacked row)."""
        subset = self._ib["subset"]
        if subset is None:
            subset = (self.config.get("attacks") or {}).get("eval_subset")
        return {**{k: self._ib[k] for k in ("iterations", "lr", "batch_size", "threshold")}, "subset": subset}

    # ------------------------------------------------------------------ Zhang et al.: mutual information

    def mi_methods(self) -> list[str]:
        return list(self.config["mutual_info"]["methods"])

    def mi_params(self, distortions: bool = False) -> dict:
        """Estimator and input settings; the attack resolved (null -> training.common.attack)."""
        mi = self.config["mutual_info"]
        p = {k: mi[k] for k in ("n_samples", "batch_size", "estimators", "kde", "binning")}
        p["max_block_mib"] = mi.get("max_block_mib", 256)
        p["attack"] = mi["attack"] or self.config["training"]["common"].get("attack")
        if distortions:
            p["distortions"] = mi["distortions"]
        else:  # the claims' intervals need replicates only of the per-epoch estimates
            p["bootstrap"] = mi.get("bootstrap", 200)
        return p
