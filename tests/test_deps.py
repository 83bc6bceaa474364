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


def test_imports_are_parsed_again_after_an_edit(tmp_path):
    """imports_of caches each file's parse (a Snakemake parse asks for the same modules many
    times); an edited file is parsed again, not answered from the cache."""
    f = tmp_path / "script.py"
    f.write_text("import advfeatures.utils\n")
    assert deps.imports_of(f) == {"advfeatures", "advfeatures.utils"}
    f.write_text("import advfeatures.utils\nimport advfeatures.h5io\n")
    assert deps.imports_of(f) == {"advfeatures", "advfeatures.utils", "advfeatures.h5io"}


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


def test_attack_schema_matches_the_registry():
    """The config model (advfeatures.config): one model per registry type, accepting exactly its keys."""
    from advfeatures.attacks.suite import GENERIC_KEYS, REGISTRY
    from advfeatures.config import ATTACK_MODELS

    assert set(ATTACK_MODELS) == set(REGISTRY)
    for t, model in ATTACK_MODELS.items():
        assert set(model.model_fields) == set(REGISTRY[t].params) | set(GENERIC_KEYS), t
    for t, s in REGISTRY.items():  # lazily loaded modules are declared for the rule inputs
        for m in s.modules:
            assert any(target == m for _, target in deps.LAZY), (t, m)


def test_ib_settings_are_shared():
    """One IB settings type: both config blocks accept the thresholds the bottleneck knows."""
    import typing

    from advfeatures.bottleneck import THRESHOLDS
    from advfeatures.config import BottleneckBlock, NrfIB

    for block in (BottleneckBlock, NrfIB):
        assert typing.get_args(block.model_fields["threshold"].annotation) == THRESHOLDS


def test_method_enums_match_training():
    """Every schema's list of training methods is training.METHODS."""
    import yaml

    from advfeatures.training import METHODS

    def enums(node):
        if isinstance(node, dict):
            if "standard" in (node.get("enum") or []):
                yield tuple(node["enum"])
            for v in node.values():
                yield from enums(v)
        elif isinstance(node, list):
            for v in node:
                yield from enums(v)

    found = {f.name: list(enums(yaml.safe_load(f.read_text()))) for f in sorted((ROOT / "schemas").glob("*.yaml"))}
    assert sum(len(v) for v in found.values()) >= 3
    assert all(e == METHODS for v in found.values() for e in v), found
