"""How numbers are shown in tables, dry-runs and notebooks: one helper per format."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from nml.report.verdict import DOES_NOT_HOLD, HOLDS, format_interval


def percent_set(ratios: list[float]) -> str:
    """``[0.0, 0.3]`` -> ``{0%, 30%}``: a set of noise ratios as a reader writes them."""
    return "{" + ", ".join(f"{100 * r:g}%" for r in ratios) + "}"


def mean_std(mean: Any, std: Any, digits: int = 2) -> Any:
    """``mean ± std`` as text, both rounded to ``digits`` decimals and printed as pandas prints a
    float (``85.3 ± 1.25``: trailing zeros dropped); missing where the mean or the std is missing
    (e.g. the std of one seed).

    Series in, Series of strings out (row by row); two numbers give one string. Tables that are
    saved keep this text as it is, so the format must not change.
    """
    if not isinstance(mean, pd.Series):
        return mean_std(pd.Series([mean], dtype=float), pd.Series([std], dtype=float), digits).iloc[0]
    return mean.round(digits).astype(str) + " ± " + std.round(digits).astype(str)


def _finite(x: Any) -> bool:
    try:
        return math.isfinite(x)
    except TypeError:
        return False


def effect_cell(effect: float, ci_low: float, ci_high: float, unit: Any = "") -> str:
    """The effect column of a claims table: ``+1.23 [+0.40, +2.06] pts``
    (:func:`nml.report.verdict.format_interval` and the unit); ``+1.23 pts`` without an interval;
    ``–`` without an effect."""
    if not _finite(effect):
        return "–"
    text = format_interval(effect, ci_low, ci_high) if _finite(ci_low) and _finite(ci_high) else f"{effect:+.2f}"
    return text + (f" {unit}" if isinstance(unit, str) and unit else "")


def claims_markdown(claims: pd.DataFrame, *, compact: bool = False) -> str:
    """A claims table (rows of :data:`nml.report.verdict.COLUMNS`) as Markdown: the claim with its
    statement, scope, verdict (bold where the interval decides it), effect with its 95% interval
    (:func:`effect_cell`), seeds and evidence.

    ``compact=True`` (the README's form): the claim's id only, no evidence column.
    """
    header = ["claim", "scope", "verdict", "effect [95% interval]", "seeds", *([] if compact else ["evidence"])]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in claims.itertuples(index=False):
        verdict = f"**{r.verdict}**" if r.verdict in (HOLDS, DOES_NOT_HOLD) else r.verdict
        cells = [r.claim if compact else f"**{r.claim}** {r.statement}", r.scope, verdict,
                 effect_cell(r.effect, r.ci_low, r.ci_high, r.unit), int(r.n_seeds)]
        if not compact:
            cells.append(r.evidence)
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)
