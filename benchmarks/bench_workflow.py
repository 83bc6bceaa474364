"""Workflow overhead and the default run's wall time.

- DAG build time of the largest preset (``snakemake -n`` on presets/cifar10-wrn28.yaml).
- A no-op run of the up-to-date default workflow (needs a finished `make run` in this tree).
- The default run: wall time of each rule from Snakemake's ``benchmark:`` files, summed along
  the critical path of the DAG, and the total CPU-seconds of all jobs, against the baseline runs.

    python benchmarks/bench_workflow.py [--save-baseline COMMIT [--bench-dir DIR]]

``--save-baseline`` writes benchmarks/baselines/default_run_COMMIT.csv (every job's seconds) from
the benchmark files of a full default run of that commit (default: results/default/benchmarks).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
LARGEST_PRESET = "presets/cifar10-wrn28.yaml"


def _timed(cmd: list[str], cwd: Path = ROOT) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    return time.perf_counter() - t0, proc


def dag_build_seconds(preset: str = LARGEST_PRESET, workdir: str | None = None) -> float:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        secs, proc = _timed(
            SNAKEMAKE + ["-n", "--quiet", "all", "--cores", "1", "--configfile", preset,
                         "--directory", workdir or tmp, "--snakefile", str(ROOT / "Snakefile")]
        )
    if proc.returncode != 0:
        raise RuntimeError(f"snakemake -n with {preset} failed:\n{proc.stderr[-2000:]}")
    return secs


def noop_seconds() -> float | None:
    """Time of `snakemake --cores 1` on an up-to-date default run; None if it is not up to date."""
    # not --quiet: it hides the "Nothing to be done" line this check reads
    secs, proc = _timed(SNAKEMAKE + ["--cores", "1", "all"])
    if proc.returncode != 0 or "Nothing to be done" not in (proc.stdout + proc.stderr):
        return None
    return secs


def job_startup_seconds(repeats: int = 3) -> float:
    """Median time to start Python and import an attack job's modules (torch, h5py, numpy, ...):
    the fixed cost every job of the DAG pays before its first computation."""
    import statistics

    cmd = [sys.executable, "-c", "import advfeatures.stages.attack"]
    return statistics.median(_timed(cmd)[0] for _ in range(repeats))


def _rule_graph() -> dict[str, list[str]]:
    """rule -> the rules it depends on, from `snakemake --rulegraph` (dot)."""
    import re

    proc = subprocess.run(SNAKEMAKE + ["--rulegraph", "--forceall", "--quiet", "--cores", "1"],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    names = dict(re.findall(r'^\s*(\d+)\[label = "([^"]+)"', proc.stdout, re.M))
    parents: dict[str, list[str]] = {n: [] for n in names.values()}
    for u, v in re.findall(r"^\s*(\d+) -> (\d+)", proc.stdout, re.M):
        parents[names[v]].append(names[u])  # a self-edge: jobs of a rule that feed each other
    return parents


def default_run_times(bench_dir: Path = ROOT / "results" / "default" / "benchmarks") -> dict:
    """Per-rule job times from the benchmark files, the last run's span and the critical path.

    The critical path is taken over the rule graph with each rule weighted by its longest job
    (a rule's jobs are independent, so with enough cores they overlap): a lower bound on the
    wall time of the DAG, beside the measured span of the last run.
    """
    sys.path.insert(0, str(ROOT))
    from advfeatures.reporting.summary import run_time

    per_rule, tot = run_time(bench_dir)
    longest = dict(zip(per_rule["rule"], per_rule["longest job s"]))
    parents = _rule_graph()
    memo: dict[str, float] = {}

    def path(rule: str) -> float:
        if rule not in memo:
            own = longest.get(rule, 0.0)
            ups = [p for p in parents.get(rule, []) if p != rule]
            # a self-edge (e.g. distill of attacked inputs reads the clean distill) chains two jobs
            weight = 2 * own if rule in parents.get(rule, []) else own
            memo[rule] = weight + max((path(p) for p in ups), default=0.0)
        return memo[rule]

    return {
        "jobs": tot["jobs"],
        "job_seconds_all_jobs": round(tot["job_s"], 1),
        "last_run_span_s": round(tot["span_s"], 1),
        "last_run_jobs": tot["jobs_in_span"],
        "critical_path_s (rule graph, longest job per rule)": round(max(map(path, parents)), 1),
        "per_rule_seconds": dict(zip(per_rule["rule"], per_rule["job seconds (sum)"].round(1))),
    }


#: Full default runs of earlier commits: every job's seconds, written from that run's
#: results/benchmarks (not typed in).  9d0c8ff: before issue 15's work (a partly loaded machine);
#: 3fe031c: the start of the last session, on the same machine and day as its final run.
BASELINES = {c: ROOT / "benchmarks" / "baselines" / f"default_run_{c}.csv" for c in ("9d0c8ff", "3fe031c")}


def versus_baseline(current: dict[str, float], baseline: Path) -> dict[str, str]:
    """Per rule: job seconds (sum) of the baseline run -> this tree's last run, and the ratio."""
    import pandas as pd

    before = pd.read_csv(baseline).groupby("rule")["s"].sum()
    rules = sorted(set(before.index) | set(current), key=lambda r: -float(before.get(r, 0.0)))
    out = {}
    for r in rules:
        b, a = float(before.get(r, 0.0)), float(current.get(r, 0.0))
        out[r] = f"{b:.1f} -> {a:.1f} s" + (f" (x{b / a:.2f})" if a > 0 and b > 0 else "")
    tb, ta = float(before.sum()), float(sum(current.values()))
    out["all jobs"] = f"{tb:.1f} -> {ta:.1f} s (x{tb / ta:.2f})" if ta else f"{tb:.1f} -> not run"
    return out


def run() -> dict:
    out = {"benchmark": "workflow overhead"}
    out["dag_build_largest_preset_s"] = round(dag_build_seconds(), 2)
    noop = noop_seconds()
    out["noop_run_s"] = round(noop, 2) if noop is not None else "not measured (default run not up to date)"
    out["target"] = "no-op run < 5 s"
    out["met"] = noop is not None and noop < 5.0
    out["default_run"] = default_run_times()
    for commit, path in BASELINES.items():
        out[f"default_run_vs_baseline_{commit}"] = versus_baseline(out["default_run"]["per_rule_seconds"], path)
    span = out["default_run"]["last_run_span_s"]
    out["default_run_target"] = "last run's span <= 360 s on an idle 2-core machine (issue 15)"
    out["default_run_met"] = bool(span and span <= 360)
    job_s, path = out["default_run"]["job_seconds_all_jobs"], out["default_run"][
        "critical_path_s (rule graph, longest job per rule)"]
    cores = os.cpu_count() or 1
    startup = job_startup_seconds()
    jobs = out["default_run"]["jobs"]
    out["job_startup_s (python + imports, median of 3)"] = round(startup, 2)
    out["default_run_finding"] = (
        f"{job_s:.0f} job-seconds on {cores} cores need at least {job_s / cores:.0f} s (critical path "
        f"{path:.0f} s); the last run took {span:.0f} s, so it is bound by the total work, not by the "
        f"DAG's shape. {360 * cores:.0f} job-seconds would fit 360 s. Start-up alone is "
        f"{startup:.1f} s x {jobs} jobs = {startup * jobs:.0f} job-seconds "
        f"({startup * jobs / job_s:.0%} of the run)" if job_s else "no default run measured"
    )
    return out


def save_baseline(commit: str, bench_dir: Path = ROOT / "results" / "default" / "benchmarks") -> Path:
    """Every job's seconds and peak RSS from a default run's benchmark files, as a baseline CSV."""
    import pandas as pd

    sys.path.insert(0, str(ROOT))
    from advfeatures.reporting.summary import benchmark_jobs

    rows = [{"rule": r["rule"], "job": r["job"], "s": float(r["s"]), "max_rss_mib": float(r["max_rss"])}
            for r in benchmark_jobs(bench_dir)]
    if not rows:
        raise SystemExit(f"bench_workflow: no benchmark files under {bench_dir}; run the default DAG first")
    out = ROOT / "benchmarks" / "baselines" / f"default_run_{commit}.csv"
    pd.DataFrame(rows).sort_values(["rule", "job"]).to_csv(out, index=False)
    return out


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--save-baseline", metavar="COMMIT")
    ap.add_argument("--bench-dir", type=Path, default=ROOT / "results" / "default" / "benchmarks")
    a = ap.parse_args()
    if a.save_baseline:
        print(f"wrote {save_baseline(a.save_baseline, a.bench_dir)}")
    else:
        for k, v in run().items():
            print(f"{k}: {v}")
