"""Shared pieces of every training loop: the optimiser config, optimisers, schedules, seeded
batching, augmentation."""

from __future__ import annotations

import math
from typing import Annotated, Literal

import torch
from pydantic import Field

from nml._infra.schema import NonNegativeFloat, PositiveFloat, PositiveInt, Section


class OptimConfig(Section):
    """Optimiser and schedule of one training loop."""

    epochs: PositiveInt
    batch_size: PositiveInt = 256
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: PositiveFloat = 0.1
    momentum: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.9
    weight_decay: NonNegativeFloat = 5e-4
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_epochs: Annotated[int, Field(ge=0)] = 0


def make_optimizer(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    """SGD (Nesterov momentum) or AdamW as ``cfg`` says; AdamW with its fused kernel where torch has
    one for the parameters' device (the same update as the per-tensor loop, in far less time on the
    many small tensors of a head or a small convnet)."""
    params = list(params)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=cfg.momentum > 0)
    fused = bool(params) and all(_first_tensor(p).device.type in ("cpu", "cuda") for p in params)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)


def _first_tensor(param) -> torch.Tensor:
    # a parameter, or a param-group dict
    return param["params"][0] if isinstance(param, dict) else param


def channels_last(x):
    """An image batch (4-D tensor) or a module in NHWC memory order, anything else unchanged.

    oneDNN's convolutions are faster in this layout on CPU (a 1.5x faster training step for the
    cpu profile's ResNet, measured); the values are the same, only their order in memory (and so
    float rounding inside a convolution) changes.
    """
    if isinstance(x, torch.nn.Module):
        return x.to(memory_format=torch.channels_last)
    if isinstance(x, torch.Tensor) and x.ndim == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, steps_per_epoch: int):
    """Per-step LR schedule: linear warm-up then cosine to zero (or constant)."""
    total = max(1, cfg.epochs * steps_per_epoch)
    warmup = cfg.warmup_epochs * steps_per_epoch

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if cfg.schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A generator for one epoch's shuffling and augmentation.

    Seeding per (seed, epoch) rather than carrying one stream makes a resumed run draw exactly
    the batches the uninterrupted run would have drawn.
    """
    return torch.Generator().manual_seed(int(seed) * 100_003 + int(epoch))


def shuffled_batches(n: int, batch_size: int, generator: torch.Generator, *, drop_last: bool = False):
    order = torch.randperm(n, generator=generator)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]


def random_crop_flip(batch: torch.Tensor, generator: torch.Generator, *, pad: int = 2, flip: bool = True) -> torch.Tensor:
    """Batch augmentation on image tensors: random translation by up to ``pad`` px and h-flip.

    Done on the whole batch with tensor ops (no per-sample Python), which keeps augmentation
    nearly free on CPU.
    """
    n, _, h, w = batch.shape
    padded = torch.nn.functional.pad(batch, (pad, pad, pad, pad), mode="replicate")
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None, :])  # n×h
    cols = (dx[:, None] + torch.arange(w)[None, :])  # n×w
    idx_n = torch.arange(n)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if flip:
        mask = torch.rand(n, generator=generator) < 0.5
        out = torch.where(mask[:, None, None, None], out.flip(-1), out)
    return out.contiguous()


def random_resized_crop(batch: torch.Tensor, generator: torch.Generator, *, scale: tuple[float, float] = (0.8, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3), flip: bool = True) -> torch.Tensor:
    """The NMTune authors' train transform on a batch: ``RandomResizedCrop(scale, ratio)`` + h-flip.

    Each image gets its own crop: an area fraction drawn uniformly from ``scale``, an aspect
    ratio log-uniformly from ``ratio`` (both sides clipped to the image), a uniformly placed
    centre, resized back to the input size (bilinear, one ``grid_sample`` for the whole batch),
    then flipped with probability 0.5 when ``flip``. The authors use ``scale=(0.8, 1.0)``.
    """
    if not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"scale must satisfy 0 < low <= high <= 1, got {scale}")
    n = batch.shape[0]
    area = scale[0] + (scale[1] - scale[0]) * torch.rand(n, generator=generator)
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * torch.rand(n, generator=generator)
    aspect = torch.exp(log_r)
    w = torch.sqrt(area * aspect).clamp(max=1.0)  # crop width and height as fractions of the image side
    h = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = (1 - w) * (2 * torch.rand(n, generator=generator) - 1)  # centre in [-1, 1] coordinates
    cy = (1 - h) * (2 * torch.rand(n, generator=generator) - 1)
    sx = w.clone()
    if flip:
        sx = torch.where(torch.rand(n, generator=generator) < 0.5, -sx, sx)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx, cx, h, cy
    x = batch.float()
    grid = torch.nn.functional.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
