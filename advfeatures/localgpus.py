"""The GPUs of a local Snakemake run: how many jobs may use one at once, and which one each uses.

How many (the ``gpu`` resource), read without importing torch (the Snakefile is parsed on every
call): ``ADVFEATURES_LOCAL_GPUS`` when set, else the devices ``CUDA_VISIBLE_DEVICES`` exposes,
else the lines of ``nvidia-smi -L``; 0 when none of them shows a GPU.

Which one: Snakemake counts GPU jobs against that resource but does not say which device a job
may use, so a GPU job of a local run claims one with :func:`claim_for_job`: the first device
whose lock file it can take (``flock``, released when the job's process ends, even when it is
killed), exposed alone through ``CUDA_VISIBLE_DEVICES`` before torch starts CUDA.  Two GPU jobs
therefore never share a device, unless ``ADVFEATURES_JOBS_PER_GPU=K`` gives each device K slots
(small models that leave a large GPU mostly idle: the ``gpu`` resource is then devices x K).  On a cluster the scheduler places the jobs; nothing is claimed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, MutableMapping
from pathlib import Path

ENV = "ADVFEATURES_LOCAL_GPUS"
#: jobs that may share one device (default 1)
PER_GPU_ENV = "ADVFEATURES_JOBS_PER_GPU"
#: set by the workflow for local runs (rules/common.smk): GPU jobs claim a device
ASSIGN_ENV = "ADVFEATURES_ASSIGN_GPUS"
#: where the per-device lock files live (default: a folder per user in the temporary directory)
LOCK_ENV = "ADVFEATURES_GPU_LOCK_DIR"
#: lock files this process holds (open descriptors; the OS releases them when it exits)
_HELD: list[int] = []


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


def jobs_per_gpu(env: Mapping[str, str] | None = None) -> int:
    """How many GPU jobs may share one device: ``ADVFEATURES_JOBS_PER_GPU`` (default 1)."""
    env = os.environ if env is None else env
    value = env.get(PER_GPU_ENV, "").strip() or "1"
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{PER_GPU_ENV}={value!r}: expected a whole number of jobs per GPU (1, 2, ...)")
    return int(value)


def gpu_slots(env: Mapping[str, str] | None = None) -> int:
    """The ``gpu`` resource of a local run: devices x jobs per device."""
    return count_local_gpus(env) * jobs_per_gpu(env)


def device_ids(env: Mapping[str, str] | None = None) -> list[str]:
    """The device ids GPU jobs may use: the entries of ``CUDA_VISIBLE_DEVICES`` (up to the first
    invalid one), else ``0 .. n-1`` for the :func:`count_local_gpus` devices."""
    env = os.environ if env is None else env
    if "CUDA_VISIBLE_DEVICES" in env and not env.get(ENV, "").strip():
        entries = [e.strip() for e in env["CUDA_VISIBLE_DEVICES"].split(",")]
        return entries[: visible_devices(env["CUDA_VISIBLE_DEVICES"])]
    return [str(i) for i in range(count_local_gpus(env))]


def lock_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get(LOCK_ENV):
        return Path(env[LOCK_ENV])
    return Path(tempfile.gettempdir()) / f"advfeatures-gpu-locks-{os.getuid()}"


def claim_gpu(env: MutableMapping[str, str] | None = None, timeout: float = 600.0,
              poll: float = 0.5) -> str | None:
    """Take the first free device of :func:`device_ids` for this process and expose only it
    (one of its :func:`jobs_per_gpu` slots; the slots of every device are tried in turn, so jobs
    spread over the devices before they share one).

    Returns its id (None without GPUs).  Waits up to ``timeout`` seconds when every device is
    taken (another run on the same machine), then raises ``RuntimeError``.
    """
    import fcntl

    env = os.environ if env is None else env
    ids = device_ids(env)
    if not ids:
        return None
    folder = lock_dir(env)
    folder.mkdir(parents=True, exist_ok=True)
    slots = [(dev, k) for k in range(jobs_per_gpu(env)) for dev in ids]
    deadline = time.monotonic() + timeout
    while True:
        for dev, k in slots:
            fd = os.open(folder / f"gpu-{dev}-{k}.lock", os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            _HELD.append(fd)
            env["CUDA_VISIBLE_DEVICES"] = dev
            return dev
        if time.monotonic() > deadline:
            raise RuntimeError(f"every GPU ({', '.join(ids)}) stayed taken for {timeout:.0f} s (lock files in "
                               f"{folder}); another run uses them: wait for it or lower --resources gpu")
        time.sleep(poll)


def claim_for_job(gpus: int, env: MutableMapping[str, str] | None = None) -> str | None:
    """In a local Snakemake job that asks for a GPU (``gpus`` >= 1): claim one device for it.

    Does nothing outside a local run of the workflow (``ADVFEATURES_ASSIGN_GPUS`` unset) or
    under SLURM, whose allocation already names the job's device.
    """
    env = os.environ if env is None else env
    if int(gpus or 0) < 1 or env.get(ASSIGN_ENV) != "1" or "SLURM_JOB_ID" in env:
        return None
    dev = claim_gpu(env)
    if dev is not None:
        print(f"advfeatures: this GPU job uses device {dev} (CUDA_VISIBLE_DEVICES={dev})", file=sys.stderr)
    return dev
