"""Knowing the cost before paying it: images per second of each model a profile uses, measured on
this machine (``nml bench throughput``), and the device-hours a notebook's grid would take at those
rates (``nml run --dry-run``).

Two rates per model, on synthetic input (no dataset needed):

* training: forward + backward + optimiser step (SGD with momentum) of the model with a linear
  head, at the runtime's precision and memory layout (``nml._infra.runtime``), after warm-up steps;
* extraction: the eval-mode forward under ``torch.no_grad``.

Models are built from the registries with random weights (never downloaded); a name that cannot be
built here (``hf:<name>`` without its config in the Hugging Face cache, an unknown name) gets a row
whose ``note`` says why. The table goes to ``<NML_HOME>/bench/throughput-<device>.csv``, where the
dry-run reads it.

The layers above describe what a notebook computes as :class:`Workload` s (images through a model,
training or extracting); :func:`estimate_hours` divides them by the measured rates, and
:func:`format_cost` words the result. This module knows nothing of params or chapters.
"""

from __future__ import annotations

import gc
import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import torch

from nml._infra.cache import atomic_write_text
from nml._infra.paths import nml_home
from nml._infra.progress import tqdm
from nml._infra.runtime import Runtime

log = logging.getLogger("nml.models.throughput")

Mode = Literal["train", "extract"]
Kind = Literal["backbone", "encoder"]

COLUMNS = ["model", "role", "image_size", "device", "device_name", "precision", "batch",
           "train_images_per_s", "extract_images_per_s", "note"]
RATE_COLUMN = {"train": "train_images_per_s", "extract": "extract_images_per_s"}
DEFAULT_BATCH = {"cpu": 4, "cuda": 64}  # small on CPU (seconds per step); large enough to fill a GPU
HF_PREFIX = "hf:"


@dataclass(frozen=True)
class ThroughputModel:
    """A model to measure: ``backbone`` (``create_backbone``, random init, e.g. the pre-training
    model) or ``encoder`` (``create_encoder`` with ``pretrained=False``); ``image_size`` ``None``
    = the model's own input size (timm's ``pretrained_cfg``)."""

    model: str
    role: str = ""
    image_size: int | None = None
    kind: Kind = "encoder"
    in_chans: int = 3


@dataclass(frozen=True)
class Workload:
    """Images one part of a notebook's grid pushes through a model, training or extracting."""

    what: str
    model: str
    image_size: int | None
    mode: Mode
    images: float
    kind: Kind = "encoder"
    in_chans: int = 3
    role: str = ""


@dataclass
class NotebookCost:
    """A notebook's workloads, what its estimate leaves out, and the hours its paper reports.

    ``parallel``: the workloads run in the runtime's processes (training through ``torchrun``), so
    they split over its devices; otherwise they run in the notebook's one process."""

    workloads: list[Workload] = field(default_factory=list)
    not_counted: list[str] = field(default_factory=list)
    reported: list[str] = field(default_factory=list)
    parallel: bool = True


# --------------------------------------------------------------------------------------------
# measuring


def bench_device(requested: str = "auto") -> torch.device:
    """The device a measurement runs on: CPU when asked for, else CUDA when present, else CPU."""
    if requested != "cpu" and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    from nml._infra.machine import cpu_model

    return cpu_model()


class Unbuildable(RuntimeError):
    """A model that cannot be built on this machine without a download; the message says why."""


def default_image_size(name: str) -> int | None:
    """The input size timm's pretrained config gives ``name``; ``None`` when it has none."""
    import timm

    if name.startswith(HF_PREFIX) or not timm.is_model(name):
        return None
    cfg = timm.models.get_pretrained_cfg(name)
    size = getattr(cfg, "input_size", None) if cfg is not None else None
    return int(size[-1]) if size else None


def build_model(spec: ThroughputModel) -> tuple[Any, int]:
    """``spec``'s model with random weights (nothing downloaded) and the input size it runs at."""
    if spec.kind == "backbone":
        from nml.models.backbones import create_backbone

        size = spec.image_size or default_image_size(spec.model)
        if size is None:
            raise Unbuildable(f"no image size given and timm knows none for {spec.model!r}")
        return create_backbone(spec.model, in_chans=spec.in_chans), int(size)
    from nml.models.image_encoders import create_encoder

    if spec.model.startswith(HF_PREFIX):
        from nml.models.hub import HFModel

        problems = HFModel(spec.model[len(HF_PREFIX):]).check()
        if problems:  # transformers would go to the hub for the config: not offline
            raise Unbuildable("cannot be built offline: " + "; ".join(problems))
    options: dict[str, Any] = {"pretrained": False}
    if spec.image_size is not None:
        options["image_size"] = spec.image_size
    encoder = create_encoder(spec.model, **options)
    size = getattr(encoder, "image_size", None) or getattr(encoder, "size", None) or spec.image_size
    if size is None:
        raise Unbuildable(f"{spec.model!r} names no input size; give one")
    return _network(encoder), int(size)


class _HFCore(torch.nn.Module):
    """A transformers vision model's [CLS] features, as ``HFImageEncoder`` returns them."""

    def __init__(self, net: torch.nn.Module, dim: int):
        super().__init__()
        self.net, self.dim = net, dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(pixel_values=x).last_hidden_state[:, 0]


def _network(encoder: Any) -> Any:
    """The network inside an encoder wrapper, without the wrapper's resize / normalisation (CPU-side
    constants, and negligible next to the network at the input size measured)."""
    from nml.models.image_encoders import HFImageEncoder, TimmEncoder

    if isinstance(encoder, TimmEncoder):
        return encoder.net
    if isinstance(encoder, HFImageEncoder):
        return _HFCore(encoder.net, encoder.dim)
    return encoder


def _feature_dim(model: Any, x: torch.Tensor) -> int:
    for attr in ("num_features", "dim"):
        value = getattr(model, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    with torch.no_grad():
        return int(model(x[:1]).reshape(1, -1).shape[1])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _images_per_s(step, *, batch: int, warmup: int, steps: int, device: torch.device) -> float:
    for _ in range(warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return batch * steps / (time.perf_counter() - start)


def _measure_module(module: torch.nn.Module, x: torch.Tensor, *, runtime: Runtime, batch: int, warmup: int,
                    steps: int, num_classes: int = 10) -> tuple[float, float]:
    device = runtime.device
    head = torch.nn.Linear(_feature_dim(module, x), num_classes)
    model = runtime.memory_format(torch.nn.Sequential(module, head).to(device))
    y = torch.randint(num_classes, (batch,), generator=torch.Generator().manual_seed(0)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    scaler = runtime.grad_scaler()
    loss_fn = torch.nn.CrossEntropyLoss()

    def train_step() -> None:
        opt.zero_grad(set_to_none=True)
        with runtime.autocast():
            loss = loss_fn(model(x).float(), y)
        if scaler is None:
            loss.backward()
            opt.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()

    def extract_step() -> None:
        with torch.no_grad(), runtime.autocast():
            module(x)

    model.train()
    train = _images_per_s(train_step, batch=batch, warmup=warmup, steps=steps, device=device)
    opt.zero_grad(set_to_none=True)
    model.eval()
    extract = _images_per_s(extract_step, batch=batch, warmup=warmup, steps=steps, device=device)
    return train, extract


def _measure_callable(encoder: Any, x: torch.Tensor, *, batch: int, warmup: int, steps: int) -> float:
    """Extraction rate of a black-box encoder (ONNX, a function): it runs on the CPU, on CPU tensors."""
    x = x.cpu()
    return _images_per_s(lambda: encoder(x), batch=batch, warmup=warmup, steps=steps, device=torch.device("cpu"))


def measure_one(spec: ThroughputModel, *, runtime: Runtime, batch: int, warmup: int = 2, steps: int = 3) -> dict:
    """One row of the throughput table; a model that cannot be built or run gets ``note`` instead of rates."""
    device = runtime.device
    row = {"model": spec.model, "role": spec.role, "image_size": spec.image_size, "device": device.type,
           "device_name": device_name(device), "precision": runtime.precision, "batch": batch,
           "train_images_per_s": math.nan, "extract_images_per_s": math.nan, "note": ""}
    try:
        model, size = build_model(spec)
    except Unbuildable as err:
        row["note"] = str(err)
        return row
    except Exception as err:  # an unknown name, a missing asset: say so, measure the others
        row["note"] = f"cannot be built: {type(err).__name__}: {err}"
        return row
    row["image_size"] = size
    gen = torch.Generator().manual_seed(0)
    x = runtime.memory_format(torch.randn(batch, spec.in_chans, size, size, generator=gen).to(device))
    notes = []
    try:
        if isinstance(model, torch.nn.Module):
            row["train_images_per_s"], row["extract_images_per_s"] = _measure_module(
                model, x, runtime=runtime, batch=batch, warmup=warmup, steps=steps)
            if runtime.compile:
                notes.append("measured without torch.compile")
        else:
            row["extract_images_per_s"] = _measure_callable(model, x, batch=batch, warmup=warmup, steps=steps)
            notes.append("a black box (not a torch module): extraction only, on the CPU")
    except torch.cuda.OutOfMemoryError:
        notes.append(f"out of memory at batch {batch} (try a smaller --batch)")
    except Exception as err:
        notes.append(f"failed: {type(err).__name__}: {err}")
    finally:
        del model, x
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    row["note"] = "; ".join(notes)
    return row


def measure_throughput(models: Sequence[ThroughputModel], *, runtime: Runtime, batch: int | None = None,
                       warmup: int = 2, steps: int = 3) -> pd.DataFrame:
    """The throughput table of ``models`` on ``runtime.device`` (one row each, :data:`COLUMNS`)."""
    if warmup < 0 or steps < 1:
        raise ValueError(f"need warmup >= 0 and steps >= 1, got {warmup} and {steps}")
    batch = batch or DEFAULT_BATCH.get(runtime.device.type, 4)
    rows = []
    for spec in tqdm(list(models), desc=f"throughput on {runtime.device.type}"):
        log.info("measuring %s at %s", spec.model, f"{spec.image_size}px" if spec.image_size else "its own input size")
        rows.append(measure_one(spec, runtime=runtime, batch=batch, warmup=warmup, steps=steps))
    return pd.DataFrame(rows, columns=COLUMNS)


def throughput_models(workloads: Iterable[Workload]) -> list[ThroughputModel]:
    """The distinct models the workloads run (first seen first), each with every role it plays."""
    roles: dict[tuple, list[str]] = {}
    for w in workloads:
        key = (w.model, w.image_size, w.kind, w.in_chans)
        seen = roles.setdefault(key, [])
        if w.role and w.role not in seen:
            seen.append(w.role)
    return [ThroughputModel(model, ", ".join(r), size, kind, chans) for (model, size, kind, chans), r in roles.items()]


def format_throughput_report(table: pd.DataFrame) -> str:
    """The table as aligned text: names and notes to the left, numbers to the right."""
    def rate(v: float) -> str:
        return "-" if pd.isna(v) else f"{v:,.1f}"

    header = ["model", "role", "px", "precision", "batch", "train img/s", "extract img/s", "note"]
    rows = [[str(r.model), str(r.role), "-" if pd.isna(r.image_size) else str(int(r.image_size)), str(r.precision),
             str(r.batch), rate(r.train_images_per_s), rate(r.extract_images_per_s),
             "" if pd.isna(r.note) else str(r.note)] for r in table.itertuples()]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    left = {0, 1, 3, 7}

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    head = []
    if len(table):
        head = [f"device: {table['device'].iloc[0]} ({table['device_name'].iloc[0]})"]
    return "\n".join(head + [line(header)] + [line(r) for r in rows])


# --------------------------------------------------------------------------------------------
# the table on disk


def throughput_path(device_type: str) -> Path:
    """Where the measured table of a device type (``cpu``, ``cuda``) lives: ``<NML_HOME>/bench/``."""
    return nml_home() / "bench" / f"throughput-{device_type}.csv"


def save_throughput(table: pd.DataFrame, path: str | Path | None = None) -> Path:
    """Merge ``table`` into the device's table (a new measurement replaces the row of the same model
    and size; other profiles' rows stay), written atomically. Returns the path."""
    if table.empty:
        raise ValueError("nothing measured")
    path = Path(path) if path is not None else throughput_path(str(table["device"].iloc[0]))
    merged = table
    if path.is_file():
        old = pd.read_csv(path)
        new_keys = set(zip(table["model"], table["image_size"].astype("Int64"), strict=True))
        keep = [(m, s) not in new_keys for m, s in zip(old["model"], old["image_size"].astype("Int64"), strict=True)]
        merged = pd.concat([old[keep], table], ignore_index=True)
    merged = merged[COLUMNS].assign(image_size=merged["image_size"].astype("Int64"))
    return atomic_write_text(path, merged.to_csv(index=False))


def load_throughput(device_type: str, path: str | Path | None = None) -> pd.DataFrame | None:
    """The measured table of ``device_type``; ``None`` when none was measured here."""
    path = Path(path) if path is not None else throughput_path(device_type)
    return pd.read_csv(path) if path.is_file() else None


def measured_rate(table: pd.DataFrame, model: str, image_size: int | None, mode: Mode) -> float | None:
    """Images/s of ``model`` at ``image_size`` (``None``: at the size it was measured at) in ``mode``."""
    rows = table[table["model"] == model]
    if image_size is not None and len(rows):
        exact = rows[rows["image_size"] == image_size]
        rows = exact if len(exact) else rows  # a timm encoder runs at its own size whatever was asked
    rates = rows[RATE_COLUMN[mode]].dropna()
    rates = rates[rates > 0]
    return float(rates.iloc[-1]) if len(rates) else None


def _why_unmeasured(table: pd.DataFrame, model: str) -> str:
    notes = table.loc[table["model"] == model, "note"].dropna()
    return str(notes.iloc[-1]) if len(notes) and str(notes.iloc[-1]) else "not in the table"


# --------------------------------------------------------------------------------------------
# the arithmetic


def hours_unit(table: pd.DataFrame) -> str:
    """The unit, labelled by what the rates were measured on."""
    if len(table) and (table["device"] == "cuda").all():
        return "GPU-hours"
    return "CPU-hours (measured on CPU; a GPU is much faster)"


@dataclass(frozen=True)
class Estimate:
    """Hours of each workload (``None``: no measured rate) and their total over the measured ones."""

    hours: list[float | None]
    rates: list[float | None]
    total: float
    unmeasured: list[str]


def estimate_hours(workloads: Sequence[Workload], table: pd.DataFrame, devices: int = 1) -> Estimate:
    """Device-hours: images / measured images-per-second / devices / 3600, per workload."""
    if devices < 1:
        raise ValueError(f"devices must be >= 1, got {devices}")
    hours: list[float | None] = []
    rates: list[float | None] = []
    unmeasured: list[str] = []
    for w in workloads:
        rate = measured_rate(table, w.model, w.image_size, w.mode)
        rates.append(rate)
        if rate is None:
            hours.append(None)
            if w.model not in unmeasured:
                unmeasured.append(w.model)
        else:
            hours.append(w.images / rate / devices / 3600.0)
    return Estimate(hours, rates, sum(h for h in hours if h is not None), unmeasured)


def _short_unit(table: pd.DataFrame) -> str:
    return "GPU-h" if len(table) and (table["device"] == "cuda").all() else "CPU-h"


def format_cost(cost: NotebookCost, table: pd.DataFrame | None, *, devices: int, device_type: str,
                bench_command: str = "nml bench throughput") -> list[str]:
    """A notebook's estimated cost in words: per workload, the total, what is left out, the paper's hours.

    ``devices``: the runtime's devices (``nproc_per_node × nnodes``); a notebook whose workloads are
    not ``parallel`` runs them on one."""
    lines: list[str] = []
    where = f"runtime.nproc_per_node x runtime.nnodes = {devices}; the hours each works, side by side"
    if not cost.parallel:
        where = (f"its feature extraction runs in the notebook's own process; the runtime's {devices} "
                 "device(s) train in notebooks 01 and 04")
        devices = 1
    if not cost.workloads:
        lines.append("estimated cost: no image-model workload to estimate")
    elif table is None:
        lines.append(f"estimated cost: run `nml bench throughput` first (`{bench_command}`; "
                     f"no measured rates for {device_type} at {throughput_path(device_type)})")
    else:
        est = estimate_hours(cost.workloads, table, devices)
        first = table.iloc[0]
        lines.append(f"estimated cost at the rates measured on {first['device']} ({first['device_name']}, "
                     f"{first['precision']}, batch {first['batch']}), images / rate, on {devices} device(s) ({where}):")
        short = _short_unit(table)
        for w, h, rate in zip(cost.workloads, est.hours, est.rates, strict=True):
            size = f"@{w.image_size}px" if w.image_size else ""
            if h is None:
                lines.append(f"  {w.what} = {w.images:,.0f} images, {w.mode} on {w.model}{size}: "
                             f"no measured rate ({_why_unmeasured(table, w.model)}), not counted")
            else:
                lines.append(f"  {w.what} = {w.images:,.0f} images, {w.mode} on {w.model}{size} "
                             f"at {rate:,.1f} img/s -> {h:,.1f} {short}")
        missing = f" (without {', '.join(est.unmeasured)}: no measured rate)" if est.unmeasured else ""
        lines.append(f"  total: {est.total:,.1f} {hours_unit(table)}{missing}")
    lines += [f"  not counted: {n}" for n in cost.not_counted]
    lines += [f"paper: {r}" for r in cost.reported] or ["paper: not reported"]
    return lines
