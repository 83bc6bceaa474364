# the download needs the network, which compute nodes of a cluster often lack: run it where
# snakemake runs


localrules:
    prepare_data,


rule prepare_data:
    """Build data/{dataset}_<key>.h5 from the configured source (offline default: mnist5k);
    key: a hash of the dataset settings, so runs that agree on them share the file."""
    input:
        script=script_input("prepare_data"),
    output:
        P.data_h5(),
    log:
        P.data_log(),
    benchmark:
        P.data_log(ext="tsv")
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
