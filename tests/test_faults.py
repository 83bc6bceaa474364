"""Fault tolerance through the snakemake CLI: SIGKILLed jobs of every stage, corrupt inputs.

Every test works on its own clone of the session's whole tiny run (conftest.tiny_run), so it
can break outputs freely and still finds every upstream file up to date.

- ``KILLS``: one job per stage (train, synthesize, attack, distill, estimate_mi) is SIGKILLed
  mid-run, together with its snakemake (the whole process group, as a preempted cluster job).
  An overlay makes that job long enough to be caught mid-way (and marks it out of date, so it
  reruns); the same overlay is used for the rerun, as for a resubmitted job.  The killed job
  leaves no output that looks complete; ``snakemake --rerun-incomplete`` then finishes it, and
  the long jobs (train, synthesize) resume from the state they keep under results/.resume/.
- ``CORRUPT``: a truncated or corrupt input HDF5 of each consuming stage fails the job with
  one line naming the file (no traceback) and leaves no output behind.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from conftest import REP0, RUN, TINY_DATA, TINY_PATHS, Snake, clone_run

from advfeatures import h5io

pytestmark = pytest.mark.slow

DATASET, ARCH = "mnist5k", "lenet5"
EPOCHS = 4  # the killed training run: killed after its first epoch's resume state


def run_dir(method):
    return f"{REP0}/{DATASET}/{ARCH}/{method}"


def resume_dir(*parts):
    return "/".join([TINY_PATHS.resume_root, "rep0", DATASET, ARCH, *parts])


def log_of(rule, tag):
    return f"{RUN}/logs/{rule}/rep0_{DATASET}_{ARCH}_{tag}.log"


@pytest.fixture
def clone(tiny_run, tmp_path_factory) -> Snake:
    """A private copy of the whole tiny run (outputs, logs and .snakemake metadata)."""
    return clone_run(tiny_run, tmp_path_factory, "faults_wd")


# ----------------------------------------------------------------------------- SIGKILL


@dataclass
class Kill:
    id: str
    outputs: list[str]  # every output of the killed job (the first is the target)
    overlay: dict  # slows the job down so that it is caught mid-way (also marks it out of date)
    log: str  # the job's log file
    ready: Callable[[Path], bool]  # wd -> the job is mid-way: kill now
    resumed: str | None = None  # regex the rerun's log must match (jobs with resume state)
    state: str | None = None  # resume state folder, empty once the rerun finished
    check: Callable[[Path], None] = field(default=lambda wd: None)  # extra checks on the finished outputs


def exists(path):
    return lambda wd: (wd / path).exists()


def logged(path, text):
    return lambda wd: (wd / path).exists() and text in (wd / path).read_text()


def check_train(wd):
    rows = (wd / run_dir("pgd_linf") / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == [str(e) for e in range(1, EPOCHS + 1)]
    resumed_at = int(re.search(r"resuming pgd_linf from \S+ at epoch (\d+)", (wd / log_of("train", "pgd_linf")).read_text())[1])
    assert 1 <= resumed_at < EPOCHS


def check_synthesis(wd):
    reused = int(re.search(r"reused (\d+) of 4 finished chunks", (wd / log_of("synthesize", "d_nr")).read_text())[1])
    assert 1 <= reused < 4


def readable_h5(path):
    def check(wd):
        h5io.read_h5(wd / path)

    return check


KILLS = [
    Kill(
        "train",
        [f"{run_dir('pgd_linf')}/{f}" for f in ("metrics.csv", "model.pt", "checkpoints/epoch_1.pt", "checkpoints/epoch_2.pt")],
        {"training": {"common": {"epochs": EPOCHS}}},
        log_of("train", "pgd_linf"),
        exists(f"{resume_dir('pgd_linf')}/last.pt"),
        resumed=r"resuming pgd_linf from",
        state=resume_dir("pgd_linf"),
        check=check_train,
    ),
    Kill(
        "synthesize",
        [f"{REP0}/{DATASET}/{ARCH}/synthetic/d_nr.h5"],
        {"synthesis": {"batch_size": 100, "inversion": {"steps": 150}}},  # 4 chunks of the 400 images
        log_of("synthesize", "d_nr"),
        exists(f"{resume_dir('synthetic', 'd_nr')}/chunk_00000.pt"),
        resumed=r"reused \d+ of 4 finished chunks",
        state=resume_dir("synthetic", "d_nr"),
        check=check_synthesis,
    ),
    Kill(
        "attack",
        [f"{run_dir('standard')}/attacks/cw.h5"],
        {"attacks": {"suite": {"cw": {"steps": 600}}}},
        log_of("attack", "standard_cw"),
        logged(log_of("attack", "standard_cw"), "test rows"),
        check=readable_h5(f"{run_dir('standard')}/attacks/cw.h5"),
    ),
    Kill(
        "distill",
        [f"{run_dir('pgd_linf')}/bottleneck/clean_beta0.3.h5"],
        {"bottleneck": {"iterations": 200}},
        log_of("distill", "pgd_linf_clean_beta0.3"),
        logged(log_of("distill", "pgd_linf_clean_beta0.3"), "distilling clean inputs"),
        check=readable_h5(f"{run_dir('pgd_linf')}/bottleneck/clean_beta0.3.h5"),
    ),
    Kill(
        "estimate_mi",
        [f"{run_dir('standard')}/mutual_info/epoch_1.csv"],
        {"mutual_info": {"attack": {"norm": "linf", "eps": 0.1765, "alpha": 0.01, "steps": 150, "random_start": True}}},
        log_of("estimate_mi", "standard_epoch1"),
        exists(log_of("estimate_mi", "standard_epoch1")),  # the job is set up: its PGD runs next
    ),
]


def wait_until(ready, wd, proc, what, timeout=300):
    t0 = time.monotonic()
    while not ready(wd):
        assert proc.poll() is None, f"snakemake ended (rc {proc.returncode}) before {what}"
        assert time.monotonic() - t0 < timeout, f"{what}: not reached in {timeout} s"
        time.sleep(0.05)


def visible_files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")}


@pytest.mark.parametrize("kill", KILLS, ids=lambda k: k.id)
def test_sigkilled_job_leaves_nothing_complete_and_reruns(clone, tmp_path, kill):
    wd, target = clone.wd, kill.outputs[0]
    overlay = tmp_path / "slow.yaml"
    overlay.write_text(yaml.safe_dump(kill.overlay))
    assert clone.pending(target) == set()  # the clone is up to date ...
    assert target in clone.pending(target, configs=[overlay])  # ... and the overlay reruns the job
    folder = (wd / target).parent
    before = visible_files(folder)
    (wd / kill.log).unlink()  # so that `ready` sees this run's log, not the tiny run's

    proc = clone.popen("--cores", "1", target, configs=[overlay], log_path=tmp_path / "killed_run.log")
    try:
        wait_until(kill.ready, wd, proc, f"the {kill.id} job got mid-way")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"{kill.id}: the job finished before it could be killed"

    # nothing that looks complete: no output of the job, at most hidden temporary files
    assert [f for f in kill.outputs if (wd / f).exists()] == []
    assert visible_files(folder) <= before, sorted(visible_files(folder) - before)
    if kill.state:  # the resume state the rerun will pick up
        assert any((wd / kill.state).iterdir()), f"{kill.state} is empty"

    if kill.id == "train":  # a killed snakemake leaves its lock behind: --unlock, as it says
        locked = clone.run("--cores", "1", target, configs=[overlay], check=False)
        assert locked.returncode != 0 and "--unlock" in locked.stdout + locked.stderr
    clone.run("--unlock")
    clone.run("--cores", "1", "--rerun-incomplete", target, configs=[overlay])

    log = (wd / kill.log).read_text()
    if kill.resumed:
        assert re.search(kill.resumed, log), log[-2000:]
    assert all((wd / f).stat().st_size > 0 for f in kill.outputs)
    kill.check(wd)
    if kill.state:  # the resume state of a finished job is gone (a later rerun starts afresh)
        assert [p.name for p in (wd / kill.state).glob("*") if p.is_file()] == []
    assert clone.pending(target, configs=[overlay]) == set()


# ----------------------------------------------------------------------------- corrupt inputs


def truncate(path):
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])


def garbage(path):
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 64 + b"not really hdf5" * 100)


SYN = f"{REP0}/{DATASET}/{ARCH}/synthetic"

#: (file to damage, damage, the target whose job consumes it), one row per consuming stage
CORRUPT = [
    (TINY_DATA, truncate, f"{run_dir('standard')}/metrics.csv"),  # train
    (TINY_DATA, garbage, f"{run_dir('standard')}/metrics.csv"),
    (f"{SYN}/d_r.h5", truncate, f"{SYN}/d_r/{ARCH}/metrics.csv"),  # train_synthetic
    (f"{SYN}/d_rand.h5", garbage, f"{SYN}/d_rand/lenet5_w2/metrics.csv"),
    (f"{run_dir('standard')}/attacks/fgsm.h5", garbage, f"{run_dir('standard')}/bottleneck/fgsm_beta0.3.h5"),  # distill
    (f"{run_dir('standard')}/bottleneck/clean_beta1.h5", truncate, f"{REP0}/tables/kim_table1.csv"),  # tables
]


@pytest.mark.parametrize(
    "path, damage, target", CORRUPT, ids=[f"{Path(p).name}-{d.__name__}" for p, d, _ in CORRUPT]
)
def test_corrupt_input_fails_job_with_one_line(clone, path, damage, target):
    f = clone.wd / path
    assert f.exists() and (clone.wd / target).exists()
    damage(f)
    proc = clone.run("--cores", "1", target, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-2000:]
    lines = [ln for ln in out.splitlines() if ln.startswith("advfeatures error: ")]
    assert lines and all(path in ln and "corrupt" in ln and "delete it and rerun" in ln for ln in lines), out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    assert not (clone.wd / target).exists()  # the failed job left nothing that looks complete
