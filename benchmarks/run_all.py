"""`make bench`: run every benchmark in one process group and write benchmarks/results.md.

Each benchmark measures ours and a reference in the same run and reports the ratio.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _util import machine  # noqa: E402

BENCHMARKS = ["bench_training", "bench_attacks", "bench_mi", "bench_synthesis", "bench_workflow"]


def _fmt(value) -> str:
    if isinstance(value, dict):
        return "<br>".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    return str(value)


def main(names: list[str]) -> int:
    sections, failed = [], 0
    for name in names:
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        try:
            result = importlib.import_module(name).run()
        except Exception:  # noqa: BLE001 - record and continue with the other benchmarks
            failed += 1
            result = {"error": traceback.format_exc(limit=3)}
        result["wall_s"] = round(time.perf_counter() - t0, 1)
        print(json.dumps(result, indent=1, default=str), flush=True)
        sections.append((name, result))
    lines = ["# Benchmark results", "", f"Written by `make bench` on {time.strftime('%Y-%m-%d %H:%M')}.", ""]
    lines += ["| machine | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in machine().items()] + [""]
    for name, result in sections:
        lines += [f"## {name}", "", "| figure | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in result.items()] + [""]
    (HERE / "results.md").write_text("\n".join(lines))
    print(f"wrote {HERE / 'results.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or BENCHMARKS))
