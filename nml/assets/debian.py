"""``DebianDataset``: data files shipped by a Debian package (Fashion-MNIST).

Where the files are looked for, in order (the first place where every file verifies wins):

1. ``$NML_FASHION_MNIST_DIR`` (an override: a folder holding the four ``.gz`` files);
2. the package's folder, ``/usr/share/datasets/fashion-mnist`` for ``dataset-fashion-mnist``;
3. ``assets_dir()/fashion-mnist-torchvision/FashionMNIST/raw`` (torchvision's download).

``fetch`` uses the files in place when they verify; otherwise installs the package with
``apt-get`` (as root, or with non-interactive ``sudo``), otherwise downloads with torchvision,
otherwise fails with a message saying how to get the files. The subprocess runner, the root
check and the torchvision download are injectable so that every branch is testable.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nml._infra.paths import assets_dir
from nml.assets.base import Asset, AssetMissingError, VerifyResult, check_files

log = logging.getLogger("nml.assets")

Runner = Callable[[Sequence[str]], subprocess.CompletedProcess]


def run_command(cmd: Sequence[str]) -> subprocess.CompletedProcess:
    """Run ``cmd`` non-interactively, capturing its output (never raises on exit status)."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log.info("running: %s", " ".join(cmd))
    return subprocess.run(list(cmd), capture_output=True, text=True, check=False, env=env)


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def torchvision_download(root: Path, dataset_class: str) -> None:
    """Let torchvision download ``dataset_class`` into ``root`` (network permitting)."""
    import torchvision.datasets

    cls = getattr(torchvision.datasets, dataset_class)
    for train in (True, False):
        cls(root=str(root), train=train, download=True)


@dataclass(frozen=True)
class DebianDataset(Asset):
    """``files`` (name → sha256) from Debian package ``package``, installed in ``system_dir``."""

    package: str = ""
    system_dir: Path = Path("/")
    files: dict[str, str] = field(default_factory=dict)
    env_var: str = ""
    torchvision_class: str = ""
    runner: Runner = field(default=run_command, compare=False, repr=False)
    am_root: Callable[[], bool] = field(default=is_root, compare=False, repr=False)
    which: Callable[[str], str | None] = field(default=shutil.which, compare=False, repr=False)
    torchvision_downloader: Callable[[Path, str], None] = field(
        default=torchvision_download, compare=False, repr=False
    )

    @property
    def source(self) -> str:
        return f"Debian package {self.package} ({self.system_dir})"

    @property
    def torchvision_root(self) -> Path:
        return assets_dir() / f"{self.name}-torchvision"

    def candidate_dirs(self) -> list[Path]:
        """Folders that may hold the files, in the order they are tried."""
        dirs = []
        override = os.environ.get(self.env_var) if self.env_var else None
        if override:
            dirs.append(Path(override).expanduser())
        dirs.append(Path(self.system_dir))
        if self.torchvision_class:
            dirs.append(self.torchvision_root / self.torchvision_class / "raw")
        return dirs

    def verify(self) -> VerifyResult:
        problems = []
        for folder in self.candidate_dirs():
            status, reason = check_files(folder, self.files)
            if status == "ok":
                return VerifyResult(self.name, "ok", "", folder)
            if status == "corrupt":
                problems.append(reason)
        if problems:
            return VerifyResult(self.name, "corrupt", "; ".join(problems))
        tried = ", ".join(str(d) for d in self.candidate_dirs())
        return VerifyResult(self.name, "missing", f"no {sorted(self.files)[0]} in {tried}")

    def fetch_hint(self) -> str:
        var = f", or put the files {sorted(self.files)} in a folder named by ${self.env_var}" if self.env_var else ""
        return (f"run `nml assets fetch {self.name}` or `sudo apt-get install {self.package}`{var}")

    def fetch(self, *, force: bool = False) -> Path:
        if not force:
            result = self.verify()
            if result.ok and result.path is not None:
                log.debug("%s: verified in place at %s", self.name, result.path)
                return result.path
            if result.status == "corrupt":
                log.warning("%s: %s", self.name, result.reason)
        notes: list[str] = []
        attempts: list[Callable[[], tuple[bool, str]]] = [
            lambda: self._try_apt(reinstall=force), self._try_torchvision,
        ]
        for attempt in attempts:  # lazily: stop at the first that works
            done, note = attempt()
            notes.append(note)
            log.info("%s: %s", self.name, note)
            result = self.verify()
            if done and result.ok and result.path is not None:
                log.info("%s: ready at %s", self.name, result.path)
                return result.path
        raise AssetMissingError(self._failure_message(notes))

    def _failure_message(self, notes: list[str]) -> str:
        tried = "\n".join(f"  - {n}" for n in notes)
        files = ", ".join(sorted(self.files))
        return (
            f"could not get asset {self.name!r} (files {files}). Tried:\n{tried}\n"
            f"Get it with `sudo apt-get install {self.package}` (Debian/Ubuntu), or download the four "
            f"files from https://github.com/zalandoresearch/fashion-mnist and set "
            f"{self.env_var}=/folder/holding/them, then run `nml assets fetch {self.name}`."
        )

    # each attempt returns (done, note); the note explains a failure in the final error
    def _try_apt(self, *, reinstall: bool) -> tuple[bool, str]:
        if self.which("apt-get") is None:
            return False, "apt-get: not available on this machine"
        prefix: list[str] = []
        if not self.am_root():
            if self.which("sudo") is None or self.runner(["sudo", "-n", "true"]).returncode != 0:
                return False, "apt-get: not root and non-interactive sudo is not allowed"
            prefix = ["sudo", "-n"]
        install = [*prefix, "apt-get", "install", "-y", *(["--reinstall"] if reinstall else []), self.package]
        proc = self.runner(install)
        if proc.returncode != 0 and _unknown_package(proc, self.package):
            self.runner([*prefix, "apt-get", "update"])
            proc = self.runner(install)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-1:] or [""]
            return False, f"apt-get install {self.package}: exit {proc.returncode} {tail[0]}"
        if check_files(Path(self.system_dir), self.files)[0] != "ok":
            return False, f"apt-get install {self.package} succeeded but {self.system_dir} does not verify"
        return True, f"installed {self.package}"

    def _try_torchvision(self) -> tuple[bool, str]:
        if not self.torchvision_class:
            return False, "torchvision: no torchvision class for this asset"
        root = self.torchvision_root
        try:
            self.torchvision_downloader(root, self.torchvision_class)
        except Exception as err:  # network errors come in many types
            return False, f"torchvision {self.torchvision_class}(download=True): {type(err).__name__}: {err}"
        raw = root / self.torchvision_class / "raw"
        status, reason = check_files(raw, self.files)
        if status != "ok":
            return False, f"torchvision download into {raw} does not verify: {reason}"
        return True, f"downloaded with torchvision into {raw}"


def _unknown_package(proc: subprocess.CompletedProcess, package: str) -> bool:
    text = f"{proc.stdout or ''}\n{proc.stderr or ''}"
    return "Unable to locate package" in text or f"Package '{package}' has no installation candidate" in text
