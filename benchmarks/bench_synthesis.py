"""Synthesis throughput: image-steps per second of the d_r representation inversion.

Ours (advfeatures.synthesis.invert_representation: frozen model, gradients w.r.t. the input
only) against a reference loop written the way the released notebook does it (``loss.backward()``
with the model's parameters still requiring gradients, so every step also computes weight
gradients).  Same model, batch, start points and steps; the results must agree.
"""

from __future__ import annotations

import time

import torch

from advfeatures.models import build_model
from advfeatures.synthesis import invert_representation

BATCH, STEPS, STEP_SIZE = 500, 20, 0.5


def reference_inversion(model, target_rep, start, steps, step_size):
    x = start.detach().clone()
    model.eval()
    for _ in range(steps):
        x.requires_grad_(True)
        rep = model.representation(x)
        loss = ((rep - target_rep).flatten(1).norm(dim=1) / target_rep.flatten(1).norm(dim=1)).sum()
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            g = x.grad
            g = g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
            x = (x - step_size * g).clamp(0, 1)
    return x.detach()


def run(repeats: int = 3) -> dict:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_model("lenet5", in_channels=1, num_classes=10, image_size=28, mean=[0.13], std=[0.31]).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(BATCH, 1, 28, 28, generator=g)
    start = torch.rand(BATCH, 1, 28, 28, generator=g)
    with torch.no_grad():
        target = model.representation(x)

    def timed(fn):
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = fn()
            best = min(best, time.perf_counter() - t0)
        return best, out

    t_ours, (x_ours, _) = timed(lambda: invert_representation(model, target, start, steps=STEPS, step_size=STEP_SIZE))
    t_ref, x_ref = timed(lambda: reference_inversion(model, target, start, STEPS, STEP_SIZE))
    work = BATCH * STEPS
    return {
        "benchmark": f"d_r inversion (LeNet-5, batch {BATCH}, {STEPS} steps, 1 thread)",
        "ours_image_steps_per_s": round(work / t_ours),
        "reference_image_steps_per_s": round(work / t_ref),
        "speedup": round(t_ref / t_ours, 2),
        "max_abs_diff_of_results": float((x_ours - x_ref).abs().max()),
    }


if __name__ == "__main__":
    for k, v in run().items():
        print(f"{k}: {v}")
