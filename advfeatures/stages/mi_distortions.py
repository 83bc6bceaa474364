"""Stage mi_distortions (Zhang et al.): accuracy, loss and MI of the final model under
saturation and patch shuffling, applied after the attack to clean and adversarial inputs."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from advfeatures.data import load_dataset
from advfeatures.distortions import distort, patch_permutations
from advfeatures.models.checkpoint import model_from_checkpoint
from advfeatures.mutual_info import MIConfig, layer_mi_rows, mi_inputs, write_rows
from advfeatures.stages.job import Job, main
from advfeatures.utils import derive_seed, make_generator

log = logging.getLogger("advfeatures")


def distortion_mi(model, data, p: Mapping, *, seed: int, method: str, device="cpu",
                  progress: Callable[[str], None] | None = None) -> list[dict]:
    """Rows of one ``mi_distortions`` job: every distortion level applied after the attack to the
    clean and adversarial inputs of the final model; accuracy, loss and MI per level and layer.
    Identity levels (saturation 2, shuffle 0/1) reuse one undistorted evaluation."""

    cfg = MIConfig.from_params(p)
    x, x_adv, y = mi_inputs(model, data, p, seed=seed, tags=(method, "final"), device=device)
    base: list[dict] | None = None
    rows: list[dict] = []
    levels = p["distortions"]
    for kind in ("saturation", "shuffle"):
        for level in levels[kind]:
            extra = {"method": method, "distortion": kind, "level": level}
            identity = (kind == "saturation" and level == 2) or (kind == "shuffle" and level <= 1)
            if identity and base is not None:
                rows += [{**r, **extra} for r in base]
                continue
            perm = None
            if kind == "shuffle" and not identity:
                # the same permutation for the clean and the adversarial version of an image
                gen = make_generator(derive_seed(seed, "mutual_info", "shuffle", level))
                perm = patch_permutations(len(x), int(level), gen)
            inputs = {"clean": distort(x, kind, level, perm), "adversarial": distort(x_adv, kind, level, perm)}
            new = layer_mi_rows(model, inputs, y, cfg, extra=extra,
                                progress=(lambda s, k=kind, lv=level: progress(f"{k}={lv} {s}")) if progress else None)
            if identity:
                base = new
            rows += new
    return rows


def mi_distortions(job: Job) -> None:
    device, method = job.device(), job.wildcards["method"]
    model = model_from_checkpoint(job.input.model, map_location=device)
    data = load_dataset(job.input.data)
    rows = distortion_mi(
        model, data, job.params["mi"], seed=job.seed, method=method, device=device,
        progress=lambda s: log.info("%s: %s", method, s),
    )
    write_rows(rows, job.output[0])
    log.info("wrote %s (%d rows)", job.output[0], len(rows))


STAGES = {"mi_distortions": mi_distortions}

if __name__ == "__main__":
    main(STAGES)
