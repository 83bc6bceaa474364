"""Measure how far float32 code paths of synthesis drift apart (docs/reproducibility.md).

The tiny case of tests/test_synthesis.py (LeNet on 12x12 images, 15 inversion steps of 0.2, 5
targeted PGD steps of 0.2) for 6 model seeds, synthesized with passes of 1-7 rows and in one
pass, with 1 and 2 threads, under three kernel sets (the machine's own, AVX2, SSE4.2: standing
in for other CPUs), and once in float64.  Prints the greatest difference from the one-pass,
one-thread, own-kernel float32 result per kind and variation.

    python tests/measure_rounding_spread.py   # six worker runs of about a minute each on 2 idle cores

Not a test (pytest does not collect it): its numbers justify the tolerance of
test_chunk_split_into_cpu_passes_matches_one_pass_within_rounding.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
KERNELS = {
    "own": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "DNNL_MAX_CPU_ISA": "AVX2"},
    "sse4.2": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "DNNL_MAX_CPU_ISA": "SSE41"},
}
PASS_ROWS = (1, 2, 3, 4, 5, 7, 256)  # 256: the chunk of 10 rows in one pass
SEEDS = range(6)


def worker(threads: int, out: str) -> None:
    import torch

    sys.path.insert(0, str(HERE))
    import test_synthesis as ts

    from advfeatures import synthesis as syn
    from advfeatures.utils import make_generator

    torch.set_num_threads(threads)
    res = {}
    for seed in SEEDS:
        for dtype in (torch.float32, torch.float64):
            model = ts.tiny_model(seed).to(dtype)
            x, y = ts.tiny_data(12, seed + 1)
            for kind in syn.KINDS:
                for rows in PASS_ROWS:
                    syn.CPU_ROWS_PER_PASS = rows
                    o = syn.synthesize_chunk(ts.cfg(kind), model, x.to(dtype), y, torch.arange(1, 11), ts.C,
                                             make_generator(5))
                    res[f"{seed}/{kind}/{str(dtype)[-7:]}/{rows}"] = o["x"].double().tolist()
    Path(out).write_text(json.dumps(res))


def main() -> None:
    import numpy as np

    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, env in KERNELS.items():
            for threads in (1, 2):
                out = f"{tmp}/{name}_{threads}.json"
                subprocess.run([sys.executable, __file__, "--worker", str(threads), out],
                               env=dict(os.environ, **env), check=True)
                runs[(name, threads)] = json.loads(Path(out).read_text())
    base = runs[("own", 1)]
    spread = defaultdict(float)
    for key, x in base.items():
        seed, kind, dtype, rows = key.split("/")
        if dtype != "float32":
            continue
        ref = np.array(base[f"{seed}/{kind}/float32/256"])
        passes = "all rows" if rows == "256" else rows
        for (name, threads), r in runs.items():
            label = f"{name} kernels, {threads} thread(s), passes of {passes}"
            spread[(kind, label)] = max(spread[(kind, label)], float(np.abs(np.array(r[key]) - ref).max()))
        d64 = float(np.abs(np.array(base[f"{seed}/{kind}/float64/{rows}"]) - np.array(x)).max())
        spread[(kind, "float32 vs float64")] = max(spread[(kind, "float32 vs float64")], d64)
    for kind in sorted({k for k, _ in spread}):
        rows = {v: d for (k, v), d in spread.items() if k == kind}
        print(f"{kind}: greatest difference {max(rows.values()):.3g}")
        for v, d in sorted(rows.items()):
            print(f"  {v}: {d:.3g}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        worker(int(sys.argv[2]), sys.argv[3])
    else:
        main()
