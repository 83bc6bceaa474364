"""KDE mutual information: the chunked estimator against the plain published-style reference.

At N = 5000 samples and two widths (d = 4704, LeNet-5's conv1, and a wider layer) both
estimators compute the upper and lower bounds of I(X;T) and I(T;Y) of the same activations.
The reference (``mutual_info.kde_mi_reference``) does what Kolchinsky's / Saxe's code does:
one full N x N distance matrix per entropy term (all samples and each class, for each bound).
Each measurement runs in a fresh interpreter, so the peak resident memory it reports
(``ru_maxrss``, which also sees torch's allocations) belongs to that estimator alone; the
baseline RSS of the interpreter with torch imported is reported beside it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import machine, run_in_subprocess  # noqa: E402

CHILD = """
import json, resource, time, torch
torch.set_num_threads({threads})
from advfeatures import mutual_info as mi
g = torch.Generator().manual_seed(0)
# ReLU-like activations at the scale of a trained layer: nonzero but finite KDE MI
t = torch.relu(torch.randn({n}, {d}, generator=g)) * ({scale} / {d} ** 0.5)
y = torch.randint(0, 10, ({n},), generator=g)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
fn = {{"chunked": lambda: mi.kde_mi(t, y, 0.1), "reference": lambda: mi.kde_mi_reference(t, y, 0.1)}}["{which}"]
t0 = time.perf_counter(); out = fn(); sec = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"seconds": sec, "peak_rss_mib": peak, "baseline_rss_mib": base, "result": out}}))
"""


def run(n: int = 5000, dims: tuple[int, ...] = (4704, 16384), threads: int = 1, scale: float = 0.8) -> dict:
    """Time and peak memory of both estimators per width; returns a dict (also for ``make bench``)."""
    rows = []
    for d in dims:
        res = {}
        for which in ("chunked", "reference"):
            code = CHILD.format(n=n, d=d, threads=threads, which=which, scale=scale)
            res[which] = json.loads(run_in_subprocess(code).strip().splitlines()[-1])
        c, r = res["chunked"], res["reference"]
        agree = max(abs(a - b) for k in c["result"] for a, b in zip(c["result"][k], r["result"][k]))
        rows.append({
            "n": n, "d": d,
            "chunked_s": round(c["seconds"], 3), "reference_s": round(r["seconds"], 3),
            "speedup": round(r["seconds"] / c["seconds"], 2),
            "chunked_peak_mib": round(c["peak_rss_mib"]), "reference_peak_mib": round(r["peak_rss_mib"]),
            "baseline_mib": round(c["baseline_rss_mib"]),
            "max_abs_diff_bits": agree,
            "kde_upper_bits": [round(v, 4) for v in c["result"]["kde_upper"]],
        })
    return {"name": "mutual_info KDE: chunked vs plain reference", "machine": machine(), "rows": rows}


def main() -> None:
    out = run()
    print(out["name"])
    for k, v in out["machine"].items():
        print(f"  {k}: {v}")
    for r in out["rows"]:
        print(
            f"N={r['n']} d={r['d']}: chunked {r['chunked_s']:.2f} s, peak {r['chunked_peak_mib']} MiB | "
            f"reference {r['reference_s']:.2f} s, peak {r['reference_peak_mib']} MiB | "
            f"reference/chunked time {r['speedup']:.2f}x | baseline RSS {r['baseline_mib']} MiB | "
            f"max |diff| {r['max_abs_diff_bits']:.1e} bits | I_XT, I_TY upper {r['kde_upper_bits']}"
        )


if __name__ == "__main__":
    main()
