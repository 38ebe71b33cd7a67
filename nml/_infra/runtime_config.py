"""The params sections of how work runs (not what it computes): ``runtime`` (precision, memory
layout, compilation, processes and data loading of the training loops of chapters 01 and 04) and
``executor`` (where the independent fits of chapters 02–05 run: joblib on this machine, or a Ray
cluster).

Every default keeps the offline profiles as they were: fp32, one process, in-memory tensors,
joblib. ``auto`` values resolve by device (:mod:`nml._infra.runtime`): on for CUDA, off on CPU.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from nml._infra.schema import NonNegativeFloat, PositiveFloat, PositiveInt, Section

Auto = Literal["auto"]


class RuntimeConfig(Section):
    """How the training loops run: numerics, memory layout, processes, data loading."""

    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        default="auto", description="autocast dtype; auto = bf16 on CUDA (fp16 where bf16 is unsupported), fp32 on CPU")
    channels_last: bool = Field(
        default=True, description="NHWC convolutions (faster on CPU oneDNN and on CUDA tensor cores)")
    compile: Auto | bool = Field(default="auto", description="torch.compile the model; auto = on for CUDA, off on CPU")
    launcher: Literal["local", "torchrun"] = Field(
        default="local", description="local: train in the notebook's process; torchrun: launch `nml pretrain` / "
                                     "`nml finetune` with torchrun and read the checkpoint it caches")
    nproc_per_node: PositiveInt = 1
    nnodes: PositiveInt = 1
    rdzv_endpoint: str | None = Field(default=None, description="host:port of the rendezvous (node 0) when nnodes > 1")
    backend: Literal["auto", "nccl", "gloo"] = Field(default="auto", description="auto = nccl on CUDA, gloo on CPU")
    sync_batchnorm: Auto | bool = Field(
        default="auto", description="SyncBatchNorm across processes; auto = on for CUDA with more than one process "
                                    "(torch's SyncBatchNorm has no CPU kernel)")
    per_device_batch_size: PositiveInt | None = Field(
        default=None, description="micro-batch per process; null = global batch / processes. Smaller values "
                                  "accumulate gradients to reach the params' global batch")
    checkpoint_every_steps: Annotated[int, Field(ge=0)] = Field(
        default=0, description="also save a resumable checkpoint every N optimiser steps (0: at epoch ends only)")
    eval_subset: PositiveInt | None = Field(
        default=None, description="test images scored after each epoch (a fixed stratified subset); null = all. "
                                  "The full test set is always scored at the end")
    streaming: Auto | bool = Field(
        default="auto", description="read training data through a DataLoader; auto = for on-disk datasets, "
                                    "in-memory tensors as they are")
    pin_memory: Auto | bool = Field(default="auto", description="auto = on for CUDA")
    persistent_workers: bool = True
    prefetch_factor: PositiveInt = 4

    @model_validator(mode="after")
    def _multi_node_needs_rendezvous(self) -> RuntimeConfig:
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise ValueError("runtime.rdzv_endpoint: nnodes > 1 needs the host:port of node 0 (e.g. node001:29500)")
        return self

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nnodes


class ExecutorConfig(Section):
    """Where the cached parallel job maps (the fit grids of chapters 02–05) run."""

    kind: Literal["joblib", "ray"] = Field(default="joblib", description="joblib: worker processes on this machine; "
                                                                         "ray: tasks on a Ray cluster")
    address: str | None = Field(default=None, description="Ray cluster address; null = RAY_ADDRESS, else a local Ray")
    cpus_per_job: PositiveFloat = 1.0
    gpus_per_job: NonNegativeFloat = Field(default=0.0, description="GPU fraction each job asks Ray for")
    retries: Annotated[int, Field(ge=0)] = Field(default=1, description="a failed job is run again this many times, "
                                                                         "then named in the error")
