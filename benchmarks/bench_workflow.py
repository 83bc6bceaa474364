"""Workflow overhead and the default run's wall time.

- DAG build time of the largest preset (``snakemake -n`` on presets/cifar10-wrn28.yaml).
- A no-op run of the up-to-date default workflow (needs a finished `make run` in this tree).
- The default run: wall time of each rule from Snakemake's ``benchmark:`` files, summed along
  the critical path of the DAG, and the total CPU-seconds of all jobs.
"""

from __future__ import annotations

import csv
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
    secs, proc = _timed(SNAKEMAKE + ["--cores", "1", "--quiet", "all"])
    if proc.returncode != 0 or "Nothing to be done" not in (proc.stdout + proc.stderr):
        return None
    return secs


def _job_graph() -> dict[str, list[str]]:
    """Map each job's benchmark file to its parents' benchmark files (from `snakemake --d3dag`)."""
    import json

    proc = subprocess.run(SNAKEMAKE + ["--d3dag", "--forceall", "--cores", "1", "--quiet"],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    dag = json.loads(proc.stdout[proc.stdout.index("{"):])
    return dag


def default_run_times(bench_dir: Path = ROOT / "results" / "benchmarks") -> dict:
    """Per-rule wall times from the benchmark TSVs, total and critical path (longest chain)."""
    times: dict[str, float] = {}
    for tsv in sorted(bench_dir.rglob("*.tsv")):
        with open(tsv) as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        if rows:
            times[str(tsv.relative_to(bench_dir))] = float(rows[-1]["s"])
    per_rule: dict[str, float] = {}
    for key, s in times.items():
        rule = key.split("/")[0].removesuffix(".tsv")
        per_rule[rule] = per_rule.get(rule, 0.0) + s
    critical = None
    try:
        critical = critical_path(times)
    except Exception as exc:  # noqa: BLE001 - the figure is optional, report why
        critical = f"unavailable ({exc.__class__.__name__}: {exc})"
    return {"jobs": len(times), "cpu_seconds_all_jobs": round(sum(times.values()), 1),
            "per_rule_seconds": {k: round(v, 1) for k, v in sorted(per_rule.items())},
            "critical_path_seconds": critical}


def critical_path(times: dict[str, float]) -> float:
    """Longest chain of job wall times through the DAG, jobs matched by their benchmark path."""
    dag = _job_graph()
    nodes = {n["id"]: n for n in dag["nodes"]}
    parents: dict[str, list[str]] = {k: [] for k in nodes}
    for link in dag["links"]:
        parents[link["v"]].append(link["u"])

    def job_time(node) -> float:
        rule = node["value"]["rule"]
        label = node["value"].get("label", "")
        hits = [s for k, s in times.items() if k.split("/")[0].removesuffix(".tsv") == rule]
        if not hits:
            return 0.0
        # several jobs of one rule: match by wildcards in the label when possible
        for k, s in times.items():
            if k.split("/")[0] == rule and all(part in k for part in label.split("\\n")[1:]):
                return s
        return max(hits)

    memo: dict[str, float] = {}

    def longest(nid: str) -> float:
        if nid not in memo:
            memo[nid] = job_time(nodes[nid]) + max((longest(p) for p in parents[nid]), default=0.0)
        return memo[nid]

    return round(max(longest(n) for n in nodes), 1)


def run() -> dict:
    out = {"benchmark": "workflow overhead"}
    out["dag_build_largest_preset_s"] = round(dag_build_seconds(), 2)
    noop = noop_seconds()
    out["noop_run_s"] = round(noop, 2) if noop is not None else "not measured (default run not up to date)"
    out["target"] = "no-op run < 5 s"
    out["met"] = noop is not None and noop < 5.0
    out["default_run"] = default_run_times()
    return out


if __name__ == "__main__":
    for k, v in run().items():
        print(f"{k}: {v}")
