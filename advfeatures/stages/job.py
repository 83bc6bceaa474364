"""A job of a stage: its input and output paths, params, wildcards, log and threads.

Under Snakemake, :func:`from_snakemake` builds the :class:`Job` and :func:`run` records it
next to the job's log (``<log>.job.yaml``) before running the stage, so a failing job can be
rerun by hand, without Snakemake, in a debugger or on another machine::

    python -m advfeatures.stages.attack --job results/default/logs/attack/rep0_mnist5k_lenet5_standard_pgd.job.yaml
    python -m advfeatures.stages.attack --job ....job.yaml --device cuda --log -

or with every piece given explicitly (``--input name=path``, ``--output name=path``,
``--params FILE.yaml``, ``--wildcard name=value``; a name may repeat to make a list).
Errors of the science (:class:`~advfeatures.utils.AdvFeaturesError`) end the job with one line
``advfeatures error: ...``.

Before a job runs, :func:`check_job` stops it with one line when its record could corrupt
results or touch files outside the project: a param that is NaN or infinite anywhere, a
negative budget (``eps``, ``alpha``, ``steps``, ``lr``, ...), an output, log or job record
outside the working directory, or a ``resume_dir`` (whose files the stage deletes when it
finishes) outside ``results/.resume``.  ``--allow-outside`` (``run(..., allow_outside=True)``)
lifts the two path checks for a user who means it; the number checks always apply.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

from advfeatures import localgpus
from advfeatures.utils import (
    AdvFeaturesError,
    atomic_write,
    resolve_device,
    set_threads,
    setup_logging,
)


class Files(list):
    """Paths in order (``files[0]``) with names (``files.model``), like Snakemake's lists."""

    def __init__(self, items=(), names: dict[str, Any] | None = None):
        super().__init__(items)
        self._names = dict(names or {})

    def __getattr__(self, name: str):
        try:
            return self.__dict__["_names"][name]
        except KeyError:
            raise AttributeError(f"job has no file named {name!r}") from None

    def names(self) -> dict[str, Any]:
        return dict(self._names)


@dataclass
class Job:
    rule: str
    input: Files = field(default_factory=Files)
    output: Files = field(default_factory=Files)
    params: dict[str, Any] = field(default_factory=dict)
    wildcards: dict[str, str] = field(default_factory=dict)
    log: str | None = None
    threads: int = 1

    @property
    def p(self) -> SimpleNamespace:
        """The params with attribute access (``job.p.methods``)."""
        return SimpleNamespace(**self.params)

    @property
    def seed(self) -> int:
        return int(self.params["seed"])

    def device(self):
        """The torch device of ``params.runtime.device`` (``auto`` when the job has none)."""
        return resolve_device((self.params.get("runtime") or {}).get("device", "auto"))

    def record(self) -> dict:
        return {
            "rule": self.rule, "threads": self.threads, "log": self.log, "wildcards": dict(self.wildcards),
            "input": {"files": list(self.input), "names": self.input.names()},
            "output": {"files": list(self.output), "names": self.output.names()},
            "params": self.params,
        }

    @classmethod
    def from_record(cls, d: dict) -> Job:
        return cls(
            rule=d["rule"], input=Files(d["input"]["files"], d["input"]["names"]),
            output=Files(d["output"]["files"], d["output"]["names"]), params=dict(d.get("params") or {}),
            wildcards=dict(d.get("wildcards") or {}), log=d.get("log"), threads=int(d.get("threads", 1)),
        )


def _plain(value):
    """Snakemake's lists and config objects as plain YAML-safe values."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    for kind in (str, int, float):  # plain types, not Snakemake's subclasses (YAML-safe)
        if isinstance(value, kind):
            return kind(value)
    return str(value)


def _files(named) -> Files:
    names = {k: _plain(list(v) if isinstance(v, list) else v) for k, v in named.items()}
    return Files([str(f) for f in named], names)


def from_snakemake(smk) -> Job:
    """The :class:`Job` of a running Snakemake script (``snakemake`` object)."""
    params = {k: _plain(v) for k, v in smk.params.items()}
    return Job(
        rule=smk.rule, input=_files(smk.input), output=_files(smk.output),
        # a YAML round trip: the job runs on exactly what its record holds
        params=yaml.safe_load(yaml.safe_dump(params, sort_keys=False)),
        wildcards={k: str(v) for k, v in smk.wildcards.items()},
        log=str(smk.log[0]) if smk.log else None, threads=int(smk.threads),
    )


def record_path(job: Job) -> Path | None:
    return Path(job.log).with_suffix(".job.yaml") if job.log else None


#: params that are budgets or sizes: a negative value is never meaningful (an attack with eps < 0
#: silently returns the clean input, a negative lr trains uphill); matched on the last key of a path
NON_NEGATIVE = frozenset({
    "eps", "alpha", "steps", "step_size", "lr", "iterations", "epochs", "batch_size", "eval_batch_size",
    "subset", "eval_subset", "beta", "c", "kappa", "n_iter", "n_restarts", "n_queries", "search_steps",
    "momentum", "weight_decay", "gamma", "noise_var", "bin_size", "samples", "n",
})
#: where a job may keep the resume state it deletes once its outputs are written
RESUME_ROOT = Path("results") / ".resume"


def check_numbers(value: Any, key: str = "params") -> None:
    """Reject a NaN or infinite number anywhere in ``value`` and a negative one under a key of
    :data:`NON_NEGATIVE`; the error names the dotted key (``params.attack.eps``)."""
    if isinstance(value, dict):
        for k, v in value.items():
            check_numbers(v, f"{key}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            check_numbers(v, f"{key}[{i}]")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise AdvFeaturesError(f"{key} is {value!r}: every number of a job must be finite; fix the config or job record")
        name = key.rsplit(".", 1)[-1].split("[", 1)[0]
        if value < 0 and name in NON_NEGATIVE:
            raise AdvFeaturesError(f"{key} is {value!r}: must be >= 0; fix the config or job record")


def _inside(path: str | os.PathLike, root: Path) -> bool:
    """``path`` (relative to the working directory) lies in ``root``, after resolving ``..`` (not
    symlinks: a results folder linked to a scratch disk is the user's choice)."""
    full = Path(os.path.abspath(path))
    return full == root or root in full.parents


def check_paths(job: Job, root: str | os.PathLike | None = None) -> None:
    """Every file the job writes (outputs, log, job record) inside ``root`` (default: the working
    directory) and its ``resume_dir`` inside ``root/results/.resume``."""
    root = Path(os.path.abspath(root or os.getcwd()))
    hint = "run the job from the project folder, or pass --allow-outside if you mean it"
    named = {v: k for k, v in job.output.names().items() if isinstance(v, str)}
    writes = [(f"output {named.get(f, '')}".rstrip(), f) for f in job.output]
    writes += [("log", job.log), ("job record", record_path(job))] if job.log else []
    for what, f in writes:
        if not _inside(f, root):
            raise AdvFeaturesError(f"rule {job.rule}: {what} {f} is outside the working directory {root}; {hint}")
    state = job.params.get("resume_dir")
    if state is not None and not _inside(state, root / RESUME_ROOT):
        raise AdvFeaturesError(
            f"params.resume_dir {state} is outside {root / RESUME_ROOT}: the stage deletes the resume files "
            f"in that folder when it finishes; point it under {RESUME_ROOT}/, or pass --allow-outside if you mean it"
        )


def check_job(job: Job, *, allow_outside: bool = False) -> None:
    """What :func:`run` checks before a job starts (see the module docstring)."""
    check_numbers(job.params)
    if not allow_outside:
        check_paths(job)


def _fail(exc: Exception, log: str | None) -> None:
    print(f"advfeatures error: {exc}", file=sys.stderr)
    if log:
        with open(log, "a") as f:
            f.write(f"advfeatures error: {exc}\n")
    sys.exit(1)


def run(stage: Callable[[Job], Any], job: Job, *, record: bool = True, allow_outside: bool = False) -> None:
    """Run ``stage(job)`` with the job's logging and threads; one-line exit on AdvFeaturesError.

    The job is checked first (:func:`check_job`): a rejected job writes nothing, not even its log."""
    try:
        check_job(job, allow_outside=allow_outside)
    except AdvFeaturesError as exc:
        _fail(exc, None)
    if record and (path := record_path(job)):
        with atomic_write(path) as tmp:
            tmp.write_text(yaml.safe_dump(job.record(), sort_keys=False))
    setup_logging(job.log)
    set_threads(job.threads)
    try:
        stage(job)
    except AdvFeaturesError as exc:
        _fail(exc, job.log)


def snakemake_adapter(stages: dict[str, Callable[[Job], Any]], smk) -> None:
    """What a workflow script does: run the stage of the job's rule on Snakemake's job ``smk``."""
    localgpus.claim_for_job(getattr(smk.resources, "gpu", 0))  # one device per GPU job, before CUDA starts
    job = from_snakemake(smk)
    run(stages[job.rule], job)


def _pairs(items, what) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or ():
        if "=" not in item:
            raise SystemExit(f"advfeatures error: --{what} {item!r}: expected name=value")
        k, v = item.split("=", 1)
        out[k] = [*out[k], v] if isinstance(out.get(k), list) else ([out[k], v] if k in out else v)
    return out


def _replace(files: Files, new: dict[str, Any]) -> Files:
    """``files`` with some entries replaced: by name, or by position (``"0"``)."""
    items, names = list(files), files.names()
    for key, value in new.items():
        if key.isdigit() and int(key) < len(items):
            old, items[int(key)] = items[int(key)], value
            names = {k: (value if v == old else v) for k, v in names.items()}
        elif key in names and not isinstance(names[key], list) and not isinstance(value, list):
            items = [value if f == names[key] else f for f in items]
            names[key] = value
        else:
            raise SystemExit(f"advfeatures error: the job has no single file {key!r} to replace; "
                             f"names: {sorted(names)}, positions 0-{len(items) - 1}")
    return Files(items, names)


def main(stages: dict[str, Callable[[Job], Any]], argv=None) -> None:
    """Command-line entry of a stage module (``python -m advfeatures.stages.<module>``);
    ``stages`` maps rule names to the module's stage functions."""
    module = next(iter(stages.values())).__module__
    if module == "__main__":  # python -m advfeatures.stages.<module>
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        module = spec.name if spec else module
    ap = argparse.ArgumentParser(
        prog=f"python -m {module}",
        description=f"Run a job of rule(s) {', '.join(stages)} by hand: from its record (written beside "
        "the job's log by the workflow), or from explicit inputs, outputs, params and wildcards.",
    )
    ap.add_argument("--job", help="a job record (results/<run>/logs/<rule>/<job>.job.yaml)")
    ap.add_argument("--rule", choices=list(stages), help="the rule (default: the record's, or the only one)")
    ap.add_argument("--input", action="append", metavar="NAME=PATH",
                    help="a named input (repeat); with --job, replaces that input (a number: by position)")
    ap.add_argument("--output", action="append", metavar="NAME=PATH",
                    help="a named output (repeat); with --job, replaces that output (a number: by position)")
    ap.add_argument("--params", help="YAML file of the job's params")
    ap.add_argument("--wildcard", action="append", metavar="NAME=VALUE", help="a wildcard (repeat)")
    ap.add_argument("--threads", type=int, help="torch threads (default: the record's, else 1)")
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), help="override params.runtime.device")
    ap.add_argument("--log", help="log file ('-': stderr only; default: the record's)")
    ap.add_argument("--allow-outside", action="store_true",
                    help="let the job write outside the working directory and keep resume state outside "
                    "results/.resume (refused by default)")
    a = ap.parse_args(argv)
    if a.job:
        job = load_record(a.job)
        job.input = _replace(job.input, _pairs(a.input, "input"))
        job.output = _replace(job.output, _pairs(a.output, "output"))
    else:
        ins, outs = _pairs(a.input, "input"), _pairs(a.output, "output")
        flat = lambda d: [p for v in d.values() for p in (v if isinstance(v, list) else [v])]  # noqa: E731
        params = _load_yaml(a.params, "params file") if a.params else {}
        if not isinstance(params or {}, dict):
            raise SystemExit(f"advfeatures error: {a.params}: a params file must hold a mapping, "
                             f"got {type(params).__name__}")
        job = Job(rule=a.rule or next(iter(stages)), input=Files(flat(ins), ins), output=Files(flat(outs), outs),
                  params=params or {}, wildcards=_pairs(a.wildcard, "wildcard"))
    if a.threads:
        job.threads = a.threads
    if a.device:
        job.params["runtime"] = {**(job.params.get("runtime") or {}), "device": a.device}
    if a.log:
        job.log = None if a.log == "-" else a.log
    if a.rule:
        job.rule = a.rule
    if job.rule not in stages:
        raise SystemExit(f"advfeatures error: {module} runs rules {list(stages)}, not {job.rule!r}; pass --rule")
    try:  # before any folder is made
        check_job(job, allow_outside=a.allow_outside)
    except AdvFeaturesError as exc:
        raise SystemExit(f"advfeatures error: {exc}") from None
    for f in job.output:
        Path(f).parent.mkdir(parents=True, exist_ok=True)
    run(stages[job.rule], job, record=False, allow_outside=a.allow_outside)


def _load_yaml(path: str, what: str) -> Any:
    try:
        return yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise SystemExit(f"advfeatures error: {path}: cannot read the {what} ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}" if where else ""
        raise SystemExit(f"advfeatures error: {path}: not valid YAML{at}; fix or regenerate the {what}") from None


def load_record(path: str) -> Job:
    """The :class:`Job` of a record file; a malformed record is one line naming the file and key."""
    d = _load_yaml(path, "job record")
    if not isinstance(d, dict):
        raise SystemExit(f"advfeatures error: {path}: a job record must be a mapping, got {type(d).__name__}")
    for key in ("rule", "input", "output"):
        if key not in d:
            raise SystemExit(f"advfeatures error: {path}: job record has no key {key!r}; rerun the workflow "
                             f"to write it again")
    for key in ("input", "output"):
        v = d[key]
        if not (isinstance(v, dict) and isinstance(v.get("files"), list) and isinstance(v.get("names"), dict)):
            raise SystemExit(f"advfeatures error: {path}: job record key {key!r} must hold 'files' (a list) "
                             f"and 'names' (a mapping)")
    for key, kind in (("params", dict), ("wildcards", dict)):
        if d.get(key) is not None and not isinstance(d[key], kind):
            raise SystemExit(f"advfeatures error: {path}: job record key {key!r} must be a mapping, "
                             f"got {type(d[key]).__name__}")
    try:
        return Job.from_record(d)
    except (TypeError, ValueError) as exc:
        raise SystemExit(f"advfeatures error: {path}: malformed job record ({exc})") from None
