"""Rule ilyas_report: table of the synthetic sets beside D, the sample figure and the claims."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import pandas as pd  # noqa: E402
from _common import run, start  # noqa: E402

from advfeatures import h5io  # noqa: E402
from advfeatures.data import load_dataset  # noqa: E402
from advfeatures.reporting import (  # noqa: E402
    ilyas,
    matplotlib_headless,
    save_figure,
    verdicts,
    write_claims,
    write_table,
)
from advfeatures.utils import derive_seed  # noqa: E402


def main(snakemake):
    log, _ = start(snakemake)
    matplotlib_headless()
    p = snakemake.params
    data = load_dataset(snakemake.input.data)
    evals = pd.concat([pd.read_csv(f) for f in snakemake.input.evals], ignore_index=True)
    reference = pd.concat([pd.read_csv(f) for f in snakemake.input.reference], ignore_index=True)
    sets, stats = {}, {}
    for path in snakemake.input.synthetic:
        arrays, attrs = h5io.read_h5(path, kind="synthetic")
        kind = str(attrs["synthetic_kind"])
        sets[kind] = arrays
        stats[kind] = {
            "label_hit": float((arrays["source_pred"] == arrays["y"]).mean()),
            "rep_distance": float(arrays["rep_distance"].mean()),
        }
    with_pub = ilyas.published_applies(p.dataset, p.arch, p.eval["attacks"])
    df = ilyas.datasets_table(evals, reference, stats, robust_method=p.robust_method, with_published=with_pub)
    note = (
        f"Fresh {p.arch} models trained by standard training on each set, evaluated on the ORIGINAL test set "
        f"({int(evals['n_test'].iloc[0])} rows); robust acc under PGD "
        + ", ".join(f"{k}: eps {a['eps']}, {a['steps']} steps" for k, a in p.eval["attacks"].items())
        + ". 'source model agrees with label': share of synthetic images that the model they were made "
        "from assigns their training label. "
        + ("Published: Ilyas et al. 2019, CIFAR-10 ResNet-50, L2 eps 0.25." if with_pub
           else "Published columns empty: this run is not the paper's setting (CIFAR-10, ResNet-50, L2 eps 0.25).")
    )
    write_table(df, snakemake.output.table, snakemake.output.table_md,
                title=f"Ilyas et al. datasets on {p.dataset} / {p.arch}", note=note)
    first = next(iter(sets.values()))
    rows = ilyas.sample_rows(first["source_index"], first["y_source"], 1, derive_seed(p.seed, "ilyas_samples"))
    fig = ilyas.samples_figure(data.x_train.numpy(), sets, rows, data.classes)
    save_figure(fig, snakemake.output.samples)
    cfg = verdicts.settings(p.claims)
    cl = write_claims(ilyas.claims(evals, reference, data.num_classes, cfg), snakemake.output.claims)
    log.info("table:\n%s", df.to_string(index=False))
    log.info("claims:\n%s", cl.to_string(index=False))


run(main, snakemake)  # noqa: F821
