"""Every preset in presets/ (and config.yaml itself) passes `snakemake -n` over the whole DAG, as
its header says to run it; every preset is a whole run (`base: defaults`) whose budgets all come
from the preset itself, never from config.yaml's MNIST smoke budgets nor from a model default."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from advfeatures import config as C

ROOT = Path(__file__).resolve().parents[1]
PRESETS = sorted((ROOT / "presets").glob("*.yaml"))


def dry_run(workdir: Path, configfile: Path | None) -> str:
    cmd = [sys.executable, "-m", "snakemake", "-n", "--quiet", "rules"]
    cmd += ["--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir)]
    if configfile is not None:
        cmd += ["--configfile", str(configfile)]  # last: it takes several values
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"snakemake -n failed for {configfile}:\n{out[-3000:]}"
    return out


def job_count(out: str, rule: str) -> int:
    m = re.search(rf"^{rule}\s+(\d+)\s*$", out, re.MULTILINE)
    return int(m.group(1)) if m else 0


def test_presets_exist():
    names = {p.stem for p in PRESETS}
    paper = {"cifar10-vgg16", "cifar10-wrn28", "cifar10-resnet50", "mnist-lenet5", "cifar10-wrn"}
    assert paper | {"svhn", "stl10-wrn"} <= names


def header_commands(preset: Path) -> list[list[str]]:
    """The `snakemake ...` commands of a preset's header comment (continuation lines joined)."""
    import shlex

    head = []
    for line in preset.read_text().splitlines():
        if not line.startswith("#"):
            break
        head.append(line.lstrip("#").strip())
    text = "\n".join(head).replace("\\\n", " ")
    cmds = [shlex.split(ln[ln.index("snakemake"):]) for ln in text.splitlines() if "snakemake " in ln]
    return [c for c in cmds if "--configfile" in c]


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_preset_header_commands_dry_run(tmp_path, preset):
    """Each command a preset's header gives parses and plans its DAG (dry run)."""
    cfg = yaml.safe_load(preset.read_text())
    cmds = header_commands(preset)
    assert cmds, f"{preset.name}: no snakemake command in its header"
    for cmd in cmds:
        args = [a for a in cmd[1:] if a not in ("--cores", "all", "2")]
        full = [sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "--cores", "1",
                "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path), *args]
        proc = subprocess.run(full, cwd=ROOT, capture_output=True, text=True, timeout=300)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{out[-3000:]}"
        enabled = [m for m, v in cfg["training"]["methods"].items() if v is not False]
        assert job_count(out, "prepare_data") == 1
        assert job_count(out, "train") == len(enabled) * cfg["replicates"]  # one model set per replicate
    assert cfg["replicates"] == 3, f"{preset.name}: a preset measures training-seed variance (3 replicates)"
    if preset.stem.endswith("-cpu"):  # laptop presets: 2 CPU cores, no GPU
        assert cfg["resources"]["gpus"] == 0 and cfg["threads"] == 1
    else:  # cluster settings every paper preset carries
        assert cfg["device"] == "auto" and cfg["resources"]["gpus"] == 1 and cfg["threads"] > 1


#: keys that set a budget: eps, step sizes and counts, c, sweeps, subsets, epochs, and every key
#: of the synthesis and transfer settings (training.common.beta, the TRADES weight, is a method's)
BUDGET = re.compile(r"^(?!report\.)(.*\.)?(eps|alpha|alpha_scale|steps|step_size|iterations|n_iter|n_queries|c|"
                    r"epochs|betas|subset|eval_subset|n_samples|attack|eval_attack|milestones|lr)(\.|$)|"
                    r"^(bottleneck|attacks\.nrf)\.beta$|"
                    r"^synthesis\.(inversion\.steps|inversion\.step_size|targeted|train|eval\.attacks|"
                    r"eval\.subset|transfer|robust_method)|^attacks\.(suite|sweep|models|eps)")


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_preset_states_every_budget(preset):
    """Resolved, no value of a preset comes from config.yaml, and no budget-like value from a
    model default: each is the preset's own (from its paper, or a choice it states)."""
    res = C.resolve(C.layers_for([preset]))
    assert res.config["base"] == "defaults"
    name = C.layers_for([preset])[0].name
    smoke = [".".join(map(str, p)) for p, src in res.sources.items() if src == C.SMOKE]
    assert not smoke, f"{preset.name} takes these from config.yaml: {smoke}"
    defaulted = [".".join(map(str, p)) for p, src in res.sources.items()
                 if src == C.DEFAULTS and BUDGET.search(".".join(map(str, p)))]
    assert not defaulted, f"{preset.name} leaves these budgets to the model's defaults: {defaulted}"
    assert {src for src in res.sources.values()} <= {name, C.DEFAULTS}
    # every attack of the suite states the keys that set its budget
    from advfeatures.registry import ATTACKS

    for a, spec in res.config["attacks"]["suite"].items():
        missing = [k for k in ATTACKS[spec["type"]].budget if k not in spec]
        assert not missing, f"{preset.name}: attacks.suite.{a} does not state {missing}"


def test_budget_check_catches_the_smoke_file(tmp_path):
    """The check above fails for a preset written as an overlay of config.yaml (as they were)."""
    over = tmp_path / "overlay.yaml"
    over.write_text("dataset: {name: cifar10}\narch: {name: vgg16}\n")
    res = C.resolve(C.layers_for([over]))
    assert res.sources[("synthesis", "targeted", "eps")] == C.SMOKE
    assert res.sources[("attacks", "suite", "cw", "c")] == C.SMOKE


def test_resolve_command_prints_sources(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "advfeatures.config", "resolve", "presets/cifar10-vgg16.yaml",
                           "--config", "seed=3"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "attacks.eps: 0.03  # presets/cifar10-vgg16.yaml" in lines
    assert "seed: 3  # --config" in lines
    assert "training.common.momentum: 0.9  # presets/cifar10-vgg16.yaml" in lines
    assert "mutual_info.kde.noise_var: 0.1  # defaults" in lines
    assert not any(line.endswith("# config.yaml") for line in lines)


def test_cifar10_cpu_preset_keeps_adversarial_training_healthy():
    """The remedies that make PGD-AT and MART leave chance on CIFAR-10 with LeNet-5 (issue 13,
    measured with benchmarks/bench_cifar_training.py) and the default health checks."""
    common = yaml.safe_load((ROOT / "presets" / "cifar10-cpu.yaml").read_text())["training"]["common"]
    assert common["eps_warmup_epochs"] >= 1 and common["lr"] >= 0.05  # a low LR stays on the plateau
    assert common["eps_warmup_epochs"] < common["epochs"]
    assert common["health"] == {"min_acc_over_chance": 10, "allow_degenerate": False}
    a = common["attack"]
    assert (a["norm"], a["steps"]) == ("linf", 7)
    assert (a["eps"], a["alpha"]) == pytest.approx((8 / 255, 2 / 255), abs=1e-6)
    assert common["eval_attack"]["steps"] == 20


def test_default_config_dry_run(tmp_path):
    out = dry_run(tmp_path, None)
    assert job_count(out, "train") >= 1


def test_kim_presets_match_the_paper():
    for name in ("cifar10-vgg16", "cifar10-wrn28", "svhn"):
        common = yaml.safe_load((ROOT / "presets" / f"{name}.yaml").read_text())["training"][
            "common"
        ]
        assert common["epochs"] == 60 and common["batch_size"] == 100
        assert common["schedule"] == {"type": "step", "step_size": 20, "gamma": 0.2}
        a = common["attack"]
        assert (a["norm"], a["eps"], a["steps"]) == ("linf", 0.03, 10)
        assert a["alpha"] == pytest.approx(2.3 * 0.03 / 10)


def test_zhang_presets_match_the_paper():
    expected = {"mnist-lenet5": (45, 8), "cifar10-wrn": (8, 2), "stl10-wrn": (4, 2)}
    for name, (eps, alpha) in expected.items():
        path = ROOT / "presets" / f"{name}.yaml"
        common = yaml.safe_load(path.read_text())["training"]["common"]
        assert common["epochs"] == 200 and common["batch_size"] == 128 and common["lr"] == 0.1
        assert common["schedule"] == {"type": "multistep", "milestones": [20, 60], "gamma": 0.5}
        assert common["attack"]["steps"] == 7
        assert common["attack"]["eps"] == pytest.approx(eps / 255, abs=1e-6)
        assert common["attack"]["alpha"] == pytest.approx(alpha / 255, abs=1e-6)


def test_conda_env_has_every_pyproject_dependency():
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((ROOT / "envs" / "advfeatures.yaml").read_text())
    names = set()
    for d in env["dependencies"]:
        for spec in d["pip"] if isinstance(d, dict) else [d]:
            names.add(re.split(r"[<>=! ]", spec, maxsplit=1)[0].lower())
    conda_name = {"torch": "pytorch"}
    for dep in deps:
        name = re.split(r"[<>=!\[ ]", dep, maxsplit=1)[0].lower()
        assert conda_name.get(name, name) in names, f"{name} missing from envs/advfeatures.yaml"
    assert "python=3.11" in env["dependencies"]


def gpu_check_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
@pytest.mark.parametrize("small", [False, True])
def test_gpu_check_toy_overlay_is_a_valid_config(tmp_path, preset, small):
    """benchmarks/gpu_check.py runs each preset with tests/tiny.yaml's budgets over it."""
    gc = gpu_check_module()
    tiny = yaml.safe_load((ROOT / "tests" / "tiny.yaml").read_text())
    over = tmp_path / "toy.yaml"
    over.write_text(yaml.safe_dump(gc.toy_overlay(tiny, tmp_path / "images", "cuda", small)))
    cfg = C.resolve(C.layers_for([preset, over])).config
    assert cfg["training"]["methods"] == C.resolve(C.layers_for([preset])).config["training"]["methods"]
    assert cfg["training"]["common"]["epochs"] == 1 and cfg["device"] == "cuda"


def gpu_asks(out: str) -> dict[str, set[int]]:
    """{rule: the gpu values its jobs ask for} from the job lines of a dry run."""
    gpu_of, rule = {}, None
    for local, plain, gpu in re.findall(r"^(?:localrule (\w+)|rule (\w+)):$|^\s+resources: .*?gpu=(\d+)", out,
                                        re.MULTILINE):
        rule = local or plain or rule
        if gpu:
            gpu_of.setdefault(rule, set()).add(int(gpu))
    return gpu_of


@pytest.mark.parametrize("gpus", [1, 0])
def test_gpu_preset_asks_what_the_machine_has(tmp_path, monkeypatch, gpus):
    """A dry run of a GPU preset (toy sizes) on a machine reporting one GPU: every GPU stage asks
    for gpu=1 of the gpu=1 the run provides, so Snakemake runs them one at a time (the real
    scheduling is tested in tests/test_gpu_scheduling.py); without a GPU, Snakemake scales the
    asks down to 0 and the jobs run side by side on the CPU."""
    gc = gpu_check_module()
    monkeypatch.setenv("ADVFEATURES_LOCAL_GPUS", str(gpus))
    tiny = yaml.safe_load((ROOT / "tests" / "tiny.yaml").read_text())
    over = tmp_path / "toy.yaml"
    over.write_text(yaml.safe_dump(gc.toy_overlay(tiny, tmp_path / "images", "cuda", False)))
    preset = ROOT / "presets" / "cifar10-wrn28.yaml"
    cmd = [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(ROOT / "Snakefile"),
           "--directory", str(tmp_path), "--configfile", str(preset), str(over)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    asks = gpu_asks(out)
    for stage in ("train", "attack", "distill", "synthesize", "estimate_mi"):
        assert asks.get(stage) == {gpus}, (stage, asks)
