"""Tables and claims over a run's replicates (combine_table, combine_claims).

Each replicate's report stages write ``rep<r>/tables`` and ``rep<r>/claims``; these stages put
them together at the top of the run folder (:mod:`advfeatures.replicates` does the statistics).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from advfeatures import reporting
from advfeatures.compare import table_keys
from advfeatures.reporting import write_claims, write_markdown
from advfeatures.reporting.replicates import combine_claims as combine_replicate_claims
from advfeatures.reporting.replicates import combine_tables as combine_replicate_tables
from advfeatures.reporting.replicates import headline_rows, numeric_values
from advfeatures.stages.job import Job, main
from advfeatures.utils import atomic_write

log = logging.getLogger("advfeatures")


def _title(md_path: str) -> str | None:
    """The title of a replicate's Markdown view."""
    return next((ln[4:] for ln in Path(md_path).read_text().splitlines() if ln.startswith("### ")), None)


def combine_table(job: Job) -> None:
    """One table over the run's replicates: the CSV has every replicate's rows and their means;
    the Markdown view is the replicate's own view (one replicate) or the mean rows (several)."""
    name, reps, alpha = job.wildcards["table"], [str(r) for r in job.p.replicates], float(job.p.alpha)
    files = list(job.input.tables)
    frames = [pd.read_csv(f) for f in files]
    table = combine_replicate_tables(frames, name, reps, alpha=alpha)
    with atomic_write(job.output.csv) as tmp:
        table.to_csv(tmp, index=False)
    rep_md = str(Path(files[0]).with_suffix(".md"))
    if len(reps) == 1:
        text = Path(rep_md).read_text().rstrip() + (
            f"\n\nReplicate {reps[0]} only: one trained model set, so no training-seed variance is measured; "
            "the intervals cover the test rows drawn.\n")
        with atomic_write(job.output.md) as tmp:
            tmp.write_text(text)
    else:
        keys = [k for k in table_keys(name, frames[0]) if k != "replicate"]
        values = numeric_values(frames[0], keys)
        view = headline_rows(table)[[*keys, *values, *(f"{v} {b}" for v in values for b in ("lo", "hi")
                                                        if f"{v} {b}" in table)]]
        shown = [*keys, *values][: reporting.MAX_MD_COLUMNS]
        hidden = [c for c in [*keys, *values] if c not in shown]
        note = (f"Mean over {len(reps)} replicates with its between-replicate {100 * (1 - alpha):g}% t interval "
                f"({len(reps) - 1} df), cut to the range of an accuracy; where every replicate gave the same value, "
                f"their own intervals combined; timings without interval. Each replicate's rows and the standard deviations (`X sd`): the CSV; "
                f"each replicate's own view: `rep<r>/tables/{name}.md`.")
        if hidden:
            note += f" Columns left to the CSV: {', '.join(map(str, hidden))}."
        write_markdown(view, job.output.md, title=_title(rep_md), note=note, drop=hidden)
    log.info("%s: %d replicate(s), %d rows", name, len(reps), len(table))


def combine_claims(job: Job) -> None:
    """One stage's claims tested over the run's replicates."""
    reps, alpha = [str(r) for r in job.p.replicates], float(job.p.alpha)
    claims = combine_replicate_claims([pd.read_csv(f) for f in job.input.claims], reps, alpha=alpha)
    df = write_claims(claims, job.output[0])
    log.info("%s: %d claims over %d replicate(s): %s", job.wildcards["stage"], len(df), len(reps),
             df["verdict"].value_counts().to_dict())


STAGES = {"combine_table": combine_table, "combine_claims": combine_claims}

if __name__ == "__main__":
    main(STAGES)
