"""The training runtime: device, numerics, memory layout and processes, resolved from the params'
``runtime`` section (:class:`nml._infra.runtime_config.RuntimeConfig`) and the environment.

One process (the notebook's, the default) or one of ``torchrun``'s processes: ``torchrun`` sets
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`resolve_runtime` then joins the process group
(nccl on CUDA, gloo on CPU) and gives each process its GPU. The training loops ask the runtime for
an autocast context, a gradient scaler, the model to train (DDP-wrapped, compiled) and the
collectives they need; with one process and the defaults on CPU every one of these is the identity,
so the offline profiles compute what they computed before.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from nml._infra.runtime_config import RuntimeConfig
from nml._infra.training import channels_last

log = logging.getLogger("nml._infra.runtime")

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Runtime:
    """A resolved runtime: no ``auto`` left. Build it with :func:`resolve_runtime`."""

    device: torch.device
    precision: str = "fp32"
    channels_last: bool = True
    compile: bool = False
    sync_batchnorm: bool = False
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    per_device_batch_size: int | None = None
    checkpoint_every_steps: int = 0
    eval_subset: int | None = None
    streaming: bool | None = None  # None: by the data (on-disk datasets stream, tensors stay in memory)
    num_workers: int = 0
    pin_memory: bool = False
    persistent_workers: bool = True
    prefetch_factor: int = 4

    # ------------------------------------------------------------------ processes
    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """The body runs on rank 0 first, then on the other ranks: rank 0 fills a cache the others read."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()

    def all_reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        """Sum of ``values`` over the processes (float64 on CPU for gloo; in place on a copy)."""
        if not self.distributed:
            return values
        out = values.detach().to(self._collective_device(), torch.float64).clone()
        dist.all_reduce(out)
        return out.cpu()

    def all_gather_objects(self, value: Any) -> list[Any]:
        """Every process's ``value``, in rank order."""
        if not self.distributed:
            return [value]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, value)
        return out

    def _collective_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")

    # ------------------------------------------------------------------ numerics
    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.precision]

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision for the forward pass (nothing at fp32)."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        """fp16 needs loss scaling (its range underflows small gradients); bf16 and fp32 do not."""
        return torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None

    def accumulation(self, global_batch: int) -> tuple[int, int]:
        """(micro-batch per process, micro-batches per optimiser step) that make ``global_batch``.

        ``per_device_batch_size`` unset: one micro-batch of ``global_batch / world_size``. The global
        batch must split evenly, so every layout trains on the same batches."""
        per_rank, rest = divmod(global_batch, self.world_size)
        if rest:
            raise ValueError(f"batch_size {global_batch} does not split over {self.world_size} processes; "
                             "choose a multiple of runtime.nproc_per_node × runtime.nnodes")
        micro = self.per_device_batch_size or per_rank
        steps, rest = divmod(per_rank, micro)
        if rest or steps == 0:
            raise ValueError(f"runtime.per_device_batch_size={micro} must divide the per-process batch {per_rank} "
                             f"(batch_size {global_batch} over {self.world_size} processes)")
        return micro, steps

    # ------------------------------------------------------------------ the model
    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module the training step calls: SyncBatchNorm'd, DDP-wrapped and compiled as set.

        The optimiser keeps the parameters of ``model`` itself (DDP and compile share them)."""
        trained = model
        if self.distributed:
            if self.sync_batchnorm:
                trained = torch.nn.SyncBatchNorm.convert_sync_batchnorm(trained)
            ids = [self.local_rank] if self.device.type == "cuda" else None
            trained = torch.nn.parallel.DistributedDataParallel(trained, device_ids=ids)
        if self.compile:
            trained = torch.compile(trained)
        return trained

    def memory_format(self, x: Any) -> Any:
        return channels_last(x) if self.channels_last else x


def local() -> Runtime:
    """The one-process fp32 CPU runtime every offline computation used before (and tests use)."""
    return Runtime(device=torch.device("cpu"))


def _environment_ranks() -> tuple[int, int, int]:
    env = os.environ
    return int(env.get("RANK", 0)), int(env.get("LOCAL_RANK", 0)), int(env.get("WORLD_SIZE", 1))


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto``: bf16 on a CUDA device that supports it (else fp16), fp32 on CPU."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def resolve_runtime(cfg: RuntimeConfig | None, device: torch.device | str = "cpu", *, num_workers: int = 0) -> Runtime:
    """The runtime of this process: ``cfg``'s choices with ``auto`` resolved for ``device``, and the
    process group joined when ``torchrun`` started this process (``WORLD_SIZE`` > 1)."""
    cfg = cfg or RuntimeConfig()
    device = torch.device(device)
    rank, local_rank, world = _environment_ranks()
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        backend = cfg.backend if cfg.backend != "auto" else ("nccl" if device.type == "cuda" else "gloo")
        dist.init_process_group(backend=backend)
        log.info("rank %d/%d joined the %s process group", rank, world, backend)
    on_cuda = device.type == "cuda"
    return Runtime(
        device=device,
        precision=resolve_precision(cfg.precision, device),
        channels_last=cfg.channels_last,
        compile=on_cuda if cfg.compile == "auto" else bool(cfg.compile),
        sync_batchnorm=(on_cuda and world > 1) if cfg.sync_batchnorm == "auto" else bool(cfg.sync_batchnorm),
        rank=rank, local_rank=local_rank, world_size=world,
        per_device_batch_size=cfg.per_device_batch_size,
        checkpoint_every_steps=cfg.checkpoint_every_steps,
        eval_subset=cfg.eval_subset,
        streaming=None if cfg.streaming == "auto" else bool(cfg.streaming),
        num_workers=num_workers,
        pin_memory=on_cuda if cfg.pin_memory == "auto" else bool(cfg.pin_memory),
        persistent_workers=cfg.persistent_workers,
        prefetch_factor=cfg.prefetch_factor,
    )


_CURRENT: list[Runtime] = []


def current_runtime(device: torch.device | str | None = None) -> Runtime:
    """The runtime the training code of this process runs under (:func:`use_runtime`), else the
    one-process fp32 runtime on ``device`` (the offline default)."""
    if _CURRENT:
        return _CURRENT[-1]
    return Runtime(device=torch.device(device if device is not None else "cpu"))


@contextlib.contextmanager
def use_runtime(runtime: Runtime | None) -> Iterator[None]:
    """Run the body under ``runtime`` (None: leave the current one)."""
    if runtime is None:
        yield
        return
    _CURRENT.append(runtime)
    try:
        yield
    finally:
        _CURRENT.pop()
