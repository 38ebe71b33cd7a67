"""The papers' published numbers, copied into the package for side-by-side tables.

Copied from the transcriptions of the papers' tables (one number a row, as printed); the project
never reads anything outside itself at run time.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd


def paper_table(name: str) -> pd.DataFrame:
    """A transcribed paper table by file stem, e.g. ``nmtune_table3_pretrain``."""
    files = resources.files(__name__)
    path = files / f"{name}.csv"
    if not path.is_file():
        available = sorted(p.name[:-4] for p in files.iterdir() if p.name.endswith(".csv"))
        raise KeyError(f"no paper table {name!r}; available: {available}")
    with path.open() as fh:
        return pd.read_csv(fh)
