"""Rule report_mi: information planes, MI against epoch, distortion curves, tables and claims."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import run, start  # noqa: E402

from advfeatures import h5io  # noqa: E402
from advfeatures.reporting import mutual_info as report  # noqa: E402
from advfeatures.reporting import verdicts  # noqa: E402


def main(snakemake):
    log, _ = start(snakemake)
    out = snakemake.output
    claims = report.build_all(
        snakemake.input.epochs,
        snakemake.input.distortions,
        methods=list(snakemake.params.methods),
        plane=out.plane, vs_epoch=out.vs_epoch, distortions_fig=out.distortions, claims_out=out.claims,
        final=(out.final, out.final_md), dist=(out.dist, out.dist_md),
        num_classes=len(h5io.read_attr_json(h5io.read_h5(snakemake.input.data, [])[1], "classes")),
        cfg=verdicts.settings(snakemake.params.claims),
    )
    for c in claims:
        log.info("claim %s: measured %.3f %s %g -> %s (%s)", c.claim, c.measured, c.comparison, c.threshold,
                 c.verdict, c.reason)


run(main, snakemake)  # noqa: F821
