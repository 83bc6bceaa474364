"""How many GPUs a local Snakemake run may schedule jobs on (the ``gpu`` resource).

Read without importing torch (the Snakefile is parsed on every call): ``ADVFEATURES_LOCAL_GPUS``
when set, else the devices ``CUDA_VISIBLE_DEVICES`` exposes, else the lines of ``nvidia-smi -L``;
0 when none of them shows a GPU.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping

ENV = "ADVFEATURES_LOCAL_GPUS"


def visible_devices(value: str) -> int:
    """Devices a CUDA_VISIBLE_DEVICES value exposes: CUDA stops at the first invalid entry
    (``-1`` hides every GPU, ``""`` too)."""
    n = 0
    for entry in value.split(","):
        entry = entry.strip()
        if not entry or entry.startswith("-"):
            break
        n += 1
    return n


def count_local_gpus(env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    if env.get(ENV, "").strip():
        value = env[ENV].strip()
        if not value.isdigit():
            raise ValueError(f"{ENV}={value!r}: expected a whole number of GPUs (0, 1, 2, ...)")
        return int(value)
    if "CUDA_VISIBLE_DEVICES" in env:
        return visible_devices(env["CUDA_VISIBLE_DEVICES"])
    smi = shutil.which("nvidia-smi", path=env.get("PATH"))
    if smi is None:
        return 0
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    if out.returncode != 0:
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))
