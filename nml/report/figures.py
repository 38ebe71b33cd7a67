"""Writers every chapter uses: a figure as PNG and a table as CSV, atomically, logged, each with
its provenance (:mod:`nml.report.provenance`); and the seaborn theme of every figure.

A PNG carries its provenance in PNG text chunks; a CSV gets a sidecar
``<name>.csv.provenance.json`` and stays exactly the CSV it was before provenance existed.
A notebook starts its results' provenance with :func:`set_provenance` (``nml.notebook.setup``
does it).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

# No backend is forced here: JupyterLab shows figures inline, papermill and headless runs fall back
# to Agg on their own, and the tests set MPLBACKEND=Agg (tests/conftest.py).
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from nml._infra.cache import atomic_write, atomic_write_json, atomic_write_text
from nml.report.provenance import (
    next_record,
    png_metadata,
    read_provenance,
    set_provenance,
    sidecar_path,
)

__all__ = ["read_provenance", "save_figure", "save_table", "set_provenance"]

log = logging.getLogger("nml.report.figures")
sns.set_theme(style="whitegrid", context="notebook")


def save_figure(fig: plt.Figure, out_dir: str | Path, name: str) -> Path:
    """Write ``name.png`` atomically into ``out_dir``, its provenance in PNG text chunks, and log it."""
    path = Path(out_dir) / f"{name}.png"
    metadata = png_metadata(next_record())
    atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=120, bbox_inches="tight", metadata=metadata))
    log.info("wrote %s", path)
    return path


def _array_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if df[c].dtype == object and df[c].map(lambda v: isinstance(v, np.ndarray)).any()]


def save_table(df: pd.DataFrame, out_dir: str | Path, name: str) -> Path:
    """Write ``name.csv`` atomically into ``out_dir``, and its provenance beside it
    (``name.csv.provenance.json``, with the CSV's sha256 so a sidecar cannot vouch for another file).

    Columns holding arrays (e.g. ``pred``, a fit's predictions on its test set, which the claims
    resample) are left out of the CSV: they are inputs of computations, not table cells.
    """
    arrays = _array_columns(df)
    text = df.drop(columns=arrays).to_csv(index=False)
    record = next_record()
    path = atomic_write_text(Path(out_dir) / f"{name}.csv", text)
    record["sha256"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    atomic_write_json(sidecar_path(path), record)
    log.info("wrote %s", path)
    return path
