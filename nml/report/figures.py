"""Writers every chapter uses: a figure as PNG and a table as CSV, atomically, logged; and the
seaborn theme of every figure."""

from __future__ import annotations

import logging
from pathlib import Path

# No backend is forced here: JupyterLab shows figures inline, papermill and headless runs fall back
# to Agg on their own, and the tests set MPLBACKEND=Agg (tests/conftest.py).
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from nml._infra.cache import atomic_write

log = logging.getLogger("nml.report.figures")
sns.set_theme(style="whitegrid", context="notebook")


def save_figure(fig: plt.Figure, out_dir: str | Path, name: str) -> Path:
    """Write ``name.png`` atomically into ``out_dir`` and log it."""
    path = Path(out_dir) / f"{name}.png"
    atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=120, bbox_inches="tight"))
    log.info("wrote %s", path)
    return path


def _array_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if df[c].dtype == object and df[c].map(lambda v: isinstance(v, np.ndarray)).any()]


def save_table(df: pd.DataFrame, out_dir: str | Path, name: str) -> Path:
    """Write ``name.csv`` atomically into ``out_dir``.

    Columns holding arrays (e.g. ``pred``, a fit's predictions on its test set, which the claims
    resample) are left out of the CSV: they are inputs of computations, not table cells.
    """
    from nml._infra.cache import atomic_write_text

    arrays = _array_columns(df)
    path = atomic_write_text(Path(out_dir) / f"{name}.csv", df.drop(columns=arrays).to_csv(index=False))
    log.info("wrote %s", path)
    return path
