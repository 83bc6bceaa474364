"""The names the whole package agrees on, declared once and free of torch.

The config model (:mod:`advfeatures.config`), the rule files, the science modules and the
reporting import these tuples instead of retyping them: training methods, synthetic-set kinds,
studies, datasets, architectures, checkpoint formats, IB thresholds, and the attack metadata
(the keys each attack type accepts, its reference defaults, its table label and its column in
Kim, Lee, Ro 2021 Table 3).  How an attack *runs* lives in :mod:`advfeatures.attacks.suite`,
which builds its registry from :data:`ATTACKS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: training methods (config key training.methods)
METHODS = ("standard", "pgd_linf", "pgd_l2", "trades", "mart")
#: methods with adversarial training: the robust model of d_r is one of them
ROBUST_METHODS = METHODS[1:]

#: Ilyas et al. 2019 synthetic training sets
SYNTHESIS_KINDS = ("d_r", "d_nr", "d_rand", "d_det")
#: sets made by representation inversion (d_r from the robust model, d_nr from the standard one)
INVERSION_KINDS = ("d_r", "d_nr")
#: sets made by targeted L2 PGD on the standard model, relabelled to the target
TARGETED_KINDS = ("d_rand", "d_det")

#: the three studies; each can run alone (config key studies)
STUDIES = ("ilyas", "kim", "zhang")
#: the config sections each study owns (a study left out of `studies` needs none of them)
STUDY_SECTIONS = {"ilyas": ("synthesis",), "kim": ("bottleneck", "attacks"), "zhang": ("mutual_info",)}

#: dataset sources (advfeatures.data.SOURCES)
DATASETS = ("mnist5k", "mnist", "fashion_mnist", "cifar10", "svhn", "stl10", "imagefolder")
#: architectures (advfeatures.models.ARCHITECTURES)
ARCHITECTURES = ("lenet5", "vgg16", "wrn", "resnet18", "resnet50")
#: WideResNet depths 6n + 4
WRN_DEPTHS = tuple(6 * n + 4 for n in range(1, 18))
#: checkpoint formats convert_pretrained reads (advfeatures.models.pretrained.FORMATS)
PRETRAINED_FORMATS = ("advfeatures", "cifar_resnet", "wrn", "vgg16_bn")
#: IB thresholds (advfeatures.bottleneck)
THRESHOLDS = ("batch", "sample", "channel")
#: MI estimators and distortions (advfeatures.mutual_info, advfeatures.distortions)
ESTIMATORS = ("kde", "binning")
#: norms of the PGD settings of training and evaluation
NORMS = ("linf", "l2")
#: stage kinds that carry their own mem_mb / runtime (config key resources)
RESOURCE_KINDS = ("train", "attack", "synthesis", "bottleneck", "mutual_info", "report")

#: pyautoattack's components and its standard budget
AA_COMPONENTS = ("apgd-ce", "apgd-t", "fab-t", "square")
AA_STANDARD = {"n_iter": 100, "n_target_classes": 9, "n_queries": 5000}

#: keys every suite entry may carry besides its type's own
GENERIC_KEYS = ("type", "subset", "models")
_CW_KEYS = ("c", "kappa", "lr", "steps", "bound", "eps", "start")


@dataclass(frozen=True)
class AttackMeta:
    """What the config and the tables know of one attack type (no torch)."""

    type: str
    label: str  #: column label in Kim et al. Table 3 (reporting.attacks)
    params: tuple[str, ...]  #: keys it accepts besides ``type`` and GENERIC_KEYS
    defaults: dict[str, Any] = field(default_factory=dict)  #: Kim et al.'s reference settings
    needs_mask: bool = False  #: runs on bottleneck channel masks (NRF)
    has_bound: bool = False  #: ``bound: none | linf`` (cw, nrf)
    #: library modules its jobs load lazily (rule inputs; advfeatures.deps.LAZY)
    modules: tuple[str, ...] = ()
    #: position of its column in Kim et al. Table 3 (None: not a column of the paper)
    paper_column: int | None = None
    #: keys that set its budget (steps, iterations, c): a preset states them (tests/test_presets.py)
    budget: tuple[str, ...] = ()


#: attack type -> metadata (config key attacks.suite.<name>.type)
ATTACKS: dict[str, AttackMeta] = {m.type: m for m in (
    AttackMeta("fgsm", "FGSM", ("eps",), {}, paper_column=1),
    AttackMeta("bim", "BIM", ("eps", "steps", "alpha", "alpha_scale", "early_stop"),
               {"steps": 10, "alpha_scale": 1.25, "early_stop": False}, paper_column=2, budget=("steps",)),
    AttackMeta("pgd", "PGD", ("eps", "steps", "alpha", "alpha_scale", "norm", "random_start", "early_stop"),
               {"steps": 10, "alpha_scale": 2.3, "norm": "linf", "random_start": True, "early_stop": False},
               paper_column=3, budget=("steps",)),
    AttackMeta("cw", "CW-L2", (*_CW_KEYS, "search_steps", "stop_checks"),
               {"c": 0.1, "kappa": 0.0, "lr": 0.1, "steps": 200, "bound": "none", "search_steps": 0,
                "stop_checks": 3, "start": "frozen"}, has_bound=True, paper_column=4, budget=("c", "steps")),
    AttackMeta("apgd_ce", "APGD-CE", ("eps", "n_iter", "n_restarts"), {"n_iter": 100, "n_restarts": 1},
               paper_column=5, budget=("n_iter",)),
    AttackMeta("autoattack", "AutoAttack", ("eps", "components", "n_iter", "n_target_classes", "n_queries"),
               {"components": list(AA_COMPONENTS), **AA_STANDARD}, budget=("n_iter", "n_queries")),
    AttackMeta("fab", "FAB", ("eps", "n_iter", "n_restarts", "targeted", "n_target_classes"),
               {"n_iter": 100, "n_restarts": 1, "targeted": False, "n_target_classes": 9},
               paper_column=6, budget=("n_iter",)),
    AttackMeta("nrf", "NRF", (*_CW_KEYS, "maximize", "mask", "stop_checks"),
               {"c": 0.1, "kappa": 0.0, "lr": 0.1, "steps": 200, "bound": "none", "maximize": True,
                "mask": "nonrobust", "stop_checks": 3, "start": "frozen"}, needs_mask=True, has_bound=True,
               modules=("advfeatures.bottleneck",), paper_column=7, budget=("c", "steps")),
)}
ATTACK_TYPES = tuple(ATTACKS)
