"""Bad configs are rejected before any job runs, with a message naming the key.

Each case is an overlay (merged over config.yaml + tests/tiny.yaml, as a user's --configfile
is) or, for missing keys, a full config with the key deleted.  advfeatures.config (the typed
model the Snakefile resolves the run's config with) reports ``invalid config: key <dotted
path>: <reason>``.  The whole matrix runs in-process; a sample of it, the cross-key checks and
the command-line overrides go through ``snakemake -n`` to show the CLI rejects or accepts them
before any job.  The committed JSON schema is the one generated from the model.
"""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml
from conftest import ROOT, Snake
from snakemake.cli import parse_config

from advfeatures import config as C
from advfeatures.config import ConfigError, validate_config

SCHEMA = ROOT / "schemas" / "config.schema.yaml"
MIN = "greater than or equal"
MORE = "greater than"
TYPE_INT = "valid integer"
ONE_OF = "Input should be"
UNKNOWN = "unknown key"

BAD = [
    # (id, overlay, key named in the message, words the reason must contain)
    ("seed-negative", {"seed": -1}, "seed", MIN),
    ("seed-string", {"seed": "zero"}, "seed", TYPE_INT),
    ("seed-float", {"seed": 1.5}, "seed", TYPE_INT),
    ("device-unknown", {"device": "tpu"}, "device", "'auto', 'cpu' or 'cuda'"),
    ("precision-unknown", {"precision": "fp16"}, "precision", "'fp32' or 'bf16'"),
    ("threads-zero", {"threads": 0}, "threads", MIN),
    ("channels_last-string", {"channels_last": "yes"}, "channels_last", "valid boolean"),
    ("gpus-negative", {"resources": {"gpus": -1}}, "resources.gpus", MIN),
    ("mem-string", {"resources": {"train": {"mem_mb": "lots"}}}, "resources.train.mem_mb", TYPE_INT),
    ("resources-unknown-stage", {"resources": {"trian": {"mem_mb": 10}}}, "resources", "unknown key 'trian'"),
    ("dataset-unknown", {"dataset": {"name": "imagenet"}}, "dataset.name", ONE_OF),
    ("subset-zero", {"dataset": {"subset_train": 0}}, "dataset.subset_train", MIN),
    ("dataset-unknown-key", {"dataset": {"colour": True}}, "dataset", "unknown key 'colour'"),
    ("arch-unknown", {"arch": {"name": "resnet1000"}}, "arch.name", ONE_OF),
    ("wrn-depth-range", {"arch": {"options": {"wrn": {"depth": 4}}}}, "arch.options.wrn.depth", "10, 16, 22"),
    ("wrn-unknown-key", {"arch": {"options": {"wrn": {"width": 4}}}}, "arch.options.wrn", "unknown key 'width'"),
    ("epochs-zero", {"training": {"common": {"epochs": 0}}}, "training.common.epochs", MIN),
    ("epochs-string", {"training": {"common": {"epochs": "ten"}}}, "training.common.epochs", TYPE_INT),
    ("lr-zero", {"training": {"common": {"lr": 0}}}, "training.common.lr", MORE),
    ("momentum-range", {"training": {"common": {"momentum": 1.5}}}, "training.common.momentum", "less than or equal to 1"),
    ("optimizer-unknown", {"training": {"common": {"optimizer": "rmsprop"}}}, "training.common.optimizer", "'sgd' or 'adam'"),
    ("schedule-unknown", {"training": {"common": {"schedule": {"type": "exp"}}}}, "training.common.schedule.type", ONE_OF),
    ("augmentation-unknown", {"training": {"common": {"augmentation": "mixup"}}}, "training.common.augmentation", ONE_OF),
    ("eps-negative", {"training": {"common": {"attack": {"eps": -0.1}}}}, "training.common.attack.eps", MIN),
    ("eps-non-numeric", {"training": {"common": {"attack": {"eps": "8/255"}}}}, "training.common.attack.eps", "(got '8/255')"),
    ("norm-unknown", {"training": {"common": {"attack": {"norm": "l1"}}}}, "training.common.attack.norm", "'linf' or 'l2'"),
    ("steps-float", {"training": {"common": {"eval_attack": {"steps": 2.5}}}}, "training.common.eval_attack.steps", TYPE_INT),
    ("attack-unknown-key", {"training": {"common": {"attack": {"epsilon": 0.3}}}}, "training.common.attack", "unknown key 'epsilon'"),
    ("checkpoint-epoch-zero", {"training": {"common": {"checkpoint_epochs": [0]}}}, "training.common.checkpoint_epochs.0", MIN),
    ("method-unknown", {"training": {"methods": {"fgsm_at": {}}}}, "training.methods.fgsm_at", ONE_OF),
    ("method-eps-negative", {"training": {"methods": {"pgd_linf": {"attack": {"norm": "linf", "eps": -1, "alpha": 0.1, "steps": 1}}}}}, "training.methods.pgd_linf.attack.eps", MIN),
    ("method-beta-negative", {"training": {"methods": {"trades": {"beta": -1}}}}, "training.methods.trades.beta", MIN),
    ("method-lr-string", {"training": {"methods": {"pgd_linf": {"lr": "fast"}}}}, "training.methods.pgd_linf.lr", "(got 'fast')"),
    ("method-unknown-key", {"training": {"methods": {"pgd_linf": {"epohcs": 3}}}}, "training.methods.pgd_linf", "unknown key 'epohcs'"),
    ("method-true", {"training": {"methods": {"mart": True}}}, "training.methods.mart", "(got True)"),
    ("pretrained-format-unknown", {"training": {"methods": {"standard": {"pretrained": {"path": "m.pt", "format": "timm"}}}}},
     "training.methods.standard.pretrained.format", ONE_OF),
    ("pretrained-no-format", {"training": {"methods": {"standard": {"pretrained": {"path": "m.pt"}}}}},
     "training.methods.standard.pretrained", "required key 'format' is missing"),
    ("pretrained-std-zero", {"training": {"methods": {"standard": {"pretrained": {
        "path": "m.pt", "format": "cifar_resnet", "normalization": {"mean": [0], "std": [0]}}}}}},
     "training.methods.standard.pretrained.normalization.std.0", MORE),
    ("pretrained-in-common", {"training": {"common": {"pretrained": {"path": "m.pt", "format": "wrn"}}}},
     "training.common", "unknown key 'pretrained'"),
    ("top-level-typo", {"trainig": {}}, "<top level>", "unknown key 'trainig'"),
    ("health-margin-range", {"training": {"common": {"health": {"min_acc_over_chance": 150}}}}, "training.common.health.min_acc_over_chance", "less than or equal to 100"),
    ("health-unknown-key", {"training": {"common": {"health": {"allow_dead": True}}}}, "training.common.health", "unknown key 'allow_dead'"),
    ("eps-warmup-negative", {"training": {"common": {"eps_warmup_epochs": -1}}}, "training.common.eps_warmup_epochs", MIN),
    ("models-duplicate", {"attacks": {"models": ["standard", "standard"]}}, "attacks.models", "unique"),
    ("studies-unknown", {"studies": ["madry"]}, "studies.0", ONE_OF),
    ("suite-type-unknown", {"attacks": {"suite": {"x": {"type": "deepfool"}}}}, "attacks.suite.x", "'deepfool'"),
    ("suite-key-of-other-type", {"attacks": {"suite": {"fgsm": {"type": "fgsm", "steps": 3}}}}, "attacks.suite.fgsm",
     "unknown key 'steps'; allowed: type, eps, subset, models"),
    ("grad-clip-zero", {"training": {"methods": {"mart": {"grad_clip_norm": 0}}}}, "training.methods.mart.grad_clip_norm", MORE),
]
# cross-key checks (advfeatures.config.cross_checks), through snakemake
CROSS = [
    ("checkpoint-beyond-epochs", {"training": {"common": {"checkpoint_epochs": [1, 5]}}}, "training.common.checkpoint_epochs", "beyond"),
    ("method-own-checkpoints", {"training": {"methods": {"pgd_linf": {"checkpoint_epochs": [2]}}}}, "training.methods.pgd_linf.checkpoint_epochs", "must equal"),
    ("pretrained-path-missing", {"training": {"methods": {"standard": {"pretrained": {"path": "absent.pt", "format": "cifar_resnet"}}}}},
     "training.methods.standard.pretrained.path", "not found"),
    ("pretrained-with-training-key", {"training": {"methods": {"standard": {"pretrained": {"path": "absent.pt", "format": "cifar_resnet"}, "lr": 0.1}}}},
     "training.methods.standard.lr", "is pretrained, not trained"),
]
# the sample of BAD that also goes through the command line
CLI_SAMPLE = {"seed-negative", "eps-non-numeric", "method-unknown-key", "method-true", "top-level-typo"}

MISSING = [
    # (id, path of the deleted key, key named in the message, the missing key); budgets have no default
    ("no-dataset-name", ("dataset", "name"), "dataset", "required key 'name' is missing"),
    ("no-epochs", ("training", "common", "epochs"), "training.common", "required key 'epochs' is missing"),
    ("no-eps", ("training", "common", "attack", "eps"), "training.common.attack", "required key 'eps'"),
    ("no-methods", ("training", "methods"), "training", "required key 'methods' is missing"),
    ("no-attack-eps", ("attacks", "eps"), "attacks", "required key 'eps' is missing"),
    ("no-targeted", ("synthesis", "targeted"), "synthesis", "required key 'targeted' is missing"),
    ("no-sweep-eps", ("attacks", "sweep", "eps"), "attacks.sweep", "required key 'eps' is missing"),
]


def merge(a, b):
    """Snakemake's update_config: nested mappings merge, everything else replaces."""
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def tiny_config() -> dict:
    """The resolved run of tests/tiny.yaml over config.yaml (what the overlays start from)."""
    return C.resolve(C.layers_for([ROOT / "tests" / "tiny.yaml"])).config


def rejection(cfg: dict) -> str:
    with pytest.raises(ConfigError) as exc:
        validate_config(cfg)
    return str(exc.value)


def check_line(line: str, key: str, words: str):
    assert "\n" not in line and line.startswith(f"invalid config: key {key}: "), line
    assert words in line, line


@pytest.mark.parametrize("overlay, key, words", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_config_rejected_naming_key(overlay, key, words):
    check_line(rejection(merge(tiny_config(), overlay)), key, words)


def without(cfg: dict, path) -> dict:
    cfg = copy.deepcopy(cfg)
    node = cfg
    for k in path[:-1]:
        node = node[k]
    del node[path[-1]]
    return cfg


@pytest.mark.parametrize("path, key, words", [c[1:] for c in MISSING], ids=[c[0] for c in MISSING])
def test_missing_key_rejected(path, key, words):
    check_line(rejection(without(tiny_config(), path)), key, words)


@pytest.mark.parametrize(
    "name", ["tiny", "config.yaml"] + [p.name for p in sorted((ROOT / "presets").glob("*.yaml"))]
)
def test_good_configs_validate(name):
    files = {"tiny": [ROOT / "tests" / "tiny.yaml"], "config.yaml": []}.get(name, [ROOT / "presets" / name])
    res = C.resolve(C.layers_for(files))
    validate_config(res.config)
    jsonschema.validate(res.config, yaml.safe_load(SCHEMA.read_text()))  # what the Snakefile checks too


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -0.1, "nan", "inf", "-0.1"],
                         ids=["nan", "inf", "negative", "nan-text", "inf-text", "negative-text"])
def test_non_finite_or_negative_eps_names_the_key(value):
    """NaN and inf never reach a job; strings are how --config passes them (read as YAML)."""
    msg = str(pytest.raises(ConfigError, C.resolve, C.layers_for([], {"attacks": {"eps": value}})).value)
    check_line(msg, "attacks.eps", "finite number" if "n" in str(value) else "greater than 0")


def test_default_run_config_is_config_yaml():
    """The default run resolves to config.yaml as written (its params stay byte-identical)."""
    res = C.resolve(C.layers_for())
    assert repr(res.config) == repr(yaml.safe_load((ROOT / "config.yaml").read_text()))
    assert res.model.studies == ["ilyas", "kim", "zhang"]


def test_cli_strings_are_read_as_yaml():
    assert C.coerce_cli({"training": {"common": {"epochs": "3", "lr": "0.1", "grad_clip_norm": "null"}},
                         "dataset": {"download": "false", "root": "../data/x"}, "l": ["1", "a"]}) == {
        "training": {"common": {"epochs": 3, "lr": 0.1, "grad_clip_norm": None}},
        "dataset": {"download": False, "root": "../data/x"}, "l": [1, "a"]}


def test_committed_schema_is_generated_from_the_model():
    assert SCHEMA.read_text() == C.schema_text(), "run: python -m advfeatures.config schema --write"


def test_attack_types_accept_exactly_their_registry_keys():
    from advfeatures.registry import ATTACKS, GENERIC_KEYS

    for t, meta in ATTACKS.items():
        assert set(C.ATTACK_MODELS[t].model_fields) == set(meta.params) | set(GENERIC_KEYS), t


# ----------------------------------------------------------------------------- through snakemake


@pytest.fixture(scope="module")
def snake(tmp_path_factory):
    return Snake(ROOT, tmp_path_factory.mktemp("schema_wd"))


def assert_cli_rejects(snake: Snake, cfg: Path, key: str, words: str, replace=False):
    args = ["-n", "--cores", "1"] + (["--replace-workflow-config"] if replace else [])
    proc = snake.run(*args, configs=[cfg], check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-2000:]
    line = next((ln for ln in out.splitlines() if ln.startswith("invalid config: key ")), None)
    assert line, out[-2000:]
    check_line(line, key, words)
    assert "Building DAG" not in out and not (snake.wd / "data").exists() and not (snake.wd / "results").exists()


CLI_CASES = [c for c in BAD if c[0] in CLI_SAMPLE] + CROSS


@pytest.mark.parametrize("overlay, key, words", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_snakemake_rejects_before_any_job(snake, tmp_path, overlay, key, words):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump(overlay))
    assert_cli_rejects(snake, cfg, key, words)


def test_snakemake_rejects_missing_key(snake, tmp_path):
    f = tmp_path / "full.yaml"
    full = without(tiny_config(), ("training", "common", "epochs"))
    assert full["base"] == "defaults"  # a whole run: not merged over config.yaml, the key is really absent
    f.write_text(yaml.safe_dump(full))
    assert_cli_rejects(Snake(ROOT, snake.wd, tiny=False), f, "training.common", "required key 'epochs' is missing")


@pytest.mark.parametrize("config, key, value", [
    (["training={common: {epochs: 3}}"], ("training", "common", "epochs"), 3),
    (["dataset={name: mnist5k, download: false}"], ("dataset", "download"), False),
    (["attacks={eps: 0.1}", "seed=2"], ("attacks", "eps"), 0.1),
])
def test_nested_command_line_values_reach_the_model_typed(snake, config, key, value):
    """Snakemake keeps nested --config values as text; they are read as YAML, then typed."""
    proc = snake.run("-n", "--cores", "1", "--quiet", "rules", "--config", *config)
    assert "invalid config" not in proc.stdout + proc.stderr
    res = C.resolve(C.layers_for([ROOT / "tests" / "tiny.yaml"], parse_config(config)))
    node = res.config
    for k in key:
        node = node[k]
    assert node == value and type(node) is type(value) and res.sources[key] == C.CLI


def test_snakemake_rejects_nan_from_the_command_line(snake):
    proc = snake.run("-n", "--cores", "1", "--config", "attacks={eps: .nan}", check=False)
    line = next((ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("invalid config")), "")
    assert proc.returncode != 0
    check_line(line, "attacks.eps", "finite number")


@pytest.mark.slow
@pytest.mark.parametrize(
    "configs",
    [["config.yaml"]] + [[f"presets/{p.name}"] for p in sorted((ROOT / "presets").glob("*.yaml"))],
    ids=lambda c: c[0],
)
def test_dry_run_plans_whole_dag(snake, configs):
    """`snakemake -n` succeeds for the default config and every preset (issue 2)."""
    proc = Snake(ROOT, snake.wd, tiny=False).run(
        "-n", "--cores", "1", "--quiet", "all", configs=[ROOT / c for c in configs], check=False
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]


def test_key_reference_in_the_docs_is_generated_from_the_model():
    text = C.DOCS_PATH.read_text()
    assert text == C.docs_with_reference(text), "run: python -m advfeatures.config reference --write"
    for key in ("synthesis.targeted.eps", "attacks.sweep.eps", "studies"):
        assert f"| `{key}` |" in text
