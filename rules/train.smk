rule train:
    """Standard or adversarial training of one method: model.pt, metrics.csv, epoch checkpoints."""
    input:
        data=P.data_h5(),
        script=script_input("train"),
    output:
        model=P.model_pt(),
        metrics=P.metrics_csv(),
        checkpoints=expand(
            P.checkpoint_pt(), epoch=PLAN.checkpoint_epochs(), allow_missing=True
        ),
    log:
        P.log_file("train", tag("{dataset}_{arch}_{method}")),
    benchmark:
        P.bench_file("train", tag("{dataset}_{arch}_{method}"))
    wildcard_constraints:
        method=method_regex(PLAN.trained_methods()),
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        **PLAN.resources("train"),
        gpu=PLAN.gpus(),
    params:
        train=lambda wc: PLAN.train_params(wc.method),
        arch_options=lambda wc: PLAN.arch_options(wc.arch),
        runtime=RUNTIME,
        seed=PLAN.seed_of,
        resume_dir=lambda wc: P.resume_dir(
            wc.method, rep=wc.rep, dataset=wc.dataset, arch=wc.arch
        ),
    script:
        "../workflow_scripts/train.py"


rule convert_pretrained:
    """A pretrained checkpoint (training.methods.<m>.pretrained) as this pipeline's model.pt.

    Health-checked on the prepared test set; metrics.csv holds training's evaluation (epoch 0).
    """
    input:
        source=lambda wc: PLAN.pretrained_source(wc.method),
        data=P.data_h5(),
        script=script_input("convert_pretrained"),
    output:
        model=P.model_pt(),
        metrics=P.metrics_csv(),
    log:
        P.log_file("convert_pretrained", tag("{dataset}_{arch}_{method}")),
    benchmark:
        P.bench_file("convert_pretrained", tag("{dataset}_{arch}_{method}"))
    wildcard_constraints:
        method=method_regex(PLAN.pretrained_methods()),
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        **PLAN.resources("train"),
        gpu=PLAN.gpus(),
    params:
        convert=lambda wc: PLAN.pretrained_params(wc.method),
        arch_options=lambda wc: PLAN.arch_options(wc.arch),
        runtime=RUNTIME,
        seed=PLAN.seed_of,
    script:
        "../workflow_scripts/convert_pretrained.py"


TARGETS += expand(
    P.metrics_csv(), dataset=DATASET, arch=ARCH, method=PLAN.train_methods(), rep=REPS
)
