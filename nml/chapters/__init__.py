"""The logic behind each notebook, one package per chapter.

Each ``chNN_<name>/`` holds what its notebook needs: ``config.py`` (its params section),
``run.py`` (the computation, cached), ``claims.py``, ``plots.py``, ``dryrun.py`` (its grid in
words), and where it has them ``selection.py`` (validation sweeps) and ``bench.py``.
"""

CHAPTERS: dict[str, str] = {
    "01": "ch01_pretraining",
    "02": "ch02_spectral",
    "03": "ch03_nmtune",
    "04": "ch04_turn",
    "05": "ch05_language",
}
"""Notebook number -> chapter package under ``nml.chapters``."""
