rule train:
    """Standard or adversarial training of one method: model.pt, metrics.csv, epoch checkpoints."""
    input:
        data=data_h5(),
        script=script_input("train"),
    output:
        model=model_pt(),
        metrics=metrics_csv(),
        checkpoints=expand(
            checkpoint_pt(), epoch=checkpoint_epochs(), allow_missing=True
        ),
    log:
        log_file("train", "{dataset}_{arch}_{method}"),
    benchmark:
        bench_file("train", "{dataset}_{arch}_{method}")
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        **compute_resources("train"),
        gpu=gpus(),
    params:
        train=lambda wc: train_params(wc.method),
        arch_options=lambda wc: arch_options(wc.arch),
        runtime=runtime_params(),
        seed=SEED,
        resume_dir=lambda wc: resume_dir(wc.method, wc.dataset, wc.arch),
    script:
        "../workflow_scripts/train.py"


TARGETS += expand(metrics_csv(), dataset=DATASET, arch=ARCH, method=train_methods())
