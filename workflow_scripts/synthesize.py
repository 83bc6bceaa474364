"""Rule synthesize: one Ilyas et al. synthetic training set from the whole training split."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import run, start  # noqa: E402

from advfeatures import h5io  # noqa: E402
from advfeatures.data import load_dataset  # noqa: E402
from advfeatures.synthesis import SynthesisConfig, clear_state, synthesize  # noqa: E402
from advfeatures.training import model_from_checkpoint  # noqa: E402


def main(snakemake):
    log, device = start(snakemake)
    kind = snakemake.wildcards.kind
    p = dict(snakemake.params.synthesis)
    cfg = SynthesisConfig.from_dict(kind, p, seed=snakemake.params.seed)
    data = load_dataset(snakemake.input.data)
    model = model_from_checkpoint(snakemake.input.model, device)
    log.info("synthesizing %s from %s (%d training images)", kind, snakemake.input.model, len(data.x_train))
    arrays = synthesize(
        cfg, model, data.x_train, data.y_train, data.num_classes, state_dir=snakemake.params.resume_dir
    )
    hit = float((arrays["source_pred"] == arrays["y"]).float().mean())
    log.info(
        "%s: mean relative representation distance %.4f; source model predicts the label on %.1f%%",
        kind, float(arrays["rep_distance"].mean()), 100 * hit,
    )
    h5io.write_h5(
        snakemake.output[0],
        arrays,
        kind="synthetic",
        producer="rule synthesize (advfeatures.synthesis.synthesize)",
        params={**cfg.relevant(), "source_method": p["source_method"]},
        attrs={
            "synthetic_kind": kind,
            "source_model": snakemake.input.model,
            "source_method": p["source_method"],
            "dataset": data.name,
        },
    )
    clear_state(snakemake.params.resume_dir)
    log.info("wrote %s", snakemake.output[0])


run(main, snakemake)  # noqa: F821
