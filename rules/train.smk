rule train:
    """Standard or adversarial training of one method: model.pt, metrics.csv, epoch checkpoints."""
    input:
        data=data_h5(),
        script=script_input("train"),
    output:
        model=model_pt(),
        metrics=metrics_csv(),
        checkpoints=expand(
            checkpoint_pt(), epoch=PLAN.checkpoint_epochs(), allow_missing=True
        ),
    log:
        log_file("train", "{dataset}_{arch}_{method}"),
    benchmark:
        bench_file("train", "{dataset}_{arch}_{method}")
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
        seed=SEED,
        resume_dir=lambda wc: resume_dir(wc.method, wc.dataset, wc.arch),
    script:
        "../workflow_scripts/train.py"


rule convert_pretrained:
    """A pretrained checkpoint (training.methods.<m>.pretrained) as this pipeline's model.pt.

    Health-checked on the prepared test set; metrics.csv holds training's evaluation (epoch 0).
    """
    input:
        source=lambda wc: PLAN.pretrained_source(wc.method),
        data=data_h5(),
        script=script_input("convert_pretrained"),
    output:
        model=model_pt(),
        metrics=metrics_csv(),
    log:
        log_file("convert_pretrained", "{dataset}_{arch}_{method}"),
    benchmark:
        bench_file("convert_pretrained", "{dataset}_{arch}_{method}")
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
        seed=SEED,
    script:
        "../workflow_scripts/convert_pretrained.py"


TARGETS += expand(
    metrics_csv(), dataset=DATASET, arch=ARCH, method=PLAN.train_methods()
)
