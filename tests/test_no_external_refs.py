"""No tracked file outside tests/ and benchmarks/ names a machine path, a document outside the
repository or an issue number: a user has none of them.  The project carries every fact it
uses (published numbers: advfeatures/published/*.yaml with their citations).

Every tracked file is read (``git ls-files``; without git, every file below the repository
except the ignored output folders); binary files are checked for the paths only, since an
issue-number pattern matches random bytes.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ALLOWED_DIRS = ("tests/", "benchmarks/")
PATHS = re.compile(
    r"(?<![\w.])/(?:work|tmp|home|Users|scratch)/"  # machine paths
    r"|\breference\.md\b"  # the developers' notes outside the repository
    r"|(?<![\w-])shared/"  # the developers' shared folder
)
ISSUES = re.compile(
    r"(?<![\w&#/])#\d{1,5}\b"  # #23 (six-digit hex colours do not match)
    r"|\b(?:issue|PR|pull request)s?\s+#?\d+\b"  # issue 13, PR 4
    r"|\bthe issue note\b",
    re.IGNORECASE,
)
NOT_TRACKED = {".git", ".venv", ".snakemake", "results", "data", "__pycache__", ".pytest_cache", ".ruff_cache"}


def tracked_files() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True)
        return [f for f in out.stdout.decode().split("\0") if f]
    except (OSError, subprocess.CalledProcessError):
        return [str(p.relative_to(REPO)) for p in REPO.rglob("*")
                if p.is_file() and not NOT_TRACKED & set(p.relative_to(REPO).parts)]


def offences(text: str, binary: bool) -> list[str]:
    hits = []
    for n, line in enumerate(text.splitlines(), 1):
        for pat in (PATHS,) if binary else (PATHS, ISSUES):
            hits += [f"line {n}: {m.group(0)!r} in {line.strip()[:120]!r}" for m in pat.finditer(line)]
    return hits


def test_patterns_catch_what_they_must_and_spare_colours():
    bad = ["see /work/shared/reference.md", "(issue 13)", "fixed in #23.", "root: ../shared/data/x",
           "/tmp/run/x", "as the issue note says", "Issues 4 and 5"]
    for text in bad:
        assert offences(text, False), text
    good = ["colour '#1f77b4' or '#000000'", "see docs/claims.md", "shape [N, C, H, W]",
            "Table 3 column", "https://arxiv.org/abs/2204.02735", "a shared folder"]
    for text in good:
        assert not offences(text, False), text
    assert offences("x /work/y", True) and not offences("# 12 and #12", True)


def test_no_machine_paths_external_documents_or_issue_numbers():
    files = tracked_files()
    assert len(files) > 50, "found too few files: is this the repository?"
    bad = {}
    for f in files:
        if f.startswith(ALLOWED_DIRS):
            continue
        path = REPO / f
        if not path.is_file():  # deleted in the work tree but still in the index
            continue
        data = path.read_bytes()
        binary = b"\0" in data
        hits = offences(data.decode("utf-8", errors="replace"), binary)
        if hits:
            bad[f] = hits
    assert not bad, "files name a machine path, an outside document or an issue number:\n" + "\n".join(
        f"{f}: {h}" for f, hits in bad.items() for h in hits)


@pytest.mark.parametrize("paper", ["ilyas2019", "kim2021", "zhang2022"])
def test_every_published_file_is_packaged(paper):
    pyproject = (REPO / "pyproject.toml").read_text()
    assert "published/*.yaml" in pyproject
    assert (REPO / "advfeatures" / "published" / f"{paper}.yaml").is_file()
