"""Stages: one module per rule family; each reads a job's inputs, calls the science, writes
its outputs. The workflow scripts are adapters that hand Snakemake's job to a stage, and every
stage also runs by hand (``python -m advfeatures.stages.<module> --job FILE`` or explicit
``--input``/``--output``/``--params``/``--wildcard`` flags; see :mod:`.job`).

========================  =====================================================
module                    rules
========================  =====================================================
:mod:`.data`              prepare_data
:mod:`.train`             train
:mod:`.synthesize`        synthesize, train_synthetic, ilyas_eval_reference
:mod:`.attack`            attack, attack_sweep
:mod:`.distill`           distill
:mod:`.mutual_info`       estimate_mi, merge_mi
:mod:`.mi_distortions`    mi_distortions
:mod:`.report`            report helpers; one module per study under ``report_*``
========================  =====================================================

The package imports none of its modules (rule inputs follow each script's import graph).
"""
