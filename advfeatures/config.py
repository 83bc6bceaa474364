"""Config validation with messages that name the failing key.

The Snakefile calls :func:`validate_config` before including any rule, so a bad config is
rejected before any job runs.  Validation is Snakemake's own (``snakemake.utils.validate``:
the same ``$ref`` resolution and schema defaults); this module only turns its error into one
line ``invalid config: key <dotted.path>: <reason>`` (Snakemake's message names the value,
not where it is).
"""

from __future__ import annotations

import os


class ConfigError(ValueError):
    """A config rejected by the schema; the message is one line naming the key.

    Not an ``AdvFeaturesError`` on purpose: this module stays free of torch, because the
    Snakefile imports it and every ``snakemake`` call (dry runs too) would pay for the import.
    """

_WEAK = ("type", "const")  # in an anyOf, a branch failing only on these never got started


def _closest(err):
    """For anyOf/oneOf errors, the error of the branch that got deepest, if any did."""
    while err.context:
        sub = max(err.context, key=lambda e: (len(e.absolute_path), e.validator not in _WEAK))
        if len(sub.absolute_path) == len(err.absolute_path) and sub.validator in _WEAK:
            break
        err = sub
    return err


def describe(err) -> str:
    """One line for a ``jsonschema.ValidationError``: the dotted key path and the reason."""
    err = _closest(err)
    key = ".".join(str(k) for k in err.absolute_path) or "<top level>"
    return f"invalid config: key {key}: {err.message} (see schemas/ and config.yaml)"


def validate_config(config: dict, schema: str | os.PathLike) -> None:
    """Validate ``config`` against the JSON schema file ``schema`` (YAML; sibling ``$ref``s).

    Raises :class:`ConfigError` with :func:`describe`'s one line.
    """
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    try:
        validate(config, os.fspath(schema))
    except WorkflowError as exc:
        err = exc.__context__  # the jsonschema.ValidationError snakemake wrapped
        if not hasattr(err, "absolute_path"):
            raise
        raise ConfigError(describe(err)) from None
