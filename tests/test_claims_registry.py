"""The claims registry (advfeatures/reporting/claims.yaml) and docs/claims.md generated from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from advfeatures.reporting import Claim, verdicts
from advfeatures.reporting import claims as registry
from advfeatures.utils import AdvFeaturesError

ROOT = Path(__file__).resolve().parents[1]


def test_docs_claims_md_is_generated_from_the_registry():
    text = (ROOT / "docs" / "claims.md").read_text()
    assert text == registry.markdown(), "docs/claims.md is stale: python -m advfeatures.reporting.claims > docs/claims.md"


def test_every_entry_names_source_test_min_effect_and_preconditions():
    reg = registry.registry()
    assert len(reg) >= 25
    for key, e in reg.items():
        assert key.split(".")[0] in ("ilyas", "bottleneck", "attacks", "mutual_info"), key
        for field in ("source", "paper_says", "published", "claim", "test"):
            assert str(e[field]).strip(), (key, field)
        assert e["preconditions"], key
        if not e.get("control"):
            assert e["paper_says"] != "-" and e["source"] != "-", key


def test_registry_and_config_min_effects_agree():
    """Every min effect the registry names exists in config.yaml, and every one in config.yaml is
    named by some claim (no orphan key on either side)."""
    cfg = verdicts.settings()
    named = {str(e["min_effect"]["config"]) for e in registry.registry().values()} - {"-"}
    in_config = {f"{study}.{name}" for study, d in cfg.claims.items() for name in d}
    assert named == in_config


def test_a_claim_with_an_unknown_key_is_refused():
    with pytest.raises(AdvFeaturesError, match="not in claims.yaml"):
        Claim("ilyas", "c", 1.0, ">", 0.0, key="ilyas.nope")
    assert Claim("ilyas", "c", 1.0, ">", 0.0, key="ilyas.d_r_vs_d").key == "ilyas.d_r_vs_d"
