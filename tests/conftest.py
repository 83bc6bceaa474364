"""Shared fixtures: a tiny synthetic dataset for unit tests, and helpers that drive Snakemake
through its command line on a copy of the repository (the integration tests never touch the
real checkout, its data/ or results/)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from advfeatures.data import Dataset

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "tiny.yaml"


def run_paths(*configfiles, cli=None):
    """The paths (advfeatures.paths.RunPaths) of the run of config.yaml and ``configfiles``."""
    from advfeatures.config import layers_for, resolve, run_name
    from advfeatures.paths import RunPaths, data_key
    from advfeatures.plan import Plan

    layers = layers_for(configfiles, cli, default_run=ROOT / "config.yaml")
    config = resolve(layers).config
    plan = Plan(config | {"run": config.get("run") or run_name(layers)})
    return RunPaths(plan.run, data_key(plan.dataset_params()))


#: the tiny run's paths (results/tiny/..., its prepared data) and its one replicate's folder; none
#: where this file is copied beside tests that run without the checkout (tests/test_ci_skips.py)
TINY_PATHS = run_paths(TINY) if (ROOT / "config.yaml").exists() else None
RUN = TINY_PATHS.root if TINY_PATHS else None
REP0 = TINY_PATHS.rep_dir(0) if TINY_PATHS else None
TINY_DATA = TINY_PATHS.data_h5("mnist5k") if TINY_PATHS else None
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
# what a copy of the repository leaves behind: environments, outputs, caches, VCS
COPY_IGNORE = shutil.ignore_patterns(
    ".venv", ".git", ".snakemake", "data", "results", "__pycache__", "*.egg-info", ".pytest_cache",
    ".ruff_cache",
)


def pytest_configure(config):
    """A private temporary root per run.

    pytest's default root (/tmp/pytest-of-USER) keeps only the last 3 runs, so a concurrent
    pytest run of the same user deletes this run's tmp_path folders - repository copies and
    Snakemake working directories included - while the tests still use them.
    """
    if not config.option.basetemp:
        config.option.basetemp = tempfile.mkdtemp(prefix="advfeatures-pytest-")
        config._advfeatures_tmp = config.option.basetemp


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the xdist_group marks
def pytest_collection_modifyitems(config, items):
    """Every test that uses ``tiny_run`` joins one xdist group.

    Under pytest-xdist (make test: ``-n auto --dist loadgroup``) session fixtures are per
    worker; the group keeps those tests on one worker, so the tiny DAG runs once, not once per
    worker.
    """
    for item in items:
        if "tiny_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("tiny_run"))


#: CI sets this (.ci/run): a test skipped because a fixture it needs is missing (the shared CIFAR-10
#: subset, the slurm packages, pyautoattack's example model) then FAILS instead of passing silently
REQUIRE_ALL = "ADVFEATURES_REQUIRE_ALL"
#: the reason a deliberate skip starts with (a skip that is right even in CI): the CUDA-only tests
DELIBERATE = "deliberate:"


def skip_reason(report) -> str:
    """The reason text of a skipped test's report (``pytest.skip("...")``)."""
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return reason.removeprefix("Skipped: ")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under ``ADVFEATURES_REQUIRE_ALL=1``, a skip (setup or call) is a failure unless its reason
    starts with ``deliberate:``; xfail is left alone."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get(REQUIRE_ALL) != "1" or not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = skip_reason(report)
    if reason.startswith(DELIBERATE):
        return
    report.outcome = "failed"
    report.longrepr = (
        f"{REQUIRE_ALL}=1 (CI): this test was skipped, so what it checks went unchecked: {reason}\n"
        f"Provide what it needs, or unset {REQUIRE_ALL} for a local run without it."
    )


def pytest_unconfigure(config):
    tmp = getattr(config, "_advfeatures_tmp", None)
    if tmp and not os.environ.get("ADVFEATURES_KEEP_TMP"):
        shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------- unit-test data


def make_tiny_dataset(n_train=120, n_test=40, classes=4, size=28, seed=0) -> Dataset:
    """A learnable toy dataset: each class lights a different quadrant, plus noise."""
    g = np.random.default_rng(seed)

    def split(n):
        y = np.arange(n) % classes
        g.shuffle(y)
        x = g.uniform(0, 0.3, size=(n, 1, size, size))
        h = size // 2
        for i, c in enumerate(y):
            r, col = divmod(int(c), 2)
            x[i, 0, r * h : (r + 1) * h, col * h : (col + 1) * h] += 0.6
        return torch.from_numpy(x.clip(0, 1)).float(), torch.from_numpy(y).long()

    x_tr, y_tr = split(n_train)
    x_te, y_te = split(n_test)
    return Dataset(
        name="tiny", x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te,
        classes=[str(c) for c in range(classes)],
        mean=[float(x_tr.mean())], std=[float(x_tr.std())],
    )


@pytest.fixture(scope="session")
def tiny_data() -> Dataset:
    return make_tiny_dataset()


# ----------------------------------------------------------------------------- snakemake driver


class Snake:
    """Runs ``snakemake`` from a repository copy (``repo``) in a working directory (``wd``).

    Every call passes the tiny overlay plus ``extra_configs``; the copy's package comes first
    on PYTHONPATH so an edited module is the one the jobs import.
    """

    def __init__(self, repo: Path, wd: Path, extra_configs=(), tiny: bool = True):
        self.repo, self.wd = Path(repo), Path(wd)
        self.extra_configs = [str(c) for c in extra_configs]
        self.tiny = tiny  # pass tests/tiny.yaml first (off: only the given config files)
        self._edges: dict = {}

    def env(self) -> dict:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(self.repo), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env.setdefault("OMP_NUM_THREADS", "1")
        return env

    def args(self, *args, configs=()) -> list[str]:
        cfgs = [str(self.repo / "tests" / "tiny.yaml")] if self.tiny else []
        cfgs += [*self.extra_configs, *map(str, configs)]
        return [
            SNAKEMAKE, "--snakefile", str(self.repo / "Snakefile"), "--directory", str(self.wd),
            *(["--configfile", *cfgs] if cfgs else []), *args,
        ]

    def run(self, *args, configs=(), check=True, timeout=600) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            self.args(*args, configs=configs), capture_output=True, text=True, env=self.env(),
            cwd=self.repo, timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc

    def popen(self, *args, configs=(), log_path: Path | None = None) -> subprocess.Popen:
        """Start snakemake in its own process group (so a test can SIGKILL the whole group)."""
        out = open(log_path, "w") if log_path else subprocess.DEVNULL
        try:
            return subprocess.Popen(
                self.args(*args, configs=configs), stdout=out, stderr=subprocess.STDOUT,
                env=self.env(), cwd=self.repo, start_new_session=True,
            )
        finally:
            if log_path:
                out.close()  # the child holds its own copy

    def summary(self, *targets, configs=()) -> dict[str, tuple[str, str]]:
        """``--summary`` as {output file: (rule, plan)}; plan is 'update pending' or 'no update'."""
        proc = self.run("--summary", *targets, configs=configs)
        rows = [line.split("\t") for line in proc.stdout.splitlines() if "\t" in line]
        assert rows and rows[0][0] == "output_file", proc.stdout[-2000:]
        head = rows[0]
        i_rule, i_plan = head.index("rule"), head.index("plan")
        return {r[0]: (r[i_rule], r[i_plan]) for r in rows[1:]}

    def pending(self, *targets, configs=()) -> set[str]:
        """Output files a plain run would (re)make."""
        return {f for f, (_, plan) in self.summary(*targets, configs=configs).items() if plan != "no update"}

    def pending_rules(self, *targets, configs=()) -> set[str]:
        """Rules with at least one job a plain run would execute (``-n``'s job stats)."""
        proc = self.run("-n", *targets, configs=configs)
        return set(job_stats(proc.stdout + proc.stderr))

    def rule_edges(self, *targets, configs=()) -> set[tuple[str, str]]:
        """(upstream rule, downstream rule) pairs of the ``--rulegraph`` of ``targets`` (cached)."""
        key = (targets, tuple(map(str, configs)))
        if key not in self._edges:
            dot = self.run("--rulegraph", "--forceall", *targets, configs=configs).stdout
            names = dict(re.findall(r'^\s*(\d+)\[label = "([^"]+)"', dot, flags=re.M))
            assert names, dot[-2000:]
            pairs = re.findall(r"^\s*(\d+) -> (\d+)", dot, flags=re.M)
            self._edges[key] = {(names[a], names[b]) for a, b in pairs}
        return self._edges[key]

    def rule_descendants(self, rules: set[str], *targets, configs=()) -> set[str]:
        """``rules`` and every rule downstream of them in the rule graph of ``targets``."""
        edges = self.rule_edges(*targets, configs=configs)
        out, frontier = set(rules), set(rules)
        while frontier:
            frontier = {b for a, b in edges if a in frontier} - out
            out |= frontier
        return out


def job_stats(text: str) -> dict[str, int]:
    """{rule: job count} from the "Job stats" table Snakemake prints (empty: nothing to do)."""
    if "Nothing to be done" in text:
        return {}
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.startswith("Job stats:")), None)
    assert start is not None, f"no job stats in snakemake output:\n{text[-2000:]}"
    stats = {}
    for ln in lines[start + 3 :]:  # title, header, dashes
        parts = ln.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        if parts[0] != "total":
            stats[parts[0]] = int(parts[1])
    return stats


@contextlib.contextmanager
def edited(path: Path):
    """``path`` with a comment line appended (created when missing); restored on exit, bytes
    and mtime, or removed."""
    existed = path.exists()
    before = path.read_bytes() if existed else None
    stat = path.stat() if existed else None
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.write_bytes((before or b"") + b"\n# edited by a test (conftest.edited)\n")
        yield
    finally:
        if existed:
            path.write_bytes(before)
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        else:
            path.unlink()
    assert path.exists() == existed and (not existed or path.read_bytes() == before)


def copy_repo(dest: Path) -> Path:
    shutil.copytree(ROOT, dest, ignore=COPY_IGNORE, symlinks=True)
    return dest


@pytest.fixture(scope="session")
def repo_copy(tmp_path_factory) -> Path:
    """A copy of the checkout (without .venv, data, results, .snakemake) that tests may edit."""
    return copy_repo(tmp_path_factory.mktemp("repo") / "advfeatures")


@pytest.fixture(scope="session")
def tiny_run(repo_copy, tmp_path_factory) -> Snake:
    """The whole tiny DAG (tests/tiny.yaml, every stage), run once per session from the copy.

    Shared by the rerun matrix (tests/test_workflow.py: dry runs against this state) and the
    fault tests (tests/test_faults.py: each works on its own clone, see ``clone_run``).
    """
    s = Snake(repo_copy, tmp_path_factory.mktemp("tiny_run"))
    s.run("--cores", "2", timeout=1200)
    return s


def clone_run(snake: Snake, tmp_path_factory, name: str) -> Snake:
    """A copy of ``snake``'s working directory (outputs, logs, .snakemake metadata) to break.

    ``mktemp`` puts it at the same depth under the session's temporary root, so the relative
    paths of the ``lib(...)`` inputs recorded in the metadata still name the same files.
    """
    wd = tmp_path_factory.mktemp(name)
    shutil.copytree(snake.wd, wd, symlinks=True, dirs_exist_ok=True)
    return Snake(snake.repo, wd, extra_configs=snake.extra_configs, tiny=snake.tiny)
