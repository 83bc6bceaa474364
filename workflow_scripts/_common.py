"""Helpers shared by the thin workflow scripts: logging, threads, device, one-line errors."""

from __future__ import annotations

import sys
from pathlib import Path

# the checkout's package, whose files the rules list as inputs (lib() in rules/common.smk); also
# what makes `--software-deployment-method conda` work, whose environment lacks advfeatures
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from advfeatures.utils import AdvFeaturesError, resolve_device, set_threads, setup_logging  # noqa: E402


def start(snakemake):
    """Set up logging to the rule's log file and torch threads; return (logger, device)."""
    log = setup_logging(snakemake.log[0] if snakemake.log else None)
    set_threads(snakemake.threads)
    runtime = snakemake.params.get("runtime", {}) if hasattr(snakemake.params, "get") else {}
    device = resolve_device(runtime.get("device", "auto")) if runtime else resolve_device("auto")
    return log, device


def run(main, snakemake):
    """Run ``main(snakemake)``; an AdvFeaturesError exits with its one-line message."""
    try:
        main(snakemake)
    except AdvFeaturesError as exc:
        print(f"advfeatures error: {exc}", file=sys.stderr)
        if snakemake.log:
            with open(snakemake.log[0], "a") as f:
                f.write(f"advfeatures error: {exc}\n")
        sys.exit(1)
