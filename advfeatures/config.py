"""The typed configuration: one model of every config key, its layers, and its checks.

Every key has a type, a default (or none: the run must state it) and a description in the
pydantic models below; the JSON schema Snakemake validates against
(``schemas/config.schema.yaml``) is generated from them (``python -m advfeatures.config
schema --write``; a test keeps the committed file up to date).  Cross-key checks are plain
Python (:func:`cross_checks`).  Names (methods, kinds, attack types, studies) come from
:mod:`advfeatures.registry`.  Torch-free: the Snakefile imports this module on every call.

**Layers.**  A run's config is built from, in order:

1. ``defaults``: the defaults of the model (reference values of the papers' code, no budget);
2. ``config.yaml``: the default run (MNIST smoke budgets), unless a later file starts over;
3. each ``--configfile``: a file with ``base: defaults`` (every preset) is a whole run and
   starts over from the model's defaults, so it never inherits the smoke budgets; a file
   without it (tests/tiny.yaml, your own overlay) is merged over what came before;
4. ``--config`` values, their nested strings read as YAML scalars (``'3'`` -> 3,
   ``'false'`` -> false, ``'null'`` -> null), so they reach the model with its types.

Mappings merge key by key (as Snakemake's ``--configfile`` overlays do); any other value
replaces.  Budget-like keys (eps, steps, c, the sweep, synthesis and transfer settings) have no
default: a run that does not state them is rejected, naming the key.
``python -m advfeatures.config resolve presets/x.yaml`` prints a run's config with the layer
each value came from.
"""

import argparse
import copy
import hashlib
import json
import os
import sys
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from annotated_types import Ge, Gt, Le, Lt
from pydantic import (
    AfterValidator,
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    create_model,
)

from advfeatures import registry as R

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = ROOT / "schemas" / "config.schema.yaml"
DEFAULTS = "defaults"  #: name of the model-defaults layer
SMOKE = "config.yaml"  #: name of the default run's layer (the MNIST smoke budgets)
CLI = "--config"  #: name of the command-line layer


class ConfigError(ValueError):
    """A rejected config; the message is one line naming the key.

    Not an ``AdvFeaturesError`` on purpose: this module stays free of torch, because the
    Snakefile imports it and every ``snakemake`` call (dry runs too) would pay for the import.
    """

    def __init__(self, key: str, reason: str):
        self.key = key
        super().__init__(f"invalid config: key {key or '<top level>'}: {reason}")


# ----------------------------------------------------------------------------- types


def num(ge=None, gt=None, le=None, lt=None):
    """A finite number (int or float, kept as written so job params stay byte-identical)."""
    cons = [c for c in (ge is not None and Ge(ge), gt is not None and Gt(gt),
                        le is not None and Le(le), lt is not None and Lt(lt)) if c]
    js = {"type": "number"}
    for k, v in (("minimum", ge), ("exclusiveMinimum", gt), ("maximum", le), ("exclusiveMaximum", lt)):
        if v is not None:
            js[k] = v
    whole = Annotated[(StrictInt, *cons)] if cons else StrictInt
    return Annotated[whole | Annotated[(StrictFloat, AllowInfNan(False), *cons)], WithJsonSchema(js)]


PosInt = Annotated[StrictInt, Ge(1)]
NonNegInt = Annotated[StrictInt, Ge(0)]
Name = Annotated[StrictStr, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]
PathName = Annotated[StrictStr, StringConstraints(pattern=r"^[A-Za-z0-9_\-]+$")]
RunName = Annotated[StrictStr, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+\-]{0,99}$")]
Method = Literal[R.METHODS]
Kind = Literal[R.SYNTHESIS_KINDS]
Arch = Literal[R.ARCHITECTURES]
Study = Literal[R.STUDIES]
Threshold = Literal[R.THRESHOLDS]


def _unique(v: list) -> list:
    if len({json.dumps(x) for x in v}) != len(v):
        raise ValueError("items must be unique")
    return v


def ulist(item, min_length=0, description=None):
    """A list of distinct ``item``s."""
    return Annotated[list[item], Field(min_length=min_length, description=description,
                                       json_schema_extra={"uniqueItems": True}), AfterValidator(_unique)]


def methods_list(min_length=0, description=""):
    return ulist(Method, min_length, description)


class Value(BaseModel):
    """A mapping whose absent keys stay absent (the stage applies its own defaults)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, use_attribute_docstrings=True)


class Section(Value):
    """A fixed block of the config: its defaults are filled in when a layer does not set them."""


# ----------------------------------------------------------------------------- blocks


class Resources(Value):
    """Cluster resources of one stage kind (profiles/slurm maps them)."""

    mem_mb: Annotated[StrictInt, Ge(100)] | None = None
    """memory a cluster job asks for (MB); default 4000"""
    runtime: PosInt | None = None
    """minutes a cluster job asks for; default 60"""


class ResourcesBlock(Section):
    """What each job asks a cluster for; gpus: GPUs per compute job."""

    gpus: NonNegInt = 0
    """GPUs each compute job asks for (1 on the paper presets; 0: CPU)"""
    train: Resources | None = None
    attack: Resources | None = None
    synthesis: Resources | None = None
    bottleneck: Resources | None = None
    mutual_info: Resources | None = None
    report: Resources | None = None


class DatasetBlock(Section):
    """The dataset and its seeded subsets."""

    name: Literal[R.DATASETS]
    """dataset source (mnist5k: embedded offline MNIST subset)"""
    root: StrictStr | None = None
    """imagefolder: ROOT/train/<class>/*, ROOT/test/<class>/*; downloads: data/raw"""
    download: StrictBool = True
    """download a missing dataset (torchvision)"""
    subset_train: PosInt | None = None
    """stratified, seeded training subset size (null: all)"""
    subset_test: PosInt | None = None
    """stratified, seeded test subset size (null: all)"""


class WidthOptions(Value):
    """Options of a LeNet-5 / VGG-16 / ResNet."""

    width: PosInt | None = None
    """base width (LeNet-5: channel multiplier; 64 = VGG-16 / ResNet)"""


class WrnOptions(Value):
    """Options of the WideResNet."""

    depth: Literal[R.WRN_DEPTHS] | None = None
    """6n + 4"""
    widen_factor: PosInt | None = None
    """channel multiplier k of WRN-d-k"""
    dropout: num(ge=0, le=1) | None = None
    """dropout inside the blocks"""


class ArchOptions(Value):
    lenet5: WidthOptions | None = None
    vgg16: WidthOptions | None = None
    wrn: WrnOptions | None = None
    resnet18: WidthOptions | None = None
    resnet50: WidthOptions | None = None


class ArchBlock(Section):
    """The architecture every model of the run shares."""

    name: Arch
    """architecture of every model of the run"""
    options: ArchOptions = Field(default_factory=ArchOptions)
    """per-architecture options, e.g. {wrn: {depth: 28, widen_factor: 10}}"""


class PGD(Value):
    """A PGD attack of training or evaluation (2.5 eps / steps is the usual evaluation step)."""

    norm: Literal[R.NORMS]
    """linf | l2"""
    eps: num(ge=0)
    """budget (pixel scale [0, 1])"""
    alpha: num(ge=0)
    """step size"""
    steps: NonNegInt
    """iterations (0: clean)"""
    random_start: StrictBool | None = None
    """random start in the eps ball"""


class Schedule(Value):
    """Learning-rate schedule."""

    type: Literal["constant", "multistep", "step", "cosine"]
    """constant | multistep (milestones, gamma) | step (step_size, gamma) | cosine"""
    milestones: list[PosInt] | None = None
    """multistep: epochs where the LR is multiplied by gamma"""
    gamma: num(gt=0) | None = None
    """LR factor at each step"""
    step_size: PosInt | None = None
    """step: epochs between LR steps"""


class Health(Value):
    """Checks that stop a broken training run."""

    min_acc_over_chance: num(ge=0, le=100) | None = None
    """final clean test accuracy must beat 100/classes by this many points"""
    allow_degenerate: StrictBool | None = None
    """true: keep a chance-level model (marked degenerate in model.pt)"""


class Normalization(Value):
    mean: Annotated[list[num()], Field(min_length=1)]
    """per-channel mean"""
    std: Annotated[list[num(gt=0)], Field(min_length=1)]
    """per-channel std"""


class Pretrained(Value):
    """A checkpoint converted into this method's model.pt instead of training."""

    path: Annotated[StrictStr, StringConstraints(min_length=1)]
    """checkpoint file, relative to the working directory"""
    format: Literal[R.PRETRAINED_FORMATS]
    normalization: Normalization | None = None
    """per-channel mean/std of the model's inputs in [0, 1]; omit if the checkpoint holds a normaliser"""
    allow_degenerate: StrictBool | None = None
    """accept a model not above chance on the test set"""


class TrainOptions(Value):
    """Training settings; a method's entry overrides any of training.common's."""

    epochs: PosInt | None = None
    """training epochs"""
    batch_size: PosInt | None = None
    """training batch"""
    optimizer: Literal["sgd", "adam"] | None = None
    """sgd | adam"""
    lr: num(gt=0) | None = None
    """initial learning rate"""
    momentum: num(ge=0, le=1) | None = None
    """SGD momentum"""
    weight_decay: num(ge=0) | None = None
    """L2 weight decay"""
    nesterov: StrictBool | None = None
    """Nesterov momentum"""
    schedule: Schedule | None = None
    """learning-rate schedule"""
    augmentation: Literal["none", "crop", "crop_flip"] | None = None
    """none | crop | crop_flip"""
    checkpoint_epochs: list[PosInt] | None = None
    """epochs whose weights are kept (the MI stage estimates at them)"""
    eval_subset: PosInt | None = None
    """seeded stratified test rows of the per-epoch evaluation"""
    eval_batch_size: PosInt | None = None
    """evaluation batch"""
    eval_pgd_epochs: Literal["all", "checkpoints", "last", "none"] | None = None
    """test PGD accuracy at: all | checkpoints (and the last) | last | none; clean: every epoch"""
    eval_attack: PGD | None = None
    """PGD of the per-epoch robust accuracy"""
    attack: PGD | None = None
    """the training attack (adversarial methods)"""
    beta: num(ge=0) | None = None
    """TRADES / MART weight"""
    lr_warmup_epochs: NonNegInt | None = None
    """linear LR ramp per step over the first k epochs (Goyal et al. 2017)"""
    eps_warmup_epochs: NonNegInt | None = None
    """linear ramp of the training eps and alpha (Gowal et al. 2018)"""
    grad_clip_norm: num(gt=0) | None = None
    """clip the gradients' total L2 norm (Pascanu et al. 2013); null: off"""
    health: Health | None = None
    """chance and finiteness checks"""
    pretrained: Pretrained | None = None
    """convert this checkpoint instead of training"""


#: keys of training.common only training uses: required when a method is trained (a run of
#: pretrained models only leaves them out; check_training)
TRAINED_ONLY = ("epochs", "batch_size", "optimizer", "lr", "schedule", "augmentation", "checkpoint_epochs", "attack")


class TrainCommon(Section):
    """Settings every training method shares (the budgets have no default; the training-only
    ones are required when a method is trained)."""

    epochs: PosInt | None = None
    """training epochs"""
    batch_size: PosInt | None = None
    """training batch"""
    optimizer: Literal["sgd", "adam"] | None = None
    """sgd | adam"""
    lr: num(gt=0) | None = None
    """initial learning rate"""
    momentum: num(ge=0, le=1) = 0.9
    """SGD momentum"""
    weight_decay: num(ge=0) = 5.0e-4
    """L2 weight decay"""
    nesterov: StrictBool = False
    """Nesterov momentum"""
    schedule: Schedule | None = None
    """learning-rate schedule"""
    augmentation: Literal["none", "crop", "crop_flip"] | None = None
    """none | crop | crop_flip"""
    checkpoint_epochs: list[PosInt] | None = None
    """epochs whose weights are kept (the MI stage estimates at them)"""
    eval_subset: PosInt
    """seeded stratified test rows of the per-epoch evaluation"""
    eval_batch_size: PosInt = 500
    """evaluation batch"""
    eval_pgd_epochs: Literal["all", "checkpoints", "last", "none"] = "checkpoints"
    """test PGD accuracy at: all | checkpoints (and the last) | last | none; clean: every epoch"""
    eval_attack: PGD
    """PGD of the per-epoch robust accuracy (usually 20 steps of 2.5 eps / steps)"""
    attack: PGD | None = None
    """the training attack of the adversarial methods"""
    beta: num(ge=0) = 6.0
    """TRADES / MART weight (TRADES paper)"""
    lr_warmup_epochs: NonNegInt = 0
    """linear LR ramp per step over the first k epochs (Goyal et al. 2017); 0: off"""
    eps_warmup_epochs: NonNegInt = 0
    """linear ramp of the training eps and alpha (Gowal et al. 2018); 0: off"""
    grad_clip_norm: num(gt=0) | None = None
    """clip the gradients' total L2 norm (Pascanu et al. 2013); null: off"""
    health: Health = Field(default_factory=lambda: Health(min_acc_over_chance=10, allow_degenerate=False))
    """every step: weights and BN buffers finite, else the job stops; chance check at the end"""


class TrainingBlock(Section):
    """Which models to train and how."""

    common: TrainCommon
    """settings every method shares"""
    methods: Annotated[dict[Method, TrainOptions | Literal[False] | None], Field(min_length=1)]
    """which models to train; each may override any key of common; false drops a method of an
    earlier layer; a `pretrained` entry converts a checkpoint instead of training"""


class Inversion(Section):
    """d_r, d_nr: normalised-gradient L2 steps minimising the representation distance."""

    steps: PosInt
    """paper: about 1000"""
    step_size: num(gt=0)
    """paper: 0.1"""
    start: Literal["random_image", "noise"] = "random_image"
    """random_image (paper) | noise (grey + noise, released notebook)"""
    noise_std: num(ge=0) = 0.1
    """noise start: std of the noise around grey"""


class Targeted(Value):
    """d_rand, d_det: targeted L2 PGD on the standard model (paper: eps 0.5, 100 steps of 0.1)."""

    eps: num(gt=0)
    """L2 budget"""
    alpha: num(gt=0)
    """step size"""
    steps: PosInt
    """iterations"""


class SynthEval(Section):
    """Evaluation of the models trained on the sets, on the ORIGINAL test set."""

    subset: Annotated[StrictInt, Ge(10)] | None
    """rows of the ORIGINAL test set (seeded stratified; null: all)"""
    batch_size: PosInt = 500
    """evaluation batch"""
    attacks: Annotated[dict[Literal["l2", "linf"], PGD], Field(min_length=1)]
    """robust accuracy of the models trained on the sets (paper table: L2 eps 0.25)"""


class TransferArch(Value):
    arch: Arch
    """architecture"""
    options: dict[str, Any] | None = None
    """its options (over arch.options of that architecture)"""


class Transfer(Section):
    """Paper Fig. 3: other architectures trained on one set; arch.name is always included."""

    kind: Kind
    attack: Literal["l2", "linf"]
    """name under synthesis.eval.attacks, run untargeted on the standard source model"""
    architectures: dict[PathName, TransferArch | Literal[False]]
    """name -> {arch, options}, or false to drop an entry of an earlier layer"""


class SynthesisBlock(Section):
    """Robust / non-robust datasets (Ilyas et al. 2019)."""

    kinds: ulist(Kind, 1) = list(R.SYNTHESIS_KINDS)
    """sets to make: d_r, d_nr (inversion), d_rand, d_det (targeted)"""
    robust_method: Literal[R.ROBUST_METHODS]
    """adversarially trained model whose representation d_r inverts"""
    batch_size: PosInt = 1000
    """training images per resumable chunk"""
    inversion: Inversion
    targeted: Targeted
    train: TrainOptions
    """deep-merged over training.common; always standard training"""
    train_per_kind: dict[Kind, TrainOptions] = Field(
        default_factory=lambda: {"d_det": TrainOptions(augmentation="none")})
    """extra overrides per set (paper: d_det without data augmentation)"""
    eval: SynthEval
    transfer: Transfer


class Tsne(Section):
    """t-SNE of Z, Z_r, Z_nr for clean and attacked inputs."""

    method: Method
    """model"""
    attack: Name
    """attacked input (a name under attacks.suite)"""
    points: Annotated[StrictInt, Ge(20)] = 300
    """points per panel"""
    perplexity: num(gt=0) = 30
    """t-SNE perplexity"""


class BottleneckBlock(Section):
    """Information-bottleneck distillation (Kim, Lee, Ro 2021)."""

    beta: num(ge=0)
    """KL weight of the Table 1/2 runs (reference code: 0.3)"""
    betas: ulist(num(ge=0), 2)
    """Fig. 5 sweep on clean inputs"""
    iterations: PosInt
    """Adam steps on lambda (reference code: 200)"""
    lr: num(gt=0) = 0.1
    """Adam step size on lambda (reference code: 0.1)"""
    batch_size: PosInt | None = 100
    """IB batch: CE/KL means and threshold T are per batch (reference test batch); null: one batch"""
    threshold: Threshold = "batch"
    """batch: T = max sigma_z^2 over the IB batch (reference code) | sample | channel"""
    subset: Annotated[StrictInt, Ge(10)] | None = None
    """clean test rows (seeded stratified); null: attacks.eval_subset"""
    methods: methods_list(1, "models of Tables 1 and 2")
    attacks: ulist(Name, 0, "attacked inputs: names under attacks.suite")
    sweep_methods: methods_list(0, "models of the beta sweep")
    tsne: Tsne


class Kde(Section):
    """KDE estimator (Kolchinsky & Tracey bounds)."""

    noise_var: num(gt=0) = 0.1
    """variance of the noise added for estimation only (Zhang et al.)"""


class Binning(Section):
    """Binning estimator."""

    bin_width: num(gt=0) = 0.5
    """bins floor(t / width) on raw activations"""


class Distortions(Section):
    """Distortions applied after the attack to the final models' inputs (paper Fig. 5)."""

    saturation: ulist(num(gt=0)) = [2, 8, 16, 64, 1024]
    """levels p (2 = identity; paper Fig. 5)"""
    shuffle: ulist(NonNegInt) = [0, 2, 4, 8]
    """k x k grid of patches (0 = none; paper Fig. 5)"""


class MutualInfoBlock(Section):
    """MI of the five probe layers per saved epoch (Zhang et al.)."""

    methods: methods_list(0, "trained models to probe (not pretrained); [] skips the stage")
    n_samples: Annotated[StrictInt, Ge(2)]
    """seeded stratified test subset, clean and PGD (paper: 5000)"""
    batch_size: PosInt = 500
    """rows per forward pass"""
    attack: PGD | None
    """PGD for the adversarial inputs; null = training.common.attack"""
    estimators: ulist(Literal[R.ESTIMATORS], 1) = list(R.ESTIMATORS)
    """kde (upper and lower bounds) | binning"""
    kde: Kde = Field(default_factory=Kde)
    binning: Binning = Field(default_factory=Binning)
    max_block_mib: num(gt=0) = 256
    """memory per block of pairwise distances / bin columns"""
    bootstrap: NonNegInt = 200
    """seeded resamples of the N samples for I(X;T) intervals (claims); 0 = none"""
    distortions: Distortions = Field(default_factory=Distortions)


_PARAM_TYPES: dict[str, Any] = {
    "eps": (num(ge=0), "Linf budget (default: attacks.eps); an L2 PGD needs its own"),
    "steps": (NonNegInt, "iterations"),
    "alpha": (num(gt=0), "step size (default alpha_scale * eps / steps)"),
    "alpha_scale": (num(gt=0), "step size as a multiple of eps / steps"),
    "early_stop": (StrictBool, "keep an example's first successful iterate"),
    "norm": (Literal[R.NORMS], "l2 needs its own eps"),
    "random_start": (StrictBool, "random start in the eps ball"),
    "c": (num(gt=0), "weight of the margin term (Kim et al.: 0.1)"),
    "kappa": (num(ge=0), "confidence of the margin"),
    "lr": (num(gt=0), "Adam step size"),
    "bound": (Literal["none", "linf"], "none: unbounded (reference code); linf: attacks.eps ball"),
    "search_steps": (NonNegInt, "binary search over c (0: fixed c)"),
    "stop_checks": (NonNegInt, "early stop: every steps // stop_checks steps, stop if the cost rose "
                               "(3: official Kim et al. rule, 10: torchattacks, 0: never)"),
    "start": (Literal["frozen", "clamped"], "pixels at 0 or 1 (the box's bounds): frozen (atanh = +-inf, the "
                                           "official code and torchattacks) or clamped (Carlini's clamp; they can move)"),
    "n_iter": (PosInt, "iterations"),
    "n_restarts": (PosInt, "restarts"),
    "components": (ulist(Literal[R.AA_COMPONENTS], 1), "AutoAttack components"),
    "n_target_classes": (PosInt, "target classes"),
    "n_queries": (PosInt, "Square queries"),
    "targeted": (StrictBool, "targeted FAB"),
    "maximize": (StrictBool, "true: - dist(Z, Z + mask * dmargin/dZ) (NRF / RF); false: + dist (NRF2 / RF2)"),
    "mask": (Literal["nonrobust", "robust"], "channel mask the gradient push uses"),
    "subset": (PosInt, "rows: a seeded stratified subset of the common eval subset"),
    "models": (methods_list(1), "attack only these of attacks.models"),
}


def _attack_model(meta: R.AttackMeta) -> type[Value]:
    fields = {"type": (Literal[meta.type], Field(description=f"{meta.label} ({meta.type})"))}
    for key in (*meta.params, *R.GENERIC_KEYS[1:]):
        typ, desc = _PARAM_TYPES[key]
        default = meta.defaults.get(key)
        fields[key] = (typ, Field(default=None, description=desc + (f"; default {default}" if default is not None else "")))
    return create_model(f"Attack_{meta.type}", __base__=Value, **fields)


#: one model per attack type, built from the registry: a type accepts exactly its own keys
ATTACK_MODELS = {t: _attack_model(m) for t, m in R.ATTACKS.items()}
AttackSpec = Annotated[Union[tuple(ATTACK_MODELS.values())], Field(discriminator="type")]  # noqa: UP007


class NrfIB(Section):
    """IB masks for NRF: once per attack batch, on the clean input."""

    beta: num(ge=0)
    """IB weight (reference code: 0.3)"""
    iterations: NonNegInt
    """Adam steps on lambda (reference code: 200)"""
    lr: num(gt=0) = 0.1
    """Adam step size"""
    batch_size: PosInt | None = 100
    """IB batch (null: one batch)"""
    threshold: Threshold = "batch"
    """batch | sample | channel"""


class Sweep(Section):
    """Robust accuracy against Linf eps (figure); eps 0 is the clean input."""

    eps: ulist(num(ge=0), 2)
    """Linf budgets (0: the clean input)"""
    attacks: list[Name]
    """names under attacks.suite"""
    models: methods_list(0, "names under attacks.models")
    subset: PosInt
    """rows (nested seeded subset)"""


class AttacksBlock(Section):
    """Attack suite and NRF (Kim, Lee, Ro 2021 Tables 3-4)."""

    models: methods_list(1, "trained models attacked (ADV = pgd_linf)")
    eps: num(gt=0)
    """Linf budget shared by the bounded attacks"""
    eval_subset: PosInt | None
    """seeded stratified test rows every attack starts from (null: the whole test split)"""
    batch_size: PosInt = 100
    """attack batch"""
    nrf: NrfIB
    suite: Annotated[dict[Name, AttackSpec], Field(min_length=1)]
    """name -> {type, params}; subset: fewer rows (nested seeded subset); models: only these"""
    sweep: Sweep


# report.claims: a key the reporting adds is one line here (its type, default and description)
class MinEffect(Value):
    min_effect: num(ge=0)
    """smallest effect that can hold or fail (claim units)"""


def _effects(**defaults) -> Any:
    names = tuple(defaults)
    return Annotated[dict[Literal[names], MinEffect], Field(
        default_factory=lambda: {k: MinEffect(min_effect=v) for k, v in defaults.items()})]


class Claims(Section):
    """Verdict settings of results/<run>/claims.csv (advfeatures.reporting.verdicts)."""

    alpha: num(gt=0, lt=1) = 0.05
    """significance level of every test; intervals are at 1 - alpha"""
    chance_margin: num(ge=0) = 2.0
    """points: a model within this of 100/C % clean accuracy is at chance (claims not testable)"""
    min_rows: PosInt = 30
    """fewer compared rows -> not testable"""
    mask_floor: num(ge=0) = 0.5
    """channels per sample: an IB mask keeping fewer robust OR non-robust channels is degenerate"""
    mask_empty_share: num(ge=0, le=1) = 0.5
    """... as is one whose robust or non-robust part is empty for more than this share of samples"""
    mi_margin: num(ge=0) = 0.05
    """bits: I(X;T) within this of log2 N (or of 0) is saturated"""
    coincide_max_offset: num(ge=0) = 0.1
    """bits: "MI trends coincide" = mean |clean - adversarial| at most this, over the series that change unsaturated"""
    binary_share: num(ge=0, le=1) = 0.5
    """images with more than this share of test pixels exactly 0 or 1 are near binary: distortion claims not testable"""
    regime_robust_max: num(ge=0, le=100) = 10.0
    """%: Ilyas claims need the model on D at most this L2 robust at synthesis.eval (paper: 4.5% at L2 0.25)"""
    target_success_min: num(ge=0, le=100) = 90.0
    """%: D_rand / D_det must carry their target label (the source model agrees) on at least this share"""
    near_zero_robust: num(ge=0, le=100) = 10.0
    """%: robust accuracy that counts as near zero (D_NR, D_rand, D_det; paper: 0%)"""
    min_architectures: Annotated[StrictInt, Ge(3)] = 5
    """architectures the Fig. 3 transfer correlation needs"""
    ilyas: _effects(d_r_vs_d=2.0, d_r_vs_d_nr=10.0, d_nr_clean=0.0, d_nr_robust=0.0, generalises=10.0,
                    synthetic_robust=0.0, transfer_correlation=0.0)
    """minimum effects of the Ilyas et al. claims"""
    bottleneck: _effects(r_vs_int=2.0, nr_below_int=2.0, ib_vs_random=2.0, nr_agreement=0.0, nr_vs_random=2.0,
                         beta_channels=0.5)
    """minimum effects of the IB claims"""
    attacks: _effects(nrf_vs_cw=2.0, nrf_vs_pgd=2.0, nrf_vs_apgd=2.0, nrf_vs_autoattack=2.0, max_vs_min_gnr=2.0,
                      max_gnr_vs_max_gr=2.0)
    """minimum effects of the attack claims"""
    mutual_info: _effects(less_ixt=0.1, slower_ixt=0.1, distortion=2.0)
    """minimum effects of the MI claims"""


class ReportBlock(Section):
    """Report stage settings."""

    claims: Claims = Field(default_factory=Claims)


class Config(Section):
    """advfeatures configuration (unknown keys are rejected everywhere, so typos fail early)."""

    base: Literal["defaults"] | None = None
    """defaults: this file is a whole run over the model's defaults (config.yaml, every preset);
    absent: an overlay merged over the run before it"""
    studies: ulist(Study, 1) = list(R.STUDIES)
    """studies to run (ilyas, kim, zhang); a study left out needs none of its sections"""
    run: RunName | None = None
    """name of the run's folder results/<run>/ (letters, digits, . _ + -); null: the config files'
    names (config.yaml: default; presets/x.yaml: x; overlays joined by +), with a short hash of
    the --config values when there are any"""
    seed: NonNegInt = 0
    """one seed for every random draw (seeded generators); replicate r uses seed + r (the
    prepared data's subsets use seed itself, shared by every replicate)"""
    replicates: PosInt = 1
    """independent training replicates: each its own model set (initialisation, data order,
    attack and IB seeds) under results/<run>/rep<r>/; tables give every replicate and their mean,
    claims are tested over the replicates"""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto | cpu | cuda"""
    precision: Literal["fp32", "bf16"] = "fp32"
    """fp32 | bf16 (autocast in training)"""
    channels_last: StrictBool = False
    """NHWC memory format (faster convolutions on GPUs)"""
    threads: PosInt = 1
    """torch threads per job"""
    resources: ResourcesBlock = Field(default_factory=ResourcesBlock)
    """what each job asks a cluster for"""
    dataset: DatasetBlock
    """the dataset"""
    arch: ArchBlock
    """the architecture"""
    training: TrainingBlock
    """which models to train and how"""
    synthesis: SynthesisBlock | None = None
    """Ilyas et al. 2019 (study ilyas)"""
    bottleneck: BottleneckBlock | None = None
    """Kim, Lee, Ro 2021 information bottleneck (study kim)"""
    attacks: AttacksBlock | None = None
    """Kim, Lee, Ro 2021 attack suite and NRF (study kim)"""
    mutual_info: MutualInfoBlock | None = None
    """Zhang et al. mutual information (study zhang)"""
    report: ReportBlock = Field(default_factory=ReportBlock)
    """tables, figures and claims"""


# ----------------------------------------------------------------------------- defaults and layers


def _model_of(annotation) -> type[BaseModel] | None:
    """The Section class behind a field annotation (``X``, ``X | None``), if any."""
    args = getattr(annotation, "__args__", None)
    for t in [annotation, *(args or ())]:
        if isinstance(t, type) and issubclass(t, Section):
            return t
    return None


def _plain(value):
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_unset=True)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def defaults_of(model: type[BaseModel] = Config, skip: Iterable[str] = ()) -> dict:
    """The defaults of ``model`` as a config dict: every defaulted key of every Section, and the
    defaulted keys of required sections (their required keys are left for the layers)."""
    out = {}
    for name, f in model.model_fields.items():
        if name in skip or (model is TrainCommon and name in TRAINED_ONLY):
            continue
        sub = _model_of(f.annotation)
        if sub is not None:
            out[name] = defaults_of(sub)
        elif not f.is_required():
            default = f.get_default(call_default_factory=True)
            optional_block = default is None and any(
                isinstance(t, type) and issubclass(t, BaseModel) for t in getattr(f.annotation, "__args__", ()))
            if not optional_block:  # an absent optional block (resources.train) stays absent
                out[name] = _plain(default)
    return out


@dataclass
class Layer:
    name: str
    data: dict


def read_yaml(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError("", f"config file {path} cannot be read ({exc.strerror}); check the path") from None
    except yaml.YAMLError as exc:
        raise ConfigError("", f"config file {path} is not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError("", f"config file {path} holds a {type(data).__name__}, not a mapping of keys")
    return data


def _scalar(text: str):
    """A command-line string as YAML reads it (Snakemake keeps nested --config values as text)."""
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if value is None or isinstance(value, (bool, int, float)) else text


def coerce_cli(value):
    """Nested --config values with their strings read as YAML scalars ('3' -> 3, 'false' -> False)."""
    if isinstance(value, Mapping):
        return {k: coerce_cli(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [coerce_cli(v) for v in value]
    if isinstance(value, str):
        return _scalar(value)
    return value


def merge(base: dict, over: Mapping, source: str, prov: dict, path: tuple = ()) -> dict:
    """``over`` merged into ``base`` in place as Snakemake merges --configfile overlays (mappings
    key by key, other values replace); ``prov`` records the source of every leaf."""
    for k, v in over.items():
        p = (*path, k)
        if isinstance(v, Mapping) and isinstance(base.get(k), dict):
            merge(base[k], v, source, prov, p)
            continue
        for q in [q for q in prov if q[: len(p)] == p]:
            del prov[q]
        base[k] = copy.deepcopy(dict(v) if isinstance(v, Mapping) else v)
        _mark(base[k], source, prov, p)
    return base


def _mark(value, source, prov, path):
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _mark(v, source, prov, (*path, k))
    else:
        prov[path] = source


def fill(cfg: dict, under: Mapping, source: str, prov: dict, path: tuple = ()) -> dict:
    """``under`` merged below ``cfg``: its keys missing from ``cfg`` are added at the end.

    This is how Snakemake puts config.yaml below the --configfile overlays (their keys first,
    their values win), so job params keep their form; the model's defaults go in the same way.
    """
    for k, v in under.items():
        p = (*path, k)
        if k not in cfg:
            cfg[k] = copy.deepcopy(v)
            _mark(cfg[k], source, prov, p)
        elif isinstance(v, dict) and isinstance(cfg[k], dict):
            fill(cfg[k], v, source, prov, p)
    return cfg


def layers_for(configfiles: Sequence[str | os.PathLike] = (), cli: Mapping | None = None,
               default_run: str | os.PathLike | None = ROOT / "config.yaml") -> list[Layer]:
    """The layers of a run: config.yaml, each --configfile (a ``base: defaults`` file starts
    over), the --config values."""
    layers = [Layer(SMOKE, read_yaml(default_run))] if default_run is not None else []
    for f in configfiles:
        data = read_yaml(f)
        if data.get("base") == "defaults":
            layers = []
        layers.append(Layer(os.path.relpath(f) if Path(f).is_absolute() else str(f), data))
    if cli:
        layers.append(Layer(CLI, coerce_cli(cli)))
    return layers


@dataclass
class Resolved:
    config: dict  #: the run's config (the layers' key order; what the rules read)
    model: Config  #: the same, typed
    sources: dict  #: leaf path (tuple of keys) -> layer name


def resolve(layers: Sequence[Layer], check_files: bool = False) -> Resolved:
    """Merge the layers over the model's defaults, validate, run the cross-key checks."""
    cfg, prov = {}, {}
    for layer in layers:  # the overlays in order, then config.yaml below them (as Snakemake does)
        if layer.name != SMOKE:
            merge(cfg, layer.data, layer.name, prov)
    for layer in layers:
        if layer.name == SMOKE:
            fill(cfg, layer.data, SMOKE, prov)
    studies = cfg.get("studies", list(R.STUDIES))
    given = set(cfg)
    for study in studies if isinstance(studies, list) else ():
        for section in R.STUDY_SECTIONS.get(study, ()):
            if section not in given:
                raise ConfigError(section, f"missing; study {study!r} needs it (state it, or drop {study!r} "
                                           "from studies)")
    skip = [s for st in R.STUDIES for s in R.STUDY_SECTIONS[st]
            if not (isinstance(studies, list) and st in studies) and s not in given]
    fill(cfg, defaults_of(Config, skip=[*skip, "base"]), DEFAULTS, prov)
    model = validate(cfg)
    cross_checks(model, check_files)
    return Resolved(cfg, model, prov)


# ----------------------------------------------------------------------------- validation


def _key(loc: Sequence, data) -> str:
    """Dotted config key of a pydantic error location (union-branch and tag names dropped)."""
    parts, node = [], data
    for part in loc:
        if (isinstance(node, dict) and part in node) or (
                isinstance(node, list) and isinstance(part, int) and part < len(node)):
            parts.append(str(part))
            node = node[part]
    return ".".join(parts)


def _rank(err) -> tuple:
    """Which of pydantic's errors to report: not a mapping tried against a scalar branch of a
    union (``mart: {lr: x}`` is not ``false``), then the branch that matches the value's type
    (nan: finite_number, not int_type), then the deepest."""
    wrong_branch = isinstance(err.get("input"), (dict, list)) and (
        err["type"].endswith("_type") or err["type"] in ("literal_error", "none_required"))
    return (wrong_branch, err["type"].endswith("_type"), -len(err["loc"]))


def _unwrap(ann):
    """The model class behind an annotation, ("dict", value annotation), "attack" (the suite's
    tagged union) or None."""
    origin = typing.get_origin(ann)
    if origin is Annotated:
        return _unwrap(typing.get_args(ann)[0])
    if origin is dict:
        return ("dict", typing.get_args(ann)[1])
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        if args and all(a in ATTACK_MODELS.values() for a in args):
            return "attack"
        for a in args:
            if (found := _unwrap(a)) is not None:
                return found
        return None
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def _allowed_keys(loc: Sequence) -> list[str] | None:
    """The keys the mapping at a pydantic error location accepts (None when unknown)."""
    node = Config
    for part in loc:
        if isinstance(node, tuple):  # part is a key of a name -> value mapping
            node = _unwrap(node[1])
        elif node == "attack":  # part is the tag (attack type)
            node = ATTACK_MODELS.get(part)
        elif isinstance(node, type) and part in node.model_fields:
            node = _unwrap(node.model_fields[part].annotation)
        elif not isinstance(node, type):
            return None
        # else: a union-branch label; the node stays
    return list(node.model_fields) if isinstance(node, type) else None


def describe(exc: ValidationError, data) -> ConfigError:
    errors = sorted(exc.errors(include_url=False), key=_rank)
    err = errors[0]
    loc = list(err["loc"])
    if err["type"] == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        hint = f"allowed: {', '.join(allowed)}" if allowed else "see docs/configuration.md"
        return ConfigError(_key(loc[:-1], data), f"unknown key {loc[-1]!r}; {hint}")
    if err["type"] == "missing":
        return ConfigError(_key(loc[:-1], data), f"required key {loc[-1]!r} is missing; state it")
    key = _key(loc, data)
    value = err.get("input")
    shown = "" if isinstance(value, (dict, list)) else f" (got {value!r})"
    return ConfigError(key, f"{err['msg']}{shown}")


def validate(cfg: dict) -> Config:
    """The typed config, or :class:`ConfigError` naming the first bad key."""
    try:
        return Config.model_validate(cfg)
    except ValidationError as exc:
        raise describe(exc, cfg) from None


def validate_config(config: dict, schema: str | os.PathLike | None = None) -> Config:
    """Validate a merged config dict (``schema``: ignored, kept for callers of the old API)."""
    model = validate(config)
    cross_checks(model)
    return model


# ----------------------------------------------------------------------------- cross-key checks


def enabled_methods(cfg: Config) -> list[str]:
    """Methods under training.methods not set to false."""
    return [m for m, v in cfg.training.methods.items() if v is not False]


def pretrained_methods(cfg: Config) -> list[str]:
    return [m for m, v in cfg.training.methods.items() if v not in (False, None) and v.pretrained is not None]


def trained_methods(cfg: Config) -> list[str]:
    return [m for m in enabled_methods(cfg) if m not in pretrained_methods(cfg)]


PRETRAINED_KEYS = {"pretrained", "eval_subset", "eval_batch_size", "eval_attack"}


def _need(cfg: Config, key: str, methods: Iterable[str], trained: bool = False):
    bad = [m for m in methods if m not in enabled_methods(cfg)]
    if bad:
        raise ConfigError(key, f"names {bad}, not enabled under training.methods; enable them there or "
                               "drop them here")
    pre = [m for m in methods if m in pretrained_methods(cfg)] if trained else []
    if pre:
        raise ConfigError(key, f"names {pre}, pretrained under training.methods: this stage needs the "
                               "epoch checkpoints of training; drop them here")


def _subset(key: str, names: Iterable[str], allowed: Iterable[str], where: str):
    bad = [n for n in names if n not in set(allowed)]
    if bad:
        raise ConfigError(key, f"names {bad}, not under {where}; add them there or drop them here")


def check_training(cfg: Config):
    t = cfg.training
    for m in pretrained_methods(cfg):
        extra = sorted(t.methods[m].model_fields_set - PRETRAINED_KEYS)
        if extra:
            raise ConfigError(f"training.methods.{m}.{extra[0]}",
                              f"method {m} is pretrained, not trained; drop it (allowed beside pretrained: "
                              f"{sorted(PRETRAINED_KEYS - {'pretrained'})})")
    trained = trained_methods(cfg)
    if trained or "ilyas" in cfg.studies:  # the Ilyas et al. study trains on its sets
        for key in TRAINED_ONLY:
            if getattr(t.common, key) is None:
                raise ConfigError("training.common", f"required key {key!r} is missing; state it (training "
                                                     f"{', '.join(trained) or 'on the synthetic sets'} needs it)")
    epochs = sorted(set(t.common.checkpoint_epochs or ()))
    for m in trained:
        own = t.methods[m]
        if own is not None and own.checkpoint_epochs is not None and sorted(set(own.checkpoint_epochs)) != epochs:
            raise ConfigError(f"training.methods.{m}.checkpoint_epochs",
                              "must equal training.common.checkpoint_epochs (set it there)")
        n = own.epochs if own is not None and own.epochs is not None else t.common.epochs
        if epochs and epochs[-1] > n:
            raise ConfigError("training.common.checkpoint_epochs",
                              f"epoch {epochs[-1]} is beyond the {n} epochs of training method {m}; lower it "
                              "or raise epochs")


def check_ilyas(cfg: Config):
    s = cfg.synthesis
    for m in ("standard", s.robust_method):
        if m not in enabled_methods(cfg):
            raise ConfigError("synthesis.robust_method" if m != "standard" else "training.methods",
                              f"synthesis needs training method {m!r} (standard, synthesis.robust_method); "
                              "enable it under training.methods")
    if s.transfer.attack not in s.eval.attacks:
        raise ConfigError("synthesis.transfer.attack",
                          f"{s.transfer.attack!r} is not a key of synthesis.eval.attacks; add it there")


def check_kim(cfg: Config):
    a, b = cfg.attacks, cfg.bottleneck
    _need(cfg, "attacks.models", a.models)
    for name, spec in a.suite.items():
        _subset(f"attacks.suite.{name}.models", spec.models or [], a.models, "attacks.models")
    _subset("attacks.sweep.attacks", a.sweep.attacks, a.suite, "attacks.suite")
    _subset("attacks.sweep.models", a.sweep.models, a.models, "attacks.models")
    _need(cfg, "bottleneck.methods", b.methods)
    _need(cfg, "bottleneck.sweep_methods", b.sweep_methods)
    _need(cfg, "bottleneck.tsne.method", [b.tsne.method])
    _subset("bottleneck.attacks", b.attacks, a.suite, "attacks.suite")
    _subset("bottleneck.tsne.attack", [b.tsne.attack], a.suite, "attacks.suite")


def check_zhang(cfg: Config):
    _need(cfg, "mutual_info.methods", cfg.mutual_info.methods, trained=True)


STUDY_CHECKS = {"ilyas": check_ilyas, "kim": check_kim, "zhang": check_zhang}


def cross_checks(cfg: Config, check_files: bool = False) -> None:
    """The checks a schema cannot express, for the studies the run enables (``check_files``:
    also that the files the config names exist)."""
    for study in cfg.studies:
        for section in R.STUDY_SECTIONS[study]:
            if getattr(cfg, section) is None:
                raise ConfigError(section, f"missing; study {study!r} needs it (state it, or drop {study!r} "
                                           "from studies)")
    check_training(cfg)
    if check_files:
        check_paths(cfg)
    for study in cfg.studies:
        STUDY_CHECKS[study](cfg)


def check_paths(cfg: Config) -> None:
    """Files the config names exist (relative to the working directory)."""
    for m in pretrained_methods(cfg):
        path = cfg.training.methods[m].pretrained.path
        if not os.path.isfile(path):
            raise ConfigError(f"training.methods.{m}.pretrained.path",
                              f"file {path!r} not found (relative paths start at the working directory); "
                              "fix the path")


# ----------------------------------------------------------------------------- Snakemake and schema


def workflow_config(basedir: str | os.PathLike, configfiles: Sequence, cli: Mapping | None,
                    replace: bool = False) -> dict:
    """The run's config for the Snakefile: config.yaml beside it (not with ``replace``:
    ``--replace-workflow-config``), the --configfile layers, the --config values; validated and
    cross-checked (files too)."""
    layers = layers_for(configfiles, cli, None if replace else Path(basedir) / "config.yaml")
    config = resolve(layers, check_files=True).config
    if config.get("run") is None:
        config["run"] = run_name(layers)
    return config


def run_name(layers: Sequence[Layer]) -> str:
    """The folder name of a run without config key ``run``: its config files' names (config.yaml:
    ``default``, ``presets/cifar10-cpu.yaml``: ``cifar10-cpu``; several joined by ``+``), and,
    when --config values are given, ``-`` and 8 hex digits of their hash, so that a run with other
    command-line values never writes into the folder of the run without them.  ``replicates`` is
    left out of the hash: replicate r is the same whatever their number, so ``--config
    replicates=3`` adds replicates 1 and 2 to the run's folder and keeps replicate 0."""
    names = ["default" if layer.name == SMOKE else Path(layer.name).stem for layer in layers if layer.name != CLI]
    name = "+".join(dict.fromkeys(names)) or "run"
    cli = [{k: v for k, v in layer.data.items() if k != "replicates"} for layer in layers if layer.name == CLI]
    cli = [c for c in cli if c]
    if cli:
        digest = hashlib.sha256(json.dumps(cli, sort_keys=True, default=str).encode()).hexdigest()[:8]
        name = f"{name}-{digest}"
    return name


def json_schema() -> dict:
    schema = Config.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


SCHEMA_HEADER = ("# Generated from advfeatures/config.py by `python -m advfeatures.config schema --write`;\n"
                 "# do not edit (tests/test_config_schema.py checks it is up to date).\n")


def schema_text() -> str:
    return SCHEMA_HEADER + yaml.safe_dump(json_schema(), sort_keys=False, width=100)


def _type_text(node: dict, defs: dict) -> str:
    """A short type for the reference table, from a JSON-schema node."""
    if "$ref" in node:
        name = node["$ref"].split("/")[-1]
        return "mapping" if not name.startswith("Attack_") else name
    if "enum" in node:
        return " \\| ".join(map(str, node["enum"]))
    if "const" in node:
        return json.dumps(node["const"])
    for key in ("anyOf", "oneOf"):
        if key in node:
            return " or ".join(_type_text(n, defs) for n in node[key])
    t = node.get("type", "any")
    if t == "array":
        return f"list of {_type_text(node.get('items', {}), defs)}"
    if t == "object" and "additionalProperties" in node and isinstance(node["additionalProperties"], dict):
        return f"name -> {_type_text(node['additionalProperties'], defs)}"
    bounds = [f"{op} {node[k]}" for k, op in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="),
                                              ("exclusiveMaximum", "<")) if k in node]
    return t + (f" ({', '.join(bounds)})" if bounds else "")


def reference_markdown() -> str:
    """Every key of the model: type, default (or `required`), description (docs/configuration.md)."""
    schema = json_schema()
    defs = schema["$defs"]
    rows = ["| key | type | default | description |", "|---|---|---|---|"]

    def walk(node, prefix):
        if "$ref" in node:
            node = defs[node["$ref"].split("/")[-1]]
        required = set(node.get("required", ()))
        for key, sub in node.get("properties", {}).items():
            path = f"{prefix}{key}"
            target = sub
            for alt in sub.get("anyOf", ()):
                if "$ref" in alt:
                    target = alt
            ref = target.get("$ref", "").split("/")[-1]
            default = "required" if key in required else json.dumps(sub.get("default")) if "default" in sub else ""
            desc = " ".join((sub.get("description") or (defs[ref].get("description", "") if ref else "")).split())
            rows.append(f"| `{path}` | {_type_text(sub, defs)} | {default} | {desc.replace('|', '/')} |")
            if ref and ref in defs and "properties" in defs[ref] and not ref.startswith("Attack_"):
                walk(defs[ref], path + ".")

    walk(schema, "")
    rows += ["", "Attack types under `attacks.suite.<name>` (each accepts exactly these keys besides `type`, "
             "`subset`, `models`; unset keys take the reference defaults shown):", "",
             "| type | label | keys | reference defaults |", "|---|---|---|---|"]
    for t, meta in R.ATTACKS.items():
        rows.append(f"| `{t}` | {meta.label} | {', '.join(meta.params)} | "
                    f"{', '.join(f'{k}={v}' for k, v in meta.defaults.items()) or '-'} |")
    return "\n".join(rows) + "\n"


REFERENCE_BEGIN = "<!-- reference: generated by python -m advfeatures.config reference --write -->"
REFERENCE_END = "<!-- end of reference -->"
DOCS_PATH = ROOT / "docs" / "configuration.md"


def docs_with_reference(text: str) -> str:
    """``text`` (docs/configuration.md) with its reference section regenerated."""
    a, b = text.index(REFERENCE_BEGIN) + len(REFERENCE_BEGIN), text.index(REFERENCE_END)
    return text[:a] + "\n\n" + reference_markdown() + "\n" + text[b:]


def _leaves(node, path=()):
    if isinstance(node, dict) and node:
        for k, v in node.items():
            yield from _leaves(v, (*path, k))
    else:
        yield path, node


def render(res: Resolved) -> str:
    """The resolved config as ``key: value  # source`` lines."""
    lines = []
    for path, value in _leaves(res.config):
        shown = json.dumps(value) if not isinstance(value, str) else value
        lines.append(f"{'.'.join(map(str, path))}: {shown}  # {res.sources.get(path, '?')}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m advfeatures.config", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("resolve", help="print a run's config with the layer each value came from")
    r.add_argument("configfiles", nargs="*", help="--configfile files, in order (none: the default run)")
    r.add_argument("--config", nargs="*", default=[], metavar="KEY=VALUE",
                   help="values as snakemake --config takes them")
    r.add_argument("--yaml", action="store_true", help="print plain YAML without sources")
    s = sub.add_parser("schema", help="print (or --write) the JSON schema generated from the model")
    s.add_argument("--write", action="store_true", help=f"write {SCHEMA_PATH.relative_to(ROOT)}")
    d = sub.add_parser("reference", help="print (or --write into docs/configuration.md) the key reference")
    d.add_argument("--write", action="store_true")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "reference":
            if args.write:
                DOCS_PATH.write_text(docs_with_reference(DOCS_PATH.read_text()))
            else:
                sys.stdout.write(reference_markdown())
            return 0
        if args.cmd == "schema":
            if args.write:
                SCHEMA_PATH.write_text(schema_text())
            else:
                sys.stdout.write(schema_text())
            return 0
        from snakemake.cli import parse_config

        res = resolve(layers_for(args.configfiles, parse_config(args.config)))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    sys.stdout.write(yaml.safe_dump(res.config, sort_keys=False) if args.yaml else render(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
