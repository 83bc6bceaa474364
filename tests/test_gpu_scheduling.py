"""Local GPU scheduling: `gpu` is a global resource equal to the machine's GPU count
(advfeatures.localgpus), so a local run never puts two GPU jobs on one device."""

from __future__ import annotations

import re
import stat

import pytest
from conftest import clone_run

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
    resources.gpus: 1 as on the presets) on 2 cores: one at a time when the machine reports one
    GPU, side by side with two (the control: the log can show overlap)."""
    overlay = tmp_path_factory.mktemp("gpu_cfg") / "gpu.yaml"
    overlay.write_text("resources: {gpus: 1}\n")
    targets = [f"results/mnist5k/lenet5/{m}/attacks/fgsm.h5" for m in ("standard", "pgd_linf")]
    clone = clone_run(tiny_run, tmp_path_factory, "gpu_sched")
    seen = {}
    for gpus in (1, 2):
        monkeypatch.setenv(ENV, str(gpus))
        proc = clone.run("--cores", "2", "--force", *targets, configs=[overlay], timeout=600)
        log = proc.stdout + proc.stderr
        assert f'gpu=Resource("gpu", {gpus})' in log, log[-2000:]
        seen[gpus] = max_concurrent(log, "attack")
    assert seen == {1: 1, 2: 2}
