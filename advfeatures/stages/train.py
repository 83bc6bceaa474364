"""Stage train: one training method on the prepared dataset (model, metrics, epoch checkpoints)."""

from __future__ import annotations

import logging

from advfeatures.data import load_dataset
from advfeatures.stages.job import Job, main
from advfeatures.training import TrainConfig
from advfeatures.training import train as train_model

log = logging.getLogger("advfeatures")


def train_config(job: Job, train_params: dict, arch: str, arch_options: dict) -> TrainConfig:
    """The :class:`TrainConfig` of a job: its training slice, architecture, seed and runtime."""
    rt = job.params["runtime"]
    return TrainConfig.from_dict({
        **train_params, "arch": arch, "arch_options": dict(arch_options), "seed": job.seed,
        "device": str(job.device()), "precision": rt["precision"], "channels_last": rt["channels_last"],
    })


def train(job: Job) -> None:
    p = dict(job.params["train"])
    epochs = sorted(set(int(e) for e in p["checkpoint_epochs"]))
    cfg = train_config(job, p, job.wildcards["arch"], job.params["arch_options"])
    data = load_dataset(job.input.data)
    train_model(
        cfg, data, model_out=job.output.model, metrics_out=job.output.metrics,
        checkpoint_outs=dict(zip(epochs, job.output.checkpoints)), state_dir=job.params["resume_dir"],
    )
    log.info("wrote %s", job.output.model)


STAGES = {"train": train}

if __name__ == "__main__":
    main(STAGES)
