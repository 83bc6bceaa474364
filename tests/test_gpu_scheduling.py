"""Local GPU scheduling: `gpu` is a global resource equal to the machine's GPU count and each
GPU job claims its own device (advfeatures.localgpus), so a local run never puts two GPU jobs on
one device; `prepare_data` (the download) runs where snakemake runs."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import time

import pytest
from conftest import REP0, ROOT, clone_run

from advfeatures import localgpus
from advfeatures.localgpus import ENV, count_local_gpus, visible_devices


@pytest.mark.parametrize("value, n", [("0", 1), ("0,1", 2), ("", 0), ("-1", 0), ("1,-1,2", 1),
                                      ("GPU-8a1b,GPU-77c0", 2)])
def test_cuda_visible_devices_counts_until_the_first_invalid_entry(value, n):
    assert visible_devices(value) == n


def fake_smi(tmp_path, lines: list[str], rc: int = 0) -> str:
    smi = tmp_path / "nvidia-smi"
    body = "".join(f"echo '{ln}'\n" for ln in lines)
    smi.write_text(f"#!/bin/sh\n{body}exit {rc}\n")
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    return str(tmp_path)


def test_count_prefers_override_then_visible_devices_then_nvidia_smi(tmp_path):
    path = fake_smi(tmp_path, ["GPU 0: NVIDIA H200 (UUID: GPU-1)", "GPU 1: NVIDIA H200 (UUID: GPU-2)",
                               "  MIG 1g.18gb Device 0: (UUID: MIG-3)"])
    assert count_local_gpus({"PATH": path}) == 2
    assert count_local_gpus({"PATH": path, "CUDA_VISIBLE_DEVICES": "1"}) == 1
    assert count_local_gpus({"PATH": path, "CUDA_VISIBLE_DEVICES": "1", ENV: "3"}) == 3
    assert count_local_gpus({"PATH": str(tmp_path / "nowhere")}) == 0
    broken = tmp_path / "broken"
    broken.mkdir()
    assert count_local_gpus({"PATH": fake_smi(broken, ["GPU 0: x"], rc=9)}) == 0  # driver not loaded
    with pytest.raises(ValueError, match=ENV):
        count_local_gpus({ENV: "two"})


CLAIM = """
import sys, time
from advfeatures import localgpus
dev = localgpus.claim_for_job(1)
print(dev, flush=True)
time.sleep(float(sys.argv[1]))
"""


def claimers(tmp_path, n: int, hold: float, **env) -> list[subprocess.Popen]:
    """``n`` processes that each claim a GPU as a job does, print it and hold it ``hold`` s."""
    e = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID")}
    e.update({"PYTHONPATH": str(ROOT), localgpus.ASSIGN_ENV: "1", localgpus.LOCK_ENV: str(tmp_path / "locks"), **env})
    return [subprocess.Popen([sys.executable, "-c", CLAIM, str(hold)], env=e, stdout=subprocess.PIPE, text=True)
            for _ in range(n)]


def test_two_gpu_jobs_on_a_faked_two_gpu_machine_get_different_devices(tmp_path):
    procs = claimers(tmp_path, 2, 2.0, **{ENV: "2"})
    devices = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert sorted(devices) == ["0", "1"]


def test_a_third_gpu_job_waits_for_a_free_device(tmp_path):
    first = claimers(tmp_path, 2, 3.0, **{ENV: "2"})
    time.sleep(1.0)
    start = time.monotonic()
    third = claimers(tmp_path, 1, 0.0, **{ENV: "2"})[0]
    dev = third.communicate(timeout=60)[0].strip()
    assert dev in ("0", "1") and time.monotonic() - start > 1.0  # it got one only when a job ended
    for p in first:
        p.communicate(timeout=60)


def test_jobs_per_gpu_lets_k_jobs_share_a_device_and_the_next_one_waits(tmp_path):
    env = {ENV: "1", localgpus.PER_GPU_ENV: "2"}
    assert localgpus.gpu_slots(env) == 2
    first = claimers(tmp_path, 2, 3.0, **env)
    time.sleep(1.0)
    start = time.monotonic()
    third = claimers(tmp_path, 1, 0.0, **env)[0]
    assert third.communicate(timeout=60)[0].strip() == "0"
    assert time.monotonic() - start > 1.0  # both slots of device 0 were taken: it waited
    assert [p.communicate(timeout=60)[0].strip() for p in first] == ["0", "0"]


def test_jobs_per_gpu_spreads_jobs_over_the_devices_first(tmp_path):
    procs = claimers(tmp_path, 2, 1.0, **{ENV: "2", localgpus.PER_GPU_ENV: "3"})
    assert sorted(p.communicate(timeout=60)[0].strip() for p in procs) == ["0", "1"]


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_jobs_per_gpu_rejects_a_value_that_is_not_a_positive_count(value):
    with pytest.raises(ValueError, match=f"{localgpus.PER_GPU_ENV}='{value}'"):
        localgpus.gpu_slots({ENV: "1", localgpus.PER_GPU_ENV: value})


def test_claims_map_onto_the_visible_devices(tmp_path):
    procs = claimers(tmp_path, 2, 1.0, CUDA_VISIBLE_DEVICES="2,5")
    assert sorted(p.communicate(timeout=60)[0].strip() for p in procs) == ["2", "5"]


def test_no_claim_outside_a_local_gpu_job(tmp_path):
    env = {ENV: "2", localgpus.LOCK_ENV: str(tmp_path)}
    assert localgpus.claim_for_job(0, dict(env, **{localgpus.ASSIGN_ENV: "1"})) is None  # CPU job
    assert localgpus.claim_for_job(1, dict(env)) is None  # not a local workflow run
    assert localgpus.claim_for_job(1, dict(env, SLURM_JOB_ID="7", **{localgpus.ASSIGN_ENV: "1"})) is None
    assert localgpus.claim_for_job(1, {ENV: "0", localgpus.ASSIGN_ENV: "1"}) is None  # no GPU


LOCALRULES = """
import sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, StorageSettings
with SnakemakeApi(OutputSettings()) as api:
    w = api.workflow(resource_settings=ResourceSettings(cores=1), config_settings=ConfigSettings(),
                     storage_settings=StorageSettings(), snakefile=Path(sys.argv[1]), workdir=Path(sys.argv[2]))
    print(" ".join(sorted(w._workflow._localrules)))
"""


def test_prepare_data_is_a_local_rule(tmp_path):
    """On a cluster the download runs where snakemake runs (compute nodes often have no network)."""
    proc = subprocess.run([sys.executable, "-c", LOCALRULES, str(ROOT / "Snakefile"), str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "prepare_data" in proc.stdout.split()


JOB_START = re.compile(r"^(?:local)?rule (\w+):$")
JOB_ID = re.compile(r"^\s+jobid: (\d+)$")
JOB_END = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$")


def max_concurrent(log: str, rule: str) -> int:
    """Most jobs of ``rule`` running at once, from the order of Snakemake's start/finish lines."""
    running, most, pending_rule = set(), 0, None
    for line in log.splitlines():
        if m := JOB_START.match(line):
            pending_rule = m.group(1)
        elif (m := JOB_ID.match(line)) and pending_rule is not None:
            if pending_rule == rule:
                running.add(m.group(1))
                most = max(most, len(running))
            pending_rule = None
        elif (m := JOB_END.match(line)) and m.group(2) == rule:
            running.discard(m.group(1))
    return most


def test_max_concurrent_reads_snakemake_job_lines():
    log = "\n".join(["rule train:", "    jobid: 1", "rule train:", "    jobid: 2",
                     "Finished jobid: 1 (Rule: train)", "localrule train:", "    jobid: 3",
                     "Finished jobid: 2 (Rule: train)", "Finished jobid: 3 (Rule: train)"])
    assert max_concurrent(log, "train") == 2
    assert max_concurrent(log, "attack") == 0


@pytest.mark.slow
def test_one_local_gpu_runs_one_gpu_job_at_a_time(tiny_run, tmp_path_factory, monkeypatch):
    """Two GPU jobs (two FGSM attack jobs, rerun with --force on a copy of the session's tiny run;
    resources.gpus: 1 as on the presets) on 2 cores: one at a time on device 0 when the machine
    reports one GPU, side by side on devices 0 and 1 with two (the control: the log can show
    overlap)."""
    overlay = tmp_path_factory.mktemp("gpu_cfg") / "gpu.yaml"
    overlay.write_text("resources: {gpus: 1}\n")
    targets = [f"{REP0}/mnist5k/lenet5/{m}/attacks/fgsm.h5" for m in ("standard", "pgd_linf")]
    clone = clone_run(tiny_run, tmp_path_factory, "gpu_sched")
    seen, devices = {}, {}
    monkeypatch.setenv(localgpus.LOCK_ENV, str(tmp_path_factory.mktemp("gpu_locks")))
    for gpus in (1, 2):
        monkeypatch.setenv(ENV, str(gpus))
        proc = clone.run("--cores", "2", "--force", *targets, configs=[overlay], timeout=600)
        log = proc.stdout + proc.stderr
        assert f'gpu=Resource("gpu", {gpus})' in log, log[-2000:]
        seen[gpus] = max_concurrent(log, "attack")
        devices[gpus] = re.findall(r"this GPU job uses device (\d+)", log)
    assert seen == {1: 1, 2: 2}
    assert devices[1] == ["0", "0"]  # one after the other on the one device
    assert sorted(devices[2]) == ["0", "1"]  # side by side, each on its own
