"""Training health on real CIFAR-10 images: clean / PGD-20 accuracy and seconds per method.

Trains every enabled method of ``config.yaml`` deep-merged with a preset (default
``presets/cifar10-cpu.yaml``) on a prepared dataset file, one torch thread each (as the
preset's jobs run), and prints one row per method: final train loss/accuracy, clean and PGD-20
accuracy on the evaluation subset (the preset's ``training.common.eval_attack``) and the wall
time.  This is the measurement behind the preset's defaults (issue 13); it is not run by
``make bench`` because it takes minutes.

Prepare the shared subset once (imagefolder source), then run::

    python -c "from advfeatures.data import prepare_dataset as p; \
        p('imagefolder', 'data/cifar10sub.h5', root='../shared/data/cifar10-subset')"
    python benchmarks/bench_cifar_training.py data/cifar10sub.h5 [--methods pgd_linf mart]
        [--override '{"common": {"epochs": 15}}'] [--preset presets/cifar10-cpu.yaml]
        [--arch-options '{"width": 4}'] [--ib]

``--override`` is a JSON mapping deep-merged over the ``training`` section (for example the
old defaults of issue 13: no warm-up).  ``--ib`` adds the robust IB channels per sample of each
trained model (the README's split-layer widths: ``--methods standard --arch-options '{"width": 2}'``).  Health checks run as in the pipeline; a method that
fails one is reported with its error instead of numbers.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from advfeatures.data import load_dataset  # noqa: E402
from advfeatures.training import TrainConfig, train  # noqa: E402
from advfeatures.utils import AdvFeaturesError  # noqa: E402


def deep_merge(base: dict, override: dict | None) -> dict:
    out = copy.deepcopy(base)
    for k, v in (override or {}).items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def training_section(preset: Path | None, override: dict | None) -> tuple[dict, dict]:
    """(training section, arch section) of config.yaml + preset + override, as Snakemake merges."""
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    if preset:
        cfg = deep_merge(cfg, yaml.safe_load(Path(preset).read_text()))
    return deep_merge(cfg["training"], override), cfg["arch"]


def ib_channels(model, data, beta: float = 0.3, n: int = 500, seed: int = 0) -> dict:
    """Robust IB channels per sample on ``n`` clean test rows (the pipeline's subset and batch of
    100), with the paper's batch threshold and the per-sample one, and the share of samples
    whose robust part is empty."""
    from advfeatures.bottleneck import distill
    from advfeatures.data import eval_subset

    idx = eval_subset(data.y_test, n, seed)
    out = {}
    for mode in ("batch", "sample"):
        r = distill(model.eval(), data.x_test[idx], data.y_test[idx], beta=beta, iterations=200, lr=0.1,
                    threshold=mode, batch_size=100, generator=torch.Generator().manual_seed(seed))
        k = r.mask_robust.float().sum(1)
        out[f"ib_robust_per_sample_{mode}"] = round(float(k.mean()), 2)
        out[f"ib_empty_share_{mode}"] = round(float((k == 0).float().mean()), 2)
    out["ib_channels"] = int(r.mask_robust.shape[1])
    return out


def run(data_path: str, methods: list[str] | None, preset: Path | None, override: dict | None,
        seed: int = 0, keep: Path | None = None, arch_options: dict | None = None,
        ib: bool = False) -> list[dict]:
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    training, arch = training_section(preset, override)
    data = load_dataset(data_path)
    enabled = [m for m, v in training["methods"].items() if v is not False]
    rows = []
    for method in methods or enabled:
        d = deep_merge(training["common"], training["methods"].get(method) or {})
        options = {**((arch.get("options") or {}).get(arch["name"]) or {}), **(arch_options or {})}
        d.update(
            method=method, arch=arch["name"], arch_options=dict(options), checkpoint_epochs=[],
            seed=seed,
        )
        cfg = TrainConfig.from_dict(d)
        t0 = time.perf_counter()
        row = {"method": method}
        with tempfile.TemporaryDirectory() as tmp:
            try:
                hist = train(
                    cfg, data, model_out=f"{tmp}/model.pt", metrics_out=f"{tmp}/metrics.csv",
                    state_dir=f"{tmp}/state",
                )
                last = hist[-1]
                row |= {k: last[k] for k in ("train_loss", "train_acc", "test_clean_acc", "test_pgd_acc")}
                state = torch.load(f"{tmp}/model.pt", weights_only=True)["model"]
                row["nonfinite_tensors_in_model_pt"] = sum(
                    1 for v in state.values() if v.is_floating_point() and not torch.isfinite(v).all()
                )
                if ib:
                    from advfeatures.models.checkpoint import model_from_checkpoint

                    row |= ib_channels(model_from_checkpoint(f"{tmp}/model.pt"), data, seed=seed)
                if keep:
                    Path(keep).mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(f"{tmp}/model.pt", Path(keep) / f"{method}.pt")
            except AdvFeaturesError as exc:
                row["error"] = str(exc)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", help="prepared dataset .h5 (advfeatures.data.prepare_dataset)")
    ap.add_argument("--methods", nargs="*", default=None)
    ap.add_argument("--preset", type=Path, default=ROOT / "presets" / "cifar10-cpu.yaml")
    ap.add_argument("--no-preset", action="store_true", help="config.yaml only (plus --override)")
    ap.add_argument("--override", type=json.loads, default=None, help="JSON merged over `training`")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, default=None, help="copy each model.pt to KEEP/METHOD.pt")
    ap.add_argument("--arch-options", type=json.loads, default=None,
                    help='JSON options of the preset\'s architecture, e.g. \'{"width": 4}\'')
    ap.add_argument("--ib", action="store_true",
                    help="also count robust IB channels per sample (beta 0.3, 500 clean test rows)")
    a = ap.parse_args(argv)
    run(a.data, a.methods, None if a.no_preset else a.preset, a.override, a.seed, a.keep, a.arch_options, a.ib)


if __name__ == "__main__":
    main()
