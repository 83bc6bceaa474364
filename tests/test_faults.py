"""Fault tolerance through the snakemake CLI: a SIGKILLed job, corrupt inputs.

- A training job killed with SIGKILL (the whole process group, as a preempted cluster job)
  leaves no output that looks complete; ``snakemake --rerun-incomplete`` then finishes the
  run, resuming from the epoch checkpoint the killed job left in results/.resume/.
- A truncated or corrupt input HDF5 fails the consuming job with one line naming the file
  (no traceback in the job's log).  Stages add their (file, consumer) pairs to ``CORRUPT``.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
import yaml
from conftest import Snake

pytestmark = pytest.mark.slow

DATASET, ARCH = "mnist5k", "lenet5"
EPOCHS = 10


def run_dir(method):
    return f"results/{DATASET}/{ARCH}/{method}"


def outputs(method):
    return [f"{run_dir(method)}/{f}" for f in ("model.pt", "metrics.csv", "checkpoints/epoch_1.pt", "checkpoints/epoch_2.pt")]


@pytest.fixture(scope="module")
def snake(repo_copy, tmp_path_factory) -> Snake:
    wd = tmp_path_factory.mktemp("faults_wd")
    # 10 epochs: the job is killed right after its first epoch checkpoint, long before the end
    overlay = wd.parent / "faults.yaml"
    overlay.write_text(yaml.safe_dump({"training": {"common": {"epochs": EPOCHS}}}))
    return Snake(repo_copy, wd, extra_configs=[overlay])


def wait_for(path, proc, timeout=300):
    t0 = time.monotonic()
    while not path.exists():
        assert proc.poll() is None, f"snakemake ended (rc {proc.returncode}) before {path} appeared"
        assert time.monotonic() - t0 < timeout, f"{path} did not appear in {timeout} s"
        time.sleep(0.2)


def test_sigkilled_training_resumes_with_rerun_incomplete(snake):
    target = f"{run_dir('pgd_linf')}/metrics.csv"
    snake.run("--cores", "1", f"data/{DATASET}.h5")
    state = snake.wd / "results" / ".resume" / DATASET / ARCH / "pgd_linf" / "last.pt"
    proc = snake.popen("--cores", "1", target, log_path=snake.wd / "killed_run.log")
    try:
        wait_for(state, proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the job finished before it could be killed; raise epochs"

    # nothing that looks complete: the outputs are written at the very end, atomically
    assert [f for f in outputs("pgd_linf") if (snake.wd / f).exists()] == []
    left = [p.name for p in (snake.wd / run_dir("pgd_linf")).rglob("*") if p.is_file()]
    assert all(n.startswith(".") for n in left), left  # at most a hidden temporary file
    # a killed snakemake leaves its lock behind: --unlock, as the error message says
    locked = snake.run("--cores", "1", target, check=False)
    assert locked.returncode != 0 and "--unlock" in locked.stdout + locked.stderr
    snake.run("--unlock")
    snake.run("--cores", "1", "--rerun-incomplete", target)

    log = (snake.wd / "results" / "logs" / "train" / f"{DATASET}_{ARCH}_pgd_linf.log").read_text()
    assert "resuming pgd_linf from" in log, log[-2000:]
    resumed_at = int(log.split("resuming pgd_linf from", 1)[1].split("at epoch", 1)[1].split()[0])
    assert 1 <= resumed_at < EPOCHS
    rows = (snake.wd / target).read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == [str(e) for e in range(1, EPOCHS + 1)]
    assert all((snake.wd / f).stat().st_size > 0 for f in outputs("pgd_linf"))
    # the resume state of a finished run is gone (a later rerun trains afresh)
    assert not state.exists()
    assert snake.pending(target) == set()


def truncate(path):
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])


def garbage(path):
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 64 + b"not really hdf5" * 100)


#: (file to damage, damage, the target whose job consumes it); stages add their own rows
CORRUPT = [
    (f"data/{DATASET}.h5", truncate, f"{run_dir('standard')}/metrics.csv"),
    (f"data/{DATASET}.h5", garbage, f"{run_dir('standard')}/metrics.csv"),
]


@pytest.mark.parametrize("path, damage, target", CORRUPT, ids=lambda v: getattr(v, "__name__", None))
def test_corrupt_input_fails_job_with_one_line(snake, path, damage, target):
    f = snake.wd / path
    if not f.exists():
        snake.run("--cores", "1", path)
    backup = f.read_bytes()
    try:
        damage(f)
        proc = snake.run("--cores", "1", target, check=False)
    finally:
        f.write_bytes(backup)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-2000:]
    lines = [ln for ln in out.splitlines() if ln.startswith("advfeatures error: ")]
    assert lines and all(path in ln and "corrupt" in ln and "delete it and rerun" in ln for ln in lines), out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    assert not (snake.wd / target).exists()  # the failed job left nothing that looks complete
