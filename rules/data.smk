# the download needs the network, which compute nodes of a cluster often lack: run it where
# snakemake runs


localrules:
    prepare_data,


rule prepare_data:
    """Build data/{dataset}.h5 from the configured source (offline default: mnist5k)."""
    input:
        script=script_input("prepare_data"),
    output:
        data_h5(),
    log:
        log_file("prepare_data", "{dataset}"),
    benchmark:
        bench_file("prepare_data", "{dataset}")
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        dataset=PLAN.dataset_params(),
    script:
        "../workflow_scripts/prepare_data.py"
