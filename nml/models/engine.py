"""The one training engine under every training loop (pre-training in chapter 01, full fine-tuning
and TURN in chapter 04): where batches come from, how one optimiser step is taken, how a model is
evaluated, on one process or many.

Batches come from one of two sources with one interface (:func:`batch_source`):

* :class:`InMemoryBatches` — the offline profiles' tensors: a seeded permutation per epoch, the
  batch gathered by index and augmented as a whole (exactly the loops nml always had, so the
  offline profiles compute the same numbers).
* :class:`StreamingBatches` — datasets on disk (ImageFolder, torchvision sets) read through a
  ``torch.utils.data.DataLoader``: worker processes, pinned memory, persistent workers, prefetch,
  and a :class:`~torch.utils.data.DistributedSampler` that gives each process its share. Every
  random choice of a sample (its crop, its flip, timm's augmentations) is seeded by
  ``(seed, epoch, index)``, so the batches are the same with 0 or 8 workers and on 1 or 16
  processes; a resumed run skips the steps it already took without reading their images.

A source yields, per optimiser step, this process's micro-batches of the step's global batch.
:class:`Stepper` takes the step: autocast, gradient accumulation (``no_sync`` on all but the last
micro-batch), the fp16 gradient scaler, DDP's gradient average; each micro-batch's loss is
weighted by its share of the global batch, so the gradient is the global batch's mean on any
layout. :func:`gather_outputs` evaluates a model on every sample, each process a contiguous
share, and gives every process all outputs in order.
"""

from __future__ import annotations

import contextlib
import random
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from nml._infra.runtime import Runtime
from nml._infra.training import epoch_generator

MicroBatch = tuple[torch.Tensor, torch.Tensor]
"""(images of this process's micro-batch, their indices into the dataset)."""

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
"""A batch augmentation ``augment(batch, generator)`` (:func:`nml._infra.training.random_crop_flip`)."""


# ---------------------------------------------------------------------------------------------
# seeding per sample


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of one sample's random choices in one epoch (independent of workers and processes)."""
    return ((int(seed) * 1_000_003 + int(epoch)) * 2_147_483_659 + int(index)) % (2**63 - 1)


@contextlib.contextmanager
def seeded_global_rng(value: int) -> Iterator[None]:
    """Seed Python's, NumPy's and torch's global generators for the body, then restore them.

    timm's and torchvision's transforms draw from the global generators; seeding them per sample
    makes a transform's output a function of (seed, epoch, index) alone."""
    # the global generators are what those transforms read, hence the legacy NumPy calls
    py, np_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()  # noqa: NPY002
    random.seed(value)
    np.random.seed(value % 2**32)  # noqa: NPY002
    torch.manual_seed(value)
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(np_state)  # noqa: NPY002
        torch.set_rng_state(torch_state)


class StreamSamples(Dataset):
    """Samples of a map-style dataset keyed by ``(index, epoch)``: the image of ``dataset[index]``
    (its own transform applied under :func:`seeded_global_rng`), then ``augment`` with a
    per-sample generator; returns ``(image, index)``. The labels are not read here: the trainer
    joins its (noisy) label array by index."""

    def __init__(self, dataset: Dataset, seed: int, augment: Augment | None = None):
        self.dataset, self.seed, self.augment = dataset, int(seed), augment

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, epoch = key
        value = sample_seed(self.seed, epoch, index)
        with seeded_global_rng(value):
            image = image_of(self.dataset[index])
        if self.augment is not None:
            image = self.augment(image[None], torch.Generator().manual_seed(value))[0]
        return image, index


def image_of(item: Any) -> torch.Tensor:
    """The image of a dataset item: ``(image, target)`` or the image itself."""
    return item[0] if isinstance(item, tuple | list) else item


class _Images(Dataset):
    """The images of ``dataset`` at ``indices``, in order (evaluation)."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]):
        self.dataset, self.indices = dataset, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> torch.Tensor:
        return image_of(self.dataset[self.indices[i]])


# ---------------------------------------------------------------------------------------------
# batch sources


class _StepSampler(Sampler):
    """This process's micro-batches of one epoch, as lists of ``(index, epoch)`` keys.

    The order is :class:`~torch.utils.data.DistributedSampler`'s (seeded by ``seed + epoch``, the
    same permutation for any number of processes; each process takes every ``world``-th position),
    cut into micro-batches of ``micro``, whole optimiser steps only (a step is ``accum``
    micro-batches on every process), the first ``start_step`` steps skipped."""

    def __init__(self, positions: np.ndarray, runtime: Runtime, seed: int, micro: int, accum: int):
        self.positions, self.micro, self.accum = positions, micro, accum
        self.sampler = DistributedSampler(range(len(positions)), num_replicas=runtime.world_size, rank=runtime.rank,
                                          shuffle=True, seed=int(seed), drop_last=True)
        self.epoch, self.start_step = 0, 0

    def steps(self) -> int:
        return self.sampler.num_samples // (self.micro * self.accum)

    def __len__(self) -> int:
        return (self.steps() - self.start_step) * self.accum

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        self.sampler.set_epoch(self.epoch)
        order = list(self.sampler)[: self.steps() * self.micro * self.accum]
        for start in range(self.start_step * self.micro * self.accum, len(order), self.micro):
            yield [(int(self.positions[p]), self.epoch) for p in order[start : start + self.micro]]


class StreamingBatches:
    """Global batches of ``batch_size`` read from a dataset on disk through a DataLoader (see the
    module's docstring); the last partial batch of an epoch is dropped, on every layout."""

    streaming = True

    def __init__(self, dataset: Dataset, positions: np.ndarray | None, batch_size: int, seed: int,
                 augment: Augment | None, runtime: Runtime):
        self.runtime, self.batch_size = runtime, batch_size
        positions = np.arange(len(dataset)) if positions is None else np.asarray(positions)
        self.micro, self.accum = runtime.accumulation(batch_size)
        self.sampler = _StepSampler(positions, runtime, seed, self.micro, self.accum)
        workers = runtime.num_workers
        self.loader = DataLoader(
            StreamSamples(dataset, seed, augment), batch_sampler=self.sampler, num_workers=workers,
            pin_memory=runtime.pin_memory, persistent_workers=runtime.persistent_workers and workers > 0,
            prefetch_factor=runtime.prefetch_factor if workers > 0 else None,
        )

    def steps(self) -> int:
        return self.sampler.steps()

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[tuple[int, list[MicroBatch], int]]:
        """``(step, this process's micro-batches, global batch size)`` per optimiser step (step
        counts from 0 within the epoch)."""
        self.sampler.epoch, self.sampler.start_step = epoch, start_step
        micro: list[MicroBatch] = []
        step = start_step
        for images, idx in self.loader:
            micro.append((images, idx))
            if len(micro) == self.accum:
                yield step, micro, self.batch_size
                micro, step = [], step + 1


class InMemoryBatches:
    """Global batches of an in-memory tensor: the permutation of :func:`epoch_generator` (seed,
    epoch), each batch gathered by index and augmented whole with the same generator — the
    offline profiles' loop, draw for draw. A batch smaller than ``min_batch`` is skipped (before
    it draws its augmentation). With several processes (or micro-batches) the augmented global
    batch is cut into near-equal contiguous parts, one per (process, micro-batch)."""

    streaming = False

    def __init__(self, images: torch.Tensor, positions: np.ndarray | torch.Tensor | None, batch_size: int, seed: int,
                 augment: Augment | None, runtime: Runtime, min_batch: int = 1):
        self.images, self.batch_size, self.seed = images, batch_size, seed
        self.positions = None if positions is None else torch.as_tensor(positions)
        self.n = len(images) if positions is None else len(self.positions)
        self.augment, self.runtime, self.min_batch = augment, runtime, min_batch
        self.parts = runtime.world_size * (runtime.accumulation(batch_size)[1] if runtime.per_device_batch_size else 1)

    def steps(self) -> int:
        return -(-self.n // self.batch_size)

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[tuple[int, list[MicroBatch], int]]:
        gen = epoch_generator(self.seed, epoch)
        order = torch.randperm(self.n, generator=gen)
        for step, start in enumerate(range(0, self.n, self.batch_size)):
            pos = order[start : start + self.batch_size]
            if len(pos) < max(self.min_batch, self.parts):
                continue
            idx = pos if self.positions is None else self.positions[pos]
            xb = self.images[idx]
            if self.augment is not None:
                xb = self.augment(xb, gen)
            if step < start_step:
                continue  # drawn (the generator must advance as it did) but already trained
            if self.parts == 1:
                yield step, [(xb, idx)], len(idx)
                continue
            cuts = torch.tensor_split(torch.arange(len(idx)), self.parts)
            accum = self.parts // self.runtime.world_size
            mine = cuts[self.runtime.rank * accum : (self.runtime.rank + 1) * accum]
            yield step, [(xb[c], idx[c]) for c in mine], len(idx)


def batch_source(images: torch.Tensor | Dataset, positions: np.ndarray | torch.Tensor | None, batch_size: int, *,
                 seed: int, runtime: Runtime, augment: Augment | None = None, sample_augment: Augment | None = None,
                 min_batch: int = 1) -> InMemoryBatches | StreamingBatches:
    """The batch source for ``images``: streamed when ``runtime.streaming`` says so or (unset) when
    ``images`` is a dataset on disk; in memory otherwise.

    ``augment`` is the in-memory batch augmentation; ``sample_augment`` is applied to each streamed
    sample with its own generator (the same function on a batch of one: a crop-and-flip per image)."""
    stream = runtime.streaming if runtime.streaming is not None else not isinstance(images, torch.Tensor)
    if stream:
        return StreamingBatches(images, None if positions is None else np.asarray(positions), batch_size, seed,
                                sample_augment, runtime)
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"runtime.streaming is false but the training images are a {type(images).__name__}; "
                        "in-memory training needs a tensor (set runtime.streaming: auto)")
    return InMemoryBatches(images, positions, batch_size, seed, augment, runtime, min_batch)


# ---------------------------------------------------------------------------------------------
# one optimiser step


_PREPARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def prepared(model: torch.nn.Module, runtime: Runtime) -> torch.nn.Module:
    """``runtime.prepare_model(model)``, once per (model, runtime): wrapping or compiling again
    each epoch would re-broadcast or recompile."""
    hit = _PREPARED.get(model)
    if hit is None or hit[0] != runtime:
        hit = (runtime, runtime.prepare_model(model))
        _PREPARED[model] = hit
    return hit[1]


class Stepper:
    """Takes optimiser steps of ``model`` (see the module's docstring).

    ``compute_loss(trained, images, idx) -> (loss, stats)`` runs one micro-batch; ``trained`` is
    the prepared module (DDP / compiled) to call. Returns the micro-batches' ``stats`` summed as
    ``float(value) * len(idx)`` (this process's share)."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, runtime: Runtime,
                 scheduler: Any = None):
        self.model, self.optimizer, self.runtime, self.scheduler = model, optimizer, runtime, scheduler
        self.trained = prepared(model, runtime)
        self.scaler = runtime.grad_scaler()

    def step(self, micro: list[MicroBatch], global_batch: int,
             compute_loss: Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict]]) -> dict:
        rt, sums = self.runtime, {}
        self.optimizer.zero_grad(set_to_none=True)
        for k, (images, idx) in enumerate(micro):
            last = k == len(micro) - 1
            sync = contextlib.nullcontext() if last or not rt.distributed else self.trained.no_sync()
            with sync:
                x = rt.memory_format(images.to(rt.device, non_blocking=True))
                with rt.autocast():
                    loss, stats = compute_loss(self.trained, x, idx)
                weight = len(idx) * rt.world_size / global_batch  # DDP averages over processes
                scaled = loss if weight == 1 else loss * weight
                (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
            for name, value in stats.items():
                sums[name] = sums.get(name, 0.0) + float(value) * len(idx)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return sums

    def state_dict(self) -> dict:
        return {"scaler": self.scaler.state_dict() if self.scaler is not None else None}

    def load_state_dict(self, state: dict) -> None:
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])


def global_sums(sums: dict[str, float], count: int, runtime: Runtime) -> tuple[dict[str, float], int]:
    """Per-process ``sums`` (and sample ``count``) added over the processes."""
    if not runtime.distributed:
        return sums, count
    names = sorted(sums)
    total = runtime.all_reduce_sum(torch.tensor([*(sums[n] for n in names), float(count)], dtype=torch.float64))
    return {n: float(v) for n, v in zip(names, total[:-1], strict=True)}, int(total[-1])


# ---------------------------------------------------------------------------------------------
# evaluation


def gather_outputs(fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor | Dataset, runtime: Runtime, *,
                   batch_size: int, indices: Sequence[int] | None = None) -> torch.Tensor:
    """``fn`` (no grad, float32, on CPU) on every image (or those at ``indices``), in order.

    A tensor is read in slices of ``batch_size``; a dataset through a DataLoader with the
    runtime's workers. With several processes each computes a contiguous share and every process
    receives all outputs."""
    n = len(images) if indices is None else len(indices)
    order = np.arange(n) if indices is None else np.asarray(indices)
    share = np.array_split(np.arange(n), runtime.world_size)[runtime.rank] if runtime.distributed else np.arange(n)
    outs: list[torch.Tensor] = []
    with torch.no_grad(), runtime.autocast():
        for xb in image_batches(images, order[share], batch_size, runtime):
            outs.append(fn(runtime.memory_format(xb.to(runtime.device, non_blocking=True))).float().cpu())
    mine = torch.cat(outs) if outs else torch.zeros(0)
    if not runtime.distributed:
        return mine
    return torch.cat([part for part in runtime.all_gather_objects(mine) if part.numel()])


def image_batches(images: torch.Tensor | Dataset, rows: np.ndarray, batch_size: int, runtime: Runtime) -> Iterator[torch.Tensor]:
    """The images at ``rows``, in order, in batches: sliced from a tensor, read from a dataset on disk
    through a DataLoader with the runtime's workers and pinned memory."""
    if isinstance(images, torch.Tensor):
        contiguous = len(rows) and rows[0] == 0 and np.array_equal(rows, np.arange(len(rows)))
        for start in range(0, len(rows), batch_size):
            if contiguous:
                yield images[start : start + batch_size]
            else:
                yield images[torch.from_numpy(rows[start : start + batch_size])]
        return
    workers = runtime.num_workers
    loader = DataLoader(_Images(images, rows.tolist()), batch_size=batch_size, num_workers=workers,
                        pin_memory=runtime.pin_memory, prefetch_factor=runtime.prefetch_factor if workers else None)
    yield from loader
