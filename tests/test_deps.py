"""Rule inputs follow the import graph (advfeatures.deps); lazy imports are declared."""

from __future__ import annotations

from pathlib import Path

from advfeatures import deps

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "advfeatures"


def _name(f: Path) -> str:
    rel = f.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def test_every_lazy_import_is_covered():
    """A function-level import of advfeatures loads nothing outside the module's closure unless
    LAZY names the rule input that covers it (else editing that module would not rerun jobs)."""
    for f in sorted(PKG.rglob("*.py")):
        mod = _name(f)
        closure = deps.module_closure(mod)
        for target in deps.imports_of(f, lazy=True):
            if target not in closure:
                assert (mod, target) in deps.LAZY, f"{f}: lazy import of {target}; add it to deps.LAZY"


def test_lazy_table_is_current():
    for mod, target in deps.LAZY:
        assert target in deps.imports_of(deps.module_file(mod), lazy=True), (mod, target)


def test_script_inputs_follow_imports():
    files = {str(f.relative_to(PKG)) for f in deps.script_files(ROOT / "workflow_scripts" / "train.py")}
    assert {"training.py", "attacks/pgd.py", "models/checkpoint.py", "stages/train.py", "stages/job.py",
            "attacks/__init__.py", "__init__.py", "utils.py", "h5io.py"} <= files
    # train never loads CW, NRF, the bottleneck or reporting
    assert not files & {"attacks/cw.py", "attacks/nrf.py", "bottleneck.py", "reporting/__init__.py"}
    report = {str(f.relative_to(PKG)) for f in deps.script_files(ROOT / "workflow_scripts" / "train_synthetic.py")}
    assert not any(f.startswith("reporting/") for f in report)


def test_no_science_module_imports_training_or_reporting_for_helpers():
    for f in sorted(PKG.glob("*.py")) + sorted((PKG / "attacks").glob("*.py")) + sorted((PKG / "models").glob("*.py")):
        mod = _name(f)
        if mod in ("advfeatures.training",) or mod.startswith("advfeatures.reporting"):
            continue
        got = deps.imports_of(f) | deps.imports_of(f, lazy=True)
        assert "advfeatures.training" not in got and "advfeatures.reporting" not in got, f


def test_workflow_scripts_are_adapters():
    scripts = sorted((ROOT / "workflow_scripts").glob("*.py"))
    lines = [len(s.read_text().splitlines()) for s in scripts]
    assert sum(lines) / len(lines) <= 15, dict(zip([s.name for s in scripts], lines))
