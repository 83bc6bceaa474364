"""Bad configs are rejected before any job runs, with a message naming the key.

Each case is an overlay (deep-merged over config.yaml + tests/tiny.yaml, as a user's
--configfile is) or, for missing keys, a full config with the key deleted.  Snakemake's own
message names only the value; advfeatures.config (called by the Snakefile) reports
``invalid config: key <dotted path>: <reason>``.  The whole matrix runs in-process through
that same function (Snakemake's validator); a sample of it, and the cross-key checks of
rules/common.smk, run through ``snakemake -n`` to show the CLI rejects them before any job.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, Snake

from advfeatures.config import ConfigError, validate_config

SCHEMA = ROOT / "schemas" / "config.schema.yaml"

BAD = [
    # (id, overlay, key named in the message, words the reason must contain)
    ("seed-negative", {"seed": -1}, "seed", "minimum"),
    ("seed-string", {"seed": "zero"}, "seed", "not of type"),
    ("seed-float", {"seed": 1.5}, "seed", "not of type"),
    ("device-unknown", {"device": "tpu"}, "device", "not one of"),
    ("precision-unknown", {"precision": "fp16"}, "precision", "not one of"),
    ("threads-zero", {"threads": 0}, "threads", "minimum"),
    ("channels_last-string", {"channels_last": "yes"}, "channels_last", "not of type"),
    ("gpus-negative", {"resources": {"gpus": -1}}, "resources.gpus", "minimum"),
    ("mem-string", {"resources": {"train": {"mem_mb": "lots"}}}, "resources.train.mem_mb", "not of type"),
    ("resources-unknown-stage", {"resources": {"trian": {"mem_mb": 10}}}, "resources", "'trian' does not match"),
    ("dataset-unknown", {"dataset": {"name": "imagenet"}}, "dataset.name", "not one of"),
    ("subset-zero", {"dataset": {"subset_train": 0}}, "dataset.subset_train", "minimum"),
    ("dataset-unknown-key", {"dataset": {"colour": True}}, "dataset", "'colour' was unexpected"),
    ("arch-unknown", {"arch": {"name": "resnet1000"}}, "arch.name", "not one of"),
    ("wrn-depth-range", {"arch": {"options": {"wrn": {"depth": 4}}}}, "arch.options.wrn.depth", "not one of"),
    ("wrn-unknown-key", {"arch": {"options": {"wrn": {"width": 4}}}}, "arch.options.wrn", "'width' was unexpected"),
    ("epochs-zero", {"training": {"common": {"epochs": 0}}}, "training.common.epochs", "minimum"),
    ("epochs-string", {"training": {"common": {"epochs": "ten"}}}, "training.common.epochs", "not of type"),
    ("lr-zero", {"training": {"common": {"lr": 0}}}, "training.common.lr", "minimum"),
    ("momentum-range", {"training": {"common": {"momentum": 1.5}}}, "training.common.momentum", "maximum"),
    ("optimizer-unknown", {"training": {"common": {"optimizer": "rmsprop"}}}, "training.common.optimizer", "not one of"),
    ("schedule-unknown", {"training": {"common": {"schedule": {"type": "exp"}}}}, "training.common.schedule.type", "not one of"),
    ("augmentation-unknown", {"training": {"common": {"augmentation": "mixup"}}}, "training.common.augmentation", "not one of"),
    ("eps-negative", {"training": {"common": {"attack": {"eps": -0.1}}}}, "training.common.attack.eps", "minimum"),
    ("eps-non-numeric", {"training": {"common": {"attack": {"eps": "8/255"}}}}, "training.common.attack.eps", "not of type"),
    ("norm-unknown", {"training": {"common": {"attack": {"norm": "l1"}}}}, "training.common.attack.norm", "not one of"),
    ("steps-float", {"training": {"common": {"eval_attack": {"steps": 2.5}}}}, "training.common.eval_attack.steps", "not of type"),
    ("attack-unknown-key", {"training": {"common": {"attack": {"epsilon": 0.3}}}}, "training.common.attack", "'epsilon' was unexpected"),
    ("checkpoint-epoch-zero", {"training": {"common": {"checkpoint_epochs": [0]}}}, "training.common.checkpoint_epochs.0", "minimum"),
    ("method-unknown", {"training": {"methods": {"fgsm_at": {}}}}, "training.methods", "'fgsm_at' was unexpected"),
    ("method-eps-negative", {"training": {"methods": {"pgd_linf": {"attack": {"norm": "linf", "eps": -1, "alpha": 0.1, "steps": 1}}}}}, "training.methods.pgd_linf.attack.eps", "minimum"),
    ("method-beta-negative", {"training": {"methods": {"trades": {"beta": -1}}}}, "training.methods.trades.beta", "minimum"),
    ("method-lr-string", {"training": {"methods": {"pgd_linf": {"lr": "fast"}}}}, "training.methods.pgd_linf.lr", "not of type"),
    ("method-unknown-key", {"training": {"methods": {"pgd_linf": {"epohcs": 3}}}}, "training.methods.pgd_linf", "'epohcs' was unexpected"),
    ("method-true", {"training": {"methods": {"mart": True}}}, "training.methods.mart", "not valid"),
    ("pretrained-format-unknown", {"training": {"methods": {"standard": {"pretrained": {"path": "m.pt", "format": "timm"}}}}},
     "training.methods.standard.pretrained.format", "not one of"),
    ("pretrained-no-format", {"training": {"methods": {"standard": {"pretrained": {"path": "m.pt"}}}}},
     "training.methods.standard.pretrained", "'format' is a required property"),
    ("pretrained-std-zero", {"training": {"methods": {"standard": {"pretrained": {
        "path": "m.pt", "format": "cifar_resnet", "normalization": {"mean": [0], "std": [0]}}}}}},
     "training.methods.standard.pretrained.normalization.std.0", "minimum"),
    ("pretrained-in-common", {"training": {"common": {"pretrained": {"path": "m.pt", "format": "wrn"}}}},
     "training.common", "should not be valid"),
    ("top-level-typo", {"trainig": {}}, "<top level>", "'trainig' was unexpected"),
    ("health-margin-range", {"training": {"common": {"health": {"min_acc_over_chance": 150}}}}, "training.common.health.min_acc_over_chance", "maximum"),
    ("health-unknown-key", {"training": {"common": {"health": {"allow_dead": True}}}}, "training.common.health", "'allow_dead' was unexpected"),
    ("eps-warmup-negative", {"training": {"common": {"eps_warmup_epochs": -1}}}, "training.common.eps_warmup_epochs", "minimum"),
    ("grad-clip-zero", {"training": {"methods": {"mart": {"grad_clip_norm": 0}}}}, "training.methods.mart.grad_clip_norm", "minimum"),
]
# cross-key checks the schema cannot express (rules/common.smk): only through snakemake
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
    # (id, path of the deleted key, key named in the message, the missing property)
    ("no-seed", ("seed",), "<top level>", "'seed' is a required property"),
    ("no-dataset-name", ("dataset", "name"), "dataset", "'name' is a required property"),
    ("no-epochs", ("training", "common", "epochs"), "training.common", "'epochs' is a required property"),
    ("no-eps", ("training", "common", "attack", "eps"), "training.common.attack", "'eps' is a required property"),
    ("no-methods", ("training", "methods"), "training", "'methods' is a required property"),
]


def merge(a, b):
    """Snakemake's update_config: nested mappings merge, everything else replaces."""
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def tiny_config() -> dict:
    """config.yaml with tests/tiny.yaml merged over it (what the overlays start from)."""
    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    return merge(base, yaml.safe_load((ROOT / "tests" / "tiny.yaml").read_text()))


def rejection(cfg: dict) -> str:
    with pytest.raises(ConfigError) as exc:
        validate_config(cfg, SCHEMA)
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
    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    if name == "tiny":
        cfg = tiny_config()
    elif name == "config.yaml":
        cfg = base
    else:
        cfg = merge(base, yaml.safe_load((ROOT / "presets" / name).read_text()) or {})
    validate_config(cfg, SCHEMA)


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
    f.write_text(yaml.safe_dump(without(tiny_config(), ("training", "common", "epochs"))))
    # only this file, not merged over config.yaml, so the key is really absent
    assert_cli_rejects(
        Snake(ROOT, snake.wd, tiny=False), f, "training.common", "'epochs' is a required property",
        replace=True,
    )


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
