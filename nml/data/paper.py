"""Sources of the ``paper`` profile: described and checked here, never downloaded by nml.

* ``TorchvisionDataset``: a torchvision dataset class reading ``root`` (``download=False``);
* ``ImageFolderDataset``: ``<root>/<split>/<class>/<image>`` trees (ImageNet-1K, DomainNet...);

Each has ``check(root) -> list[str]``: what is missing (empty: ready), used by
``nml run --profile paper --dry-run``. ``load_torchvision`` and ``load_image_folder`` are the
real loaders.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "DatasetSizes",
    "ImageFolderDataset",
    "ImageTextDataset",
    "PAPER_DATASETS",
    "PAPER_DATASET_SIZES",
    "dataset_targets",
    "TorchvisionDataset",
    "load_image_folder",
    "load_image_text",
    "load_torchvision",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")

# What each torchvision class expects directly under its root (from torchvision's sources).
_TORCHVISION_LAYOUT: dict[str, str] = {
    "CIFAR10": "cifar-10-batches-py",
    "CIFAR100": "cifar-100-python",
    "STL10": "stl10_binary",
    "Food101": "food-101",
    "Flowers102": "flowers-102",
    "OxfordIIITPet": "oxford-iiit-pet",
    "StanfordCars": "stanford_cars",
    "FGVCAircraft": "fgvc-aircraft-2013b",
    "DTD": "dtd",
    "Caltech101": "caltech101",
    "EuroSAT": "eurosat",
    "PCAM": "pcam",
    "RenderedSST2": "rendered-sst2",
    "MNIST": "MNIST/raw",
    "FashionMNIST": "FashionMNIST/raw",
    "SVHN": "",  # train_32x32.mat etc. directly under root
}


def _torchvision_class(class_name: str) -> type:
    import torchvision.datasets

    cls = getattr(torchvision.datasets, class_name, None)
    if not isinstance(cls, type):
        raise KeyError(f"torchvision.datasets has no dataset class {class_name!r}")
    return cls


@dataclass(frozen=True)
class TorchvisionDataset:
    """A dataset read by ``torchvision.datasets.<class_name>(root, ..., download=False)``."""

    name: str
    class_name: str
    description: str = ""

    def expected_folder(self, root: str | Path) -> Path:
        return Path(root).expanduser() / _TORCHVISION_LAYOUT.get(self.class_name, "")

    def check(self, root: str | Path) -> list[str]:
        root = Path(root).expanduser()
        try:
            _torchvision_class(self.class_name)
        except KeyError as err:
            return [str(err.args[0])]
        if not root.is_dir():
            return [f"{self.name}: no folder {root} (torchvision {self.class_name} root)"]
        folder = self.expected_folder(root)
        if not folder.exists():
            return [
                f"{self.name}: no {folder} (torchvision {self.class_name} layout; download it once with "
                f"torchvision.datasets.{self.class_name}(root={str(root)!r}, download=True))"
            ]
        return []


@dataclass(frozen=True)
class ImageFolderDataset:
    """``<root>/<split>/<class>/<image>`` trees, one per split."""

    name: str
    splits: tuple[str, ...] = ("train", "val")
    description: str = ""

    def check(self, root: str | Path) -> list[str]:
        root = Path(root).expanduser()
        if not root.is_dir():
            return [f"{self.name}: no folder {root} (expected {root}/<split>/<class>/<image>)"]
        problems = []
        for split in self.splits:
            folder = root / split
            if not folder.is_dir():
                problems.append(f"{self.name}: no split folder {folder}")
            elif not any(p.is_dir() for p in folder.iterdir()):
                problems.append(f"{self.name}: {folder} has no class folders")
        return problems


@dataclass(frozen=True)
class ImageTextDataset:
    """Image-text pairs: ``<root>/captions.csv`` with columns ``image`` (path relative to root)
    and ``caption`` (the layout CLIP-style data such as YFCC15M is commonly converted to)."""

    name: str
    description: str = ""

    def check(self, root: str | Path) -> list[str]:
        root = Path(root).expanduser()
        if not (root / "captions.csv").is_file():
            return [f"{self.name}: no {root / 'captions.csv'} (expected columns image,caption; images under {root})"]
        return []


def load_image_text(root: str | Path, transform: Callable | None = None) -> Any:
    """The image-text pairs under ``root`` as a dataset yielding ``(image, index)``; ``.captions``
    holds the texts in the same order."""
    import pandas as pd
    import torch
    from PIL import Image

    root = Path(root).expanduser()
    table = pd.read_csv(root / "captions.csv")
    missing = {"image", "caption"} - set(table.columns)
    if missing:
        raise ValueError(f"{root / 'captions.csv'}: missing column(s) {sorted(missing)}; expected image,caption")

    class _Pairs(torch.utils.data.Dataset):
        captions = [str(c) for c in table["caption"]]
        images = [root / p for p in table["image"]]

        def __len__(self) -> int:
            return len(self.images)

        def __getitem__(self, i: int):
            image = Image.open(self.images[i]).convert("RGB")
            return (transform(image) if transform else image), i

    return _Pairs()


PAPER_DATASETS: dict[str, TorchvisionDataset | ImageFolderDataset | ImageTextDataset] = {
    s.name: s for s in [
        # NMTune Table 4: the in-domain downstream sets
        TorchvisionDataset("cifar10", "CIFAR10", "CIFAR-10"),
        TorchvisionDataset("cifar100", "CIFAR100", "CIFAR-100"),
        TorchvisionDataset("flowers102", "Flowers102", "Oxford Flowers-102 (mean per class)"),
        TorchvisionDataset("food101", "Food101", "Food-101"),
        TorchvisionDataset("oxford-pet", "OxfordIIITPet", "Oxford-IIIT Pet (mean per class)"),
        TorchvisionDataset("stanford-cars", "StanfordCars", "Stanford Cars"),
        TorchvisionDataset("fgvc-aircraft", "FGVCAircraft", "FGVC Aircraft (mean per class)"),
        TorchvisionDataset("svhn", "SVHN", "SVHN"),
        TorchvisionDataset("dtd", "DTD", "Describable Textures"),
        TorchvisionDataset("caltech101", "Caltech101", "Caltech-101 (mean per class)"),
        TorchvisionDataset("eurosat", "EuroSAT", "EuroSAT"),
        TorchvisionDataset("pcam", "PCAM", "PatchCamelyon"),
        TorchvisionDataset("rendered-sst2", "RenderedSST2", "Rendered SST2"),
        TorchvisionDataset("stl10", "STL10", "STL-10"),
        ImageFolderDataset("resisc45", ("train", "test"), "RESISC45"),
        # pre-training sets
        ImageFolderDataset("imagenet-1k", ("train", "val"), "ImageNet-1K"),
        ImageTextDataset("yfcc15m", "YFCC15M image-text pairs (captions.csv + images)"),
        # NMTune Table 5: out-of-domain sets
        *(ImageFolderDataset(f"domainnet-{d}", ("train", "test"), f"DomainNet {d}")
          for d in ("real", "sketch", "painting", "clipart")),
        *(ImageFolderDataset(name, ("test",), desc) for name, desc in [
            ("imagenet-v2", "ImageNet-V2"), ("imagenet-r", "ImageNet-R"),
            ("imagenet-sketch", "ImageNet-Sketch"), ("imagenet-a", "ImageNet-A"), ("objectnet", "ObjectNet")]),
        # TURN: real-world noisy sets (Table 3); WebVision's validation set goes in test/
        ImageFolderDataset("clothing1m", ("train", "test"), "Clothing1M (noisy train labels, clean test)"),
        ImageFolderDataset("webvision", ("train", "test"), "WebVision 1.0 (Google subset, first 50 classes)"),
    ]
}


@dataclass(frozen=True)
class DatasetSizes:
    """Images in a dataset's splits, as published (public facts; for ``nml run --dry-run``'s cost
    estimate, never to load anything). ``None``: the split is not used or not known."""

    train: int | None
    test: int | None
    classes: int | None
    source: str

    def count(self, split: str, *, per_class: int | None = None, total: int | None = None) -> int | None:
        """Images of ``split`` (``train`` / ``test``) after a per-class and / or a total cap.

        A per-class cap is applied as ``cap × classes`` (an upper bound for unbalanced sets)."""
        n = self.train if split == "train" else self.test
        if n is None:
            return None
        if per_class is not None and self.classes is not None:
            n = min(n, per_class * self.classes)
        if total is not None:
            n = min(n, total)
        return n


_TABLE4 = "NMTune Table 4 (App. A.2)"
_TABLE5 = "NMTune Table 5 (App. A.2; test sizes) and Peng et al. 2019's DomainNet splits (train)"

#: Split sizes of the paper datasets (train, test, classes, where the numbers come from).
PAPER_DATASET_SIZES: dict[str, DatasetSizes] = {
    # NMTune Table 4: the in-domain downstream sets (train counts train+val where the paper does)
    "cifar10": DatasetSizes(50_000, 10_000, 10, _TABLE4),
    "cifar100": DatasetSizes(50_000, 10_000, 100, _TABLE4),
    "flowers102": DatasetSizes(2_040, 6_149, 102, _TABLE4),
    "food101": DatasetSizes(75_750, 25_250, 101, _TABLE4),
    "oxford-pet": DatasetSizes(3_680, 3_669, 37, _TABLE4),
    "stanford-cars": DatasetSizes(8_144, 8_041, 196, _TABLE4),
    "fgvc-aircraft": DatasetSizes(6_667, 3_333, 100, _TABLE4 + " (it prints 102 classes; FGVC has 100 variants)"),
    "svhn": DatasetSizes(73_257, 26_032, 10, _TABLE4),
    "dtd": DatasetSizes(1_880, 1_880, 47, _TABLE4),
    "caltech101": DatasetSizes(3_060, 6_084, 102, _TABLE4),
    "eurosat": DatasetSizes(21_600, 5_400, 10, _TABLE4),
    "pcam": DatasetSizes(262_144, 32_768, 2, "Veeling et al. 2018 (NMTune Table 4 repeats SVHN's row for it)"),
    "resisc45": DatasetSizes(25_200, 6_300, 45, _TABLE4),
    "rendered-sst2": DatasetSizes(6_920, 1_821, 2, _TABLE4),
    "stl10": DatasetSizes(5_000, 8_000, 10, "Coates et al. 2011"),
    # pre-training sets
    "imagenet-1k": DatasetSizes(1_281_167, 50_000, 1_000, "ILSVRC-2012 train / val"),
    "yfcc15m": DatasetSizes(14_829_396, None, None, "OpenAI CLIP's YFCC100M subset (github.com/openai/CLIP, data/yfcc100m.md)"),
    # NMTune Table 5: out-of-domain sets
    "domainnet-real": DatasetSizes(120_906, 52_041, 345, _TABLE5),
    "domainnet-sketch": DatasetSizes(48_212, 20_916, 345, _TABLE5),
    "domainnet-painting": DatasetSizes(50_416, 21_850, 345, _TABLE5),
    "domainnet-clipart": DatasetSizes(33_525, 14_604, 345, _TABLE5),
    "imagenet-v2": DatasetSizes(None, 10_000, 1_000, "NMTune Table 5"),
    "imagenet-r": DatasetSizes(None, 30_000, 200, "NMTune Table 5"),
    "imagenet-sketch": DatasetSizes(None, 50_889, 1_000, "NMTune Table 5"),
    "imagenet-a": DatasetSizes(None, 7_500, 200, "NMTune Table 5"),
    "objectnet": DatasetSizes(None, 18_574, 112, "NMTune Table 5"),
    # TURN: real-world noisy sets (WebVision's 50-class subset varies by release: not listed)
    "clothing1m": DatasetSizes(1_000_000, 10_000, 14, "TURN App. A.1's dataset table, rounded as printed (1M / 10K)"),
}


def dataset_targets(dataset: Any) -> list[int]:
    """The labels of a torchvision-style dataset without loading its images.

    torchvision classes keep them under different names; as a last resort every item is read.
    """
    for attr in ("targets", "labels", "_labels", "y"):
        value = getattr(dataset, attr, None)
        if value is not None and len(value) == len(dataset):
            return [int(v) for v in value]
    samples = getattr(dataset, "_samples", None)
    if samples is not None and len(samples) == len(dataset):
        return [int(s[1]) for s in samples]
    return [int(dataset[i][1]) for i in range(len(dataset))]


# torchvision classes whose splits are named otherwise: nml's "train" is their training split
_SPLIT_NAMES: dict[str, dict[str, str]] = {"OxfordIIITPet": {"train": "trainval"}}


def load_torchvision(name: str, root: str | Path, split: str = "train",
                     transform: Callable | None = None) -> Any:
    """``torchvision.datasets.<name>`` over ``root`` with ``download=False``.

    ``name`` is the class name (``"CIFAR10"``) or a ``PAPER_DATASETS`` name (``"cifar10"``).
    ``split`` is passed as ``split=`` to classes that take one, as ``train=(split == "train")``
    to those that take ``train`` (CIFAR, MNIST), and ignored by classes with neither.
    """
    source = PAPER_DATASETS.get(name)
    class_name = source.class_name if isinstance(source, TorchvisionDataset) else name
    cls = _torchvision_class(class_name)
    params = inspect.signature(cls.__init__).parameters
    kwargs: dict[str, Any] = {"transform": transform}
    if "download" in params:
        kwargs["download"] = False
    if "split" in params:
        kwargs["split"] = _SPLIT_NAMES.get(class_name, {}).get(split, split)
    elif "train" in params:
        if split not in ("train", "test"):
            raise ValueError(f"torchvision {class_name} has splits 'train' and 'test', got {split!r}")
        kwargs["train"] = split == "train"
    try:
        return cls(str(Path(root).expanduser()), **kwargs)
    except RuntimeError as err:
        folder = TorchvisionDataset(name, class_name).expected_folder(root)
        raise FileNotFoundError(
            f"torchvision {class_name} found no usable data under {root} (expected {folder}): {err}. "
            f"Download it once with torchvision.datasets.{class_name}(root={str(root)!r}, download=True)."
        ) from err


def load_image_folder(root: str | Path, split: str, transform: Callable | None = None) -> Any:
    """``torchvision.datasets.ImageFolder`` over ``<root>/<split>`` (``<class>/<image>`` inside)."""
    from torchvision.datasets import ImageFolder

    folder = Path(root).expanduser() / split
    if not folder.is_dir():
        present = sorted(p.name for p in Path(root).expanduser().iterdir()) if Path(root).expanduser().is_dir() else []
        raise FileNotFoundError(
            f"no split folder {folder} (expected {root}/<split>/<class>/<image>; splits present: {present})"
        )
    return ImageFolder(str(folder), transform=transform)
