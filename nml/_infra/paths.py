"""Where nml keeps things.

``NML_HOME`` (default ``~/.cache/nml``) holds everything that is expensive to rebuild and shared
between runs: fetched assets, feature caches and pre-training checkpoints. Outputs of a run
(executed notebooks, figures, tables) go to the run's output directory instead.
"""

from __future__ import annotations

import os
from pathlib import Path


def nml_home() -> Path:
    """Root of nml's caches: ``$NML_HOME`` or ``~/.cache/nml``."""
    return Path(os.environ.get("NML_HOME", Path.home() / ".cache" / "nml")).expanduser()


def assets_dir() -> Path:
    return nml_home() / "assets"


def features_dir() -> Path:
    return nml_home() / "features"


def checkpoints_dir() -> Path:
    return nml_home() / "checkpoints"


def project_root() -> Path:
    """The repository root when nml runs from a checkout (notebooks/, params/ live there)."""
    return Path(__file__).resolve().parents[2]
