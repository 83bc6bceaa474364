"""Plant each bug of the spot-check by hand, one at a time, run tests/test_oracles.py, restore.

    PYTHONPATH=. python benchmarks/planted/plant_bugs.py   # prints one line per bug: caught / MISSED

Each bug is a (file, original text, planted text) triple; the file's bytes are restored after
every run, also when interrupted.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUGS = [
    ("L2 projection without its clamp", "advfeatures/attacks/pgd.py",
     "return delta * torch.clamp(eps / n, max=1.0)", "return delta * (eps / n)"),
    ("one norm over the whole batch in _flat_norm", "advfeatures/attacks/pgd.py",
     "return t.flatten(1).norm(dim=1).clamp_min(_EPS).view(-1, *([1] * (t.dim() - 1)))",
     "return t.norm().clamp_min(_EPS).expand(t.shape[0]).reshape(-1, *([1] * (t.dim() - 1)))"),
    ("C&W keeps the last success, not the smallest L2", "advfeatures/attacks/cw.py",
     "better = ok & (l2 < best_l2)", "better = ok"),
    ("C&W binary search over c goes the wrong way", "advfeatures/attacks/cw.py",
     "c_hi = torch.where(found, torch.minimum(c_hi, cs), c_hi)\n                c_lo = torch.where(found, c_lo, torch.maximum(c_lo, cs))",
     "c_hi = torch.where(~found, torch.minimum(c_hi, cs), c_hi)\n                c_lo = torch.where(~found, c_lo, torch.maximum(c_lo, cs))"),
    ("IB KL with its arguments swapped", "advfeatures/bottleneck.py",
     "kl_gaussian(vc, sigma.view(m, c) ** 2)", "kl_gaussian(sigma.view(m, c) ** 2, vc)"),
    ("IB noise drawn per pixel, not per channel", "advfeatures/bottleneck.py",
     "torch.randn((m, c, 1, 1), generator=g", "torch.randn((m, c, *zc.shape[2:]), generator=g"),
    ("binning with round instead of floor", "advfeatures/mutual_info.py",
     "b = torch.floor(x[:, start : start + cols].double() / bin_width)",
     "b = torch.round(x[:, start : start + cols].double() / bin_width)"),
    ("two_proportions with a wrong n", "advfeatures/stats.py",
     "proportions_ztest([k1, k2], [n1, n2])", "proportions_ztest([k1, k2], [n1, n1])"),
    ("slope test degrees of freedom", "advfeatures/stats.py",
     "dof = len(x1) + len(x2) - 4", "dof = len(x1) + len(x2) - 2"),
    ("TRADES ignores beta", "advfeatures/training.py",
     "return F.cross_entropy(logits, y) + cfg.beta * kl, logits_adv",
     "return F.cross_entropy(logits, y) + kl, logits_adv"),
    ("TRADES KL direction swapped (outer loss)", "advfeatures/training.py",
     'kl = F.kl_div(F.log_softmax(logits_adv, 1), F.softmax(logits, 1), reduction="batchmean")',
     'kl = F.kl_div(F.log_softmax(logits, 1), F.softmax(logits_adv, 1), reduction="batchmean")'),
    ("TRADES KL direction swapped (inner maximisation)", "advfeatures/training.py",
     'return F.kl_div(F.log_softmax(logits, dim=1), p_clean, reduction="sum")',
     'return F.kl_div(p_clean.log(), F.softmax(logits, dim=1), reduction="sum")'),
    ("MART (1 - p_y) weight flipped", "advfeatures/training.py",
     "(kl * (1.0000001 - true_probs)).mean()", "(kl * true_probs).mean()"),
    ("stratified_subset gives the remainder to the smallest classes", "advfeatures/data.py",
     'for i in np.argsort(-frac, kind="stable")[:rest]:', 'for i in np.argsort(counts, kind="stable")[:rest]:'),
]


def main(tests: str = "tests/test_oracles.py") -> int:
    missed = 0
    for name, rel, old, new in BUGS:
        path = ROOT / rel
        before = path.read_bytes()
        text = before.decode()
        if text.count(old) != 1:
            print(f"NOT PLANTED  {name}: the original text is not in {rel} exactly once (code changed?)")
            missed += 1
            continue
        try:
            path.write_text(text.replace(old, new))
            proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:xdist",
                                   "-p", "no:cacheprovider", tests], cwd=ROOT, capture_output=True, text=True)
        finally:
            path.write_bytes(before)
        caught = proc.returncode != 0
        missed += not caught
        last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        print(f"{'caught' if caught else 'MISSED':7}  {name}  ({rel}; {last})")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
