"""Zhang et al. information planes, MI against epoch, distortion curves, tables, claims (report_mi)."""

from __future__ import annotations

import logging

from advfeatures import h5io
from advfeatures.reporting import mutual_info as report
from advfeatures.reporting import verdicts
from advfeatures.stages.job import Job, main

log = logging.getLogger("advfeatures")


def report_mi(job: Job) -> None:
    with verdicts.level(verdicts.settings(job.p.claims).alpha):  # every interval at report.claims.alpha
        _report_mi(job)


def _report_mi(job: Job) -> None:
    out = job.output
    arrays, attrs = h5io.read_h5(job.input.data, ["x_test"])
    claims = report.build_all(
        job.input.epochs,
        job.input.distortions,
        methods=list(job.p.methods),
        plane=out.plane, vs_epoch=out.vs_epoch, distortions_fig=out.distortions, claims_out=out.claims,
        final=(out.final, out.final_md), dist=(out.dist, out.dist_md),
        num_classes=len(h5io.read_attr_json(attrs, "classes")),
        cfg=verdicts.settings(job.p.claims), binary_share=verdicts.binary_share(arrays["x_test"]),
    )
    for c in claims:
        log.info("claim %s: measured %.3f %s %g -> %s (%s)", c.claim, c.measured, c.comparison, c.threshold,
                 c.verdict, c.reason)


STAGES = {"report_mi": report_mi}

if __name__ == "__main__":
    main(STAGES)
