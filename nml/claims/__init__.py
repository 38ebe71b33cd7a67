"""Does each paper claim hold at this scale? One verdict type, one row schema, every chapter.

* :mod:`nml.claims.verdict` — the verdicts, the row schema, the confidence level;
* :mod:`nml.claims.scores` — scores with test-set resamples, per-seed effects and their interval;
* :mod:`nml.claims.spectral` (C1–C3), :mod:`nml.claims.nmtune` (C4–C5), :mod:`nml.claims.turn`
  (T1–T6), :mod:`nml.claims.language` (L1–L2): each chapter's claims.

Verdicts are computed from the numbers, never typed in.
"""

from nml.claims.scores import Estimate, Scores, interval, paired, resample_counts
from nml.claims.verdict import (
    COLUMNS,
    CONFIDENCE,
    DOES_NOT_HOLD,
    HOLDS,
    INCONCLUSIVE,
    MIN_SEEDS,
    NOT_JUDGED,
    NOT_TESTABLE,
    VERDICTS,
    claim_row,
    markdown_table,
    not_testable,
    verdict_from_interval,
)

__all__ = [
    "COLUMNS",
    "CONFIDENCE",
    "DOES_NOT_HOLD",
    "HOLDS",
    "INCONCLUSIVE",
    "MIN_SEEDS",
    "NOT_JUDGED",
    "NOT_TESTABLE",
    "VERDICTS",
    "Estimate",
    "Scores",
    "claim_row",
    "interval",
    "markdown_table",
    "not_testable",
    "paired",
    "resample_counts",
    "verdict_from_interval",
]
