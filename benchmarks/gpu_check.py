"""GPU readiness in one command: ``make gpu-check`` (``DEVICE=cuda``) or ``make gpu-check DEVICE=cpu``.

On one device, what a first GPU user of the presets would hit:

1. ``tiny``: the tiny workflow (tests/tiny.yaml, every stage) with ``device: DEVICE``;
2. ``presets``: each preset's whole DAG at toy size (its architecture, methods and stages;
   1 epoch, a few hundred CIFAR-10 images as an imagefolder copied into the run folder, the
   tiny attack and estimator budgets) with ``device: DEVICE``;
3. every ``model.pt`` and every floating-point HDF5 array those runs wrote is finite;
4. the test suite's device tests (attacks and evaluations return tensors on the model's device,
   seeded draws on the generator's device) run on DEVICE;
5. CPU and DEVICE agree on the same tiny jobs within the tolerances in ``TOL``;
6. throughput: images/s of the PGD-AT training epoch and of PGD-20 evaluation for VGG-16 and
   WRN-28-10 at batch 128 and 256 (``--small``: narrow models, batch 16/32, for a CPU smoke run).

It writes ``benchmarks/gpu.md`` (``--out``) and exits 1 when a check fails.  Snakemake, pytest and
the other requirements missing on the GPU box are installed from ``wheels/`` (``make wheels`` on a
machine with network: ``pip download`` of the package's requirements except torch), offline.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUBSET = Path(os.environ.get("ADVFEATURES_CIFAR10_SUBSET", ROOT.parent / "shared" / "data" / "cifar10-subset"))
#: CPU vs DEVICE: max |logit difference| relative to the largest logit, share of equal clean
#: predictions, |PGD accuracy difference| (points; same CPU-drawn random start), and for one
#: training epoch from the same seed |test accuracy difference| (points; GPU kernels are not
#: bitwise deterministic, so the runs drift apart a little)
TOL = {"logits_rel": 1e-3, "pred_agree": 0.99, "pgd_points": 3.0, "train_points": 10.0}
#: module -> distribution the check and the stages import (torch and torchvision must be there)
NEEDED = {"snakemake": "snakemake", "pytest": "pytest", "h5py": "h5py", "pandas": "pandas", "scipy": "scipy",
          "statsmodels": "statsmodels", "matplotlib": "matplotlib", "yaml": "pyyaml", "jsonschema": "jsonschema",
          "mlxtend": "mlxtend", "sklearn": "scikit-learn", "tqdm": "tqdm", "pyautoattack": "pyautoattack",
          "torchattacks": "torchattacks", "pydantic": "pydantic", "tabulate": "tabulate"}


def ensure_requirements(wheels: Path = ROOT / "wheels") -> list[str]:
    """Install the missing distributions from ``wheels/`` (offline; pip keeps the installed
    packages that satisfy them, torch included); returns what was missing."""
    missing = [dist for mod, dist in NEEDED.items() if importlib.util.find_spec(mod) is None]
    if not missing:
        return []
    if not any(wheels.glob("*.whl")):
        sys.exit(f"gpu-check: {', '.join(missing)} not installed and {wheels} holds no wheels; on a machine "
                 "with network run `make wheels` and copy wheels/ along (or pip install them)")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--find-links", str(wheels),
                    *missing], check=True)
    return missing


def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def toy_overlay(tiny: dict, data_root: Path, device: str, small: bool) -> dict:
    """tests/tiny.yaml without its method choices (the preset's stay), 1 epoch, the toy images."""
    over = copy.deepcopy(tiny)
    over["training"].pop("methods", None)
    over.get("synthesis", {}).pop("robust_method", None)
    # The toy run checks device code paths, not learning.  A few optimiser steps at a preset's
    # LR 0.1 diverge (MART on VGG-16 went non-finite at batch 3 and the health check stopped the
    # job, as it should), so the overlay lowers the LR and clips gradients (that path runs too).
    over["training"]["common"].update({"epochs": 1, "checkpoint_epochs": [1], "eps_warmup_epochs": 0,
                                       "lr_warmup_epochs": 0, "lr": 0.01, "grad_clip_norm": 1.0,
                                       "schedule": {"type": "multistep", "milestones": [1], "gamma": 0.1}})
    over["synthesis"].setdefault("train", {}).update({"epochs": 1, "checkpoint_epochs": []})
    over["dataset"] = {"name": "imagefolder", "root": str(data_root), "download": False,
                       "subset_train": None, "subset_test": None}
    over["device"] = device
    if small:  # a CPU smoke run: narrow wide networks (the code paths stay the same)
        over["arch"] = {"options": {"wrn": {"depth": 10, "widen_factor": 2}}}
    return over


def toy_images(dest: Path, n_train: int, n_test: int, source: Path = SUBSET) -> str:
    """``n_train``/``n_test`` images per class copied from the shared CIFAR-10 subset, or made
    (class-dependent colour blocks plus noise) when the subset is not on this machine."""
    import numpy as np

    if dest.exists():
        shutil.rmtree(dest)
    if (source / "train").is_dir():
        for split, n in (("train", n_train), ("test", n_test)):
            for cls in sorted(p for p in (source / split).iterdir() if p.is_dir()):
                (dest / split / cls.name).mkdir(parents=True)
                for f in sorted(cls.iterdir())[:n]:
                    shutil.copyfile(f, dest / split / cls.name / f.name)
        return f"{n_train}/{n_test} images per class from {source}"
    from PIL import Image

    g = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        for c in range(10):
            (dest / split / f"c{c}").mkdir(parents=True)
            for i in range(n):
                img = g.uniform(0, 80, (32, 32, 3))
                img[(c // 5) * 16:(c // 5) * 16 + 16, (c % 5) * 6:(c % 5) * 6 + 6, c % 3] += 170
                Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(dest / split / f"c{c}" / f"{i}.png")
    return f"{n_train}/{n_test} made images per class ({source} not found)"


def snakemake(workdir: Path, configs: list[Path], cores: int, gpus: int, log: Path) -> float:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    if gpus:  # the toy jobs share the device: each may take one of its `gpus` slots
        env["ADVFEATURES_JOBS_PER_GPU"] = str(gpus)
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--cores", str(cores), "--resources", f"gpu={gpus}", "--configfile", *map(str, configs)]
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    if proc.returncode:
        raise RuntimeError(f"snakemake failed in {workdir} (rc {proc.returncode}); see {log}:\n"
                           + "\n".join(log.read_text().splitlines()[-25:]))
    return time.perf_counter() - t0


def stage_seconds(workdir: Path) -> dict[str, float]:
    """Job seconds per rule from Snakemake's benchmark files."""
    import pandas as pd

    out: dict[str, float] = {}
    for tsv in (workdir / "results").glob("*/benchmarks/*/*.tsv"):  # results/<run>/benchmarks
        out[tsv.parent.name] = out.get(tsv.parent.name, 0.0) + float(pd.read_csv(tsv, sep="\t")["s"].iloc[-1])
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def check_finite(workdir: Path) -> int:
    """Every model.pt tensor and floating-point HDF5 array under ``workdir`` is finite."""
    import h5py
    import numpy as np

    from advfeatures.models.checkpoint import load_checkpoint, nonfinite_tensors

    n, bad = 0, []
    for pt in workdir.rglob("model.pt"):
        if bad_names := nonfinite_tensors(load_checkpoint(pt)["model"]):
            bad.append(f"{pt}: {bad_names[:4]}")
        n += 1
    for h5 in workdir.rglob("*.h5"):
        with h5py.File(h5, "r") as f:
            names: list[str] = []
            f.visit(names.append)
            bad += [f"{h5}:{k}" for k in names
                    if isinstance(f[k], h5py.Dataset) and f[k].dtype.kind == "f" and not np.isfinite(f[k][()]).all()]
        n += 1
    if bad:
        raise RuntimeError("non-finite values in " + "; ".join(bad[:10]))
    return n


def agreement(workdir: Path, device: str) -> dict:
    """The tiny run's standard model and one training epoch, on CPU and on ``device``."""
    import torch

    from advfeatures.attacks.evaluate import predict
    from advfeatures.attacks.pgd import pgd
    from advfeatures.data import load_dataset
    from advfeatures.models.checkpoint import model_from_checkpoint
    from advfeatures.training import TrainConfig, train
    from advfeatures.utils import make_generator

    data = load_dataset(next((workdir / "data").glob("mnist5k_*.h5")))  # data keyed by its settings
    x, y = data.x_test[:200], data.y_test[:200]
    path = next((workdir / "results").glob("*/rep0/mnist5k/lenet5/standard/model.pt"))
    out = {}
    preds, accs, logits = {}, {}, {}
    for dev in ("cpu", device):
        m = model_from_checkpoint(path).to(dev).eval()
        with torch.no_grad():
            logits[dev] = m(x.to(dev)).float().cpu()
        preds[dev] = predict(m, x).cpu()
        x_adv = pgd(m, x.to(dev), y.to(dev), eps=0.1765, alpha=0.0221, steps=20, generator=make_generator(0))
        accs[dev] = 100 * float((predict(m, x_adv).cpu() == y).float().mean())
    out["logits_rel"] = float((logits["cpu"] - logits[device]).abs().max() / logits["cpu"].abs().max())
    out["pred_agree"] = float((preds["cpu"] == preds[device]).float().mean())
    out["pgd_points"] = abs(accs["cpu"] - accs[device])
    trained = {}
    for dev in ("cpu", device):
        cfg = TrainConfig.from_dict({"method": "pgd_linf", "epochs": 1, "batch_size": 50, "lr": 0.05, "seed": 0,
                                     "attack": {"norm": "linf", "eps": 0.1765, "alpha": 0.08, "steps": 2},
                                     "eval_subset": 200, "device": dev, "health": {"allow_degenerate": True},
                                     "eval_attack": {"norm": "linf", "eps": 0.1765, "alpha": 0.05, "steps": 3}})
        with tempfile.TemporaryDirectory() as tmp:
            small = type(data)(data.name, data.x_train[:1000], data.y_train[:1000], x, y, data.classes,
                               data.mean, data.std)
            rows = train(cfg, small, model_out=f"{tmp}/m.pt", metrics_out=f"{tmp}/m.csv", state_dir=f"{tmp}/s")
        trained[dev] = 100 * rows[-1]["test_clean_acc"]
    out["train_points"] = abs(trained["cpu"] - trained[device])
    out["ok"] = (out["logits_rel"] <= TOL["logits_rel"] and out["pred_agree"] >= TOL["pred_agree"]
                 and out["pgd_points"] <= TOL["pgd_points"] and out["train_points"] <= TOL["train_points"])
    out["pgd_acc"], out["train_acc"] = accs, trained
    return out


def throughput(device: str, small: bool) -> list[dict]:
    """Images/s of a PGD-AT epoch (PGD-7, SGD) and PGD-20 evaluation, per architecture and batch."""
    import torch

    from advfeatures.attacks.evaluate import predict
    from advfeatures.attacks.pgd import pgd
    from advfeatures.data import Dataset
    from advfeatures.models import build_model
    from advfeatures.training import TrainConfig, train
    from advfeatures.utils import make_generator

    archs = {"vgg16": {}, "wrn": {"depth": 10, "widen_factor": 2} if small else {"depth": 28, "widen_factor": 10}}
    batches = (16, 32) if small else (128, 256)
    rows = []
    for arch, opts in archs.items():
        for bs in batches:
            n = 2 * bs
            g = torch.Generator().manual_seed(0)
            x, y = torch.rand(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)
            data = Dataset("bench", x, y, x[:bs], y[:bs], [str(i) for i in range(10)], [0.5] * 3, [0.25] * 3)
            cfg = TrainConfig.from_dict({"method": "pgd_linf", "arch": arch, "arch_options": opts, "epochs": 1,
                                         "batch_size": bs, "lr": 0.01, "seed": 0, "device": device,
                                         "attack": {"norm": "linf", "eps": 8 / 255, "alpha": 2 / 255, "steps": 7},
                                         "eval_subset": bs,
                                         "eval_attack": {"norm": "linf", "eps": 8 / 255, "alpha": 2 / 255, "steps": 1},
                                         "health": {"allow_degenerate": True}})
            with tempfile.TemporaryDirectory() as tmp:
                r = train(cfg, data, model_out=f"{tmp}/m.pt", metrics_out=f"{tmp}/m.csv", state_dir=f"{tmp}/s")
            model = build_model(arch, **data.model_kwargs(), options=opts).to(device).eval()
            xd, yd = x[:bs].to(device), y[:bs].to(device)
            pgd(model, xd, yd, eps=8 / 255, alpha=2 / 255, steps=2, generator=make_generator(0))  # warm-up
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            x_adv = pgd(model, xd, yd, eps=8 / 255, alpha=0.8 / 255, steps=20, generator=make_generator(0))
            predict(model, x_adv)
            if device == "cuda":
                torch.cuda.synchronize()
            rows.append({"arch": arch, "options": opts, "batch": bs,
                         "at_epoch_img_s": round(n / r[-1]["epoch_seconds"], 1),
                         "pgd20_eval_img_s": round(bs / (time.perf_counter() - t0), 1)})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--presets", default="all", help="comma-separated preset names (file stems), all, or none")
    ap.add_argument("--small", action="store_true", help="CPU smoke sizes (narrow WRN, small batches)")
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--gpu-jobs", type=int, default=4, help="toy jobs sharing the device at once")
    ap.add_argument("--parallel", type=int, default=None,
                    help="preset DAGs run side by side (default: 4 on cuda, 1 on cpu)")
    ap.add_argument("--images", type=int, default=30, help="training images per class (test: a third)")
    ap.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "gpu.md")
    args = ap.parse_args(argv)
    if args.parallel is None:
        args.parallel = 4 if args.device == "cuda" else 1
    installed = ensure_requirements()
    import torch
    import yaml

    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu-check: --device cuda but torch sees no CUDA device; use DEVICE=cpu for the CPU run")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="advfeatures-gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    tiny = yaml.safe_load((ROOT / "tests" / "tiny.yaml").read_text())
    gpus = args.gpu_jobs if args.device == "cuda" else 0
    results, failures, notes = {}, [], {"data": ""}

    def write_report():
        """The report of the steps run so far (rewritten after each one)."""
        lines = ["# GPU readiness check", "", f"Written by `benchmarks/gpu_check.py` on {time.strftime('%Y-%m-%d %H:%M')}.", "",
                 "| | |", "|---|---|",
                 f"| device | {torch.cuda.get_device_name(0) if args.device == 'cuda' else 'cpu'} |",
                 f"| torch | {torch.__version__} (CUDA {torch.version.cuda}) |",
                 f"| sizes | {'small (CPU smoke)' if args.small else 'full'}; toy data: {notes['data'] or 'none'} |",
                 f"| installed from wheels/ | {', '.join(installed) or 'nothing'} |",
                 f"| checks failed | {', '.join(failures) or 'none'} |", ""]
        for name, res in results.items():
            lines += [f"## {name}", "", "```json", json.dumps(res, indent=1, default=str), "```", ""]
        args.out.write_text("\n".join(lines))

    def step(name, fn):
        t0 = time.perf_counter()
        try:
            results[name] = fn()
        except Exception as exc:  # noqa: BLE001 - record, go on with the other checks
            results[name] = {"error": str(exc)[-3000:]}
            failures.append(name)
        print(f"gpu-check: {name}: {'FAILED' if name in failures else 'ok'} ({time.perf_counter() - t0:.0f} s)",
              flush=True)
        write_report()

    def run_tiny():
        wd = work / "tiny"
        cfg = work / "tiny_device.yaml"
        cfg.write_text(yaml.safe_dump({"device": args.device}))
        wall = snakemake(wd, [ROOT / "tests" / "tiny.yaml", cfg], args.cores, gpus, work / "tiny.log")
        return {"wall_s": round(wall, 1), "finite_files": check_finite(wd), "stages_s": stage_seconds(wd)}

    step("tiny workflow", run_tiny)
    names = sorted(p.stem for p in (ROOT / "presets").glob("*.yaml")) if args.presets == "all" else \
        [p for p in args.presets.split(",") if p and p != "none"]
    notes["data"] = toy_images(work / "toy_images", args.images, max(args.images // 3, 2)) if names else ""
    # presets side by side: each toy DAG is mostly job start-up, which a many-core GPU box
    # overlaps; each run gets its share of the cores and of the concurrent device jobs
    par = max(1, min(args.parallel, len(names) or 1))
    cores_each, gpus_each = max(1, args.cores // par), (max(1, gpus // par) if gpus else 0)

    def run_preset(name):
        wd = work / "presets" / name
        wd.mkdir(parents=True, exist_ok=True)
        over = wd / "toy.yaml"
        over.write_text(yaml.safe_dump(toy_overlay(tiny, work / "toy_images", args.device, args.small)))
        wall = snakemake(wd, [ROOT / "presets" / f"{name}.yaml", over], cores_each, gpus_each, wd / "snakemake.log")
        return {"wall_s": round(wall, 1), "finite_files": check_finite(wd), "stages_s": stage_seconds(wd)}

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(par) as pool:
        list(pool.map(lambda n: step(f"preset {n}", lambda: run_preset(n)), names))
    results_order = ["tiny workflow"] + [f"preset {n}" for n in names]
    results.update({k: results.pop(k) for k in results_order if k in results})

    def device_tests():
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_attacks.py",
                               "tests/test_oracles_synthesis.py", "-k", "device or cuda"], cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])})
        if proc.returncode:
            raise RuntimeError(proc.stdout[-3000:])
        return {"pytest": proc.stdout.strip().splitlines()[-1]}

    step("device tests", device_tests)
    if "tiny workflow" not in failures:
        def agree():
            a = agreement(work / "tiny", args.device)
            if not a["ok"]:
                raise RuntimeError(f"CPU and {args.device} disagree beyond {TOL}: {a}")
            return a

        step("CPU vs device", agree)
    step("throughput", lambda: throughput(args.device, args.small))

    write_report()
    print(f"gpu-check: wrote {args.out}; work folder {work}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
