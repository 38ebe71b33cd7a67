"""The *Findings* that close every notebook, generated from its tables: no result is typed by hand.

A chapter with claims ends with :func:`findings`: each claim, its verdict, our effect with its 95%
interval and seeds, and the paper's number beside it. The paper's side comes from the chapter's
``paper_numbers(claims)`` (in its ``claims.py``), computed from the transcribed tables of
:mod:`nml.report.reference` with :func:`paper_number`, or naming where the paper shows the claim
when no table of the paper has a number for it (:func:`not_tabulated`).

Chapter 01 has no claims: its Findings is :func:`versus_paper`, its Table 3 analog beside the
paper's, each with the change from the clean model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from nml.report.display import effect_cell, mean_std
from nml.report.verdict import DOES_NOT_HOLD, HOLDS, VERDICTS

FINDINGS_COLUMNS: tuple[str, ...] = ("claim", "statement", "scope", "verdict", "ours", "seeds", "paper")
"""The columns of a Findings table. ``ours`` is the effect with its 95% interval and unit
(:func:`nml.report.display.effect_cell`), ``paper`` the paper's number (or where it shows the claim)."""

MISSING = "–"


def paper_number(value: float, unit: str, source: str, digits: int = 2) -> str:
    """The paper's side of a claim, signed as our effect: ``+0.52 pts (Table 2: mean of 5 models)``;
    ``–`` when the value is missing."""
    if not _finite(value):
        return MISSING
    return f"{value:+.{digits}f}{f' {unit}' if unit else ''} ({source})"


def not_tabulated(source: str) -> str:
    """The paper's side of a claim it only plots or states: where it does, and that no table of
    the paper has the number (``Fig. 1 (plotted, not tabulated)``)."""
    return f"{source} (plotted, not tabulated)"


def _finite(x: Any) -> bool:
    try:
        return math.isfinite(x)
    except TypeError:
        return False


def verdict_counts(claims: pd.DataFrame) -> str:
    """``2 hold · 1 does not hold · 5 inconclusive`` (verdicts in :data:`VERDICTS` order, zeros left out)."""
    counts = claims["verdict"].value_counts()
    parts = [f"{int(counts[v])} {'hold' if v == HOLDS else v}" for v in VERDICTS if counts.get(v, 0)]
    return " · ".join(parts) if parts else "no claims"


def _markdown_cell(value: Any) -> str:
    text = MISSING if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(table: pd.DataFrame, bold: Sequence[str] = ()) -> str:
    """``table`` as a Markdown table (no index; missing cells ``–``; ``bold`` columns in bold)."""
    lines = ["| " + " | ".join(str(c) for c in table.columns) + " |", "|" + "---|" * len(table.columns)]
    for row in table.itertuples(index=False):
        cells = [_markdown_cell(v) for v in row]
        cells = [f"**{c}**" if col in bold and c != MISSING else c for col, c in zip(table.columns, cells, strict=True)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


@dataclass
class Findings:
    """A Findings table and its one-line summary, shown as Markdown in a notebook (a table in
    JupyterLab) and as the same text in a papermill log. The data is ``.table``."""

    table: pd.DataFrame
    summary: str

    def markdown(self) -> str:
        bold = self.table.assign(verdict=[f"**{v}**" if v in (HOLDS, DOES_NOT_HOLD) else v for v in self.table["verdict"]])
        return f"{self.summary}\n\n{markdown_table(bold)}"

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def __repr__(self) -> str:
        return self.markdown()


def findings(claims: pd.DataFrame, paper: Sequence[str] | pd.Series | None = None) -> Findings:
    """The Findings of a claims table (rows of :data:`nml.report.verdict.COLUMNS`): one row per
    claims row with the claim, its statement and scope, the verdict, our effect with its 95%
    interval and unit, the seeds, and the paper's side (``paper``: one text per claims row, in
    order, e.g. a chapter's ``paper_numbers(claims)``; ``–`` where missing)."""
    if paper is None:
        paper = [MISSING] * len(claims)
    paper = list(paper)
    if len(paper) != len(claims):
        raise ValueError(f"paper has {len(paper)} entries for {len(claims)} claims rows")
    rows = []
    for r, theirs in zip(claims.itertuples(index=False), paper, strict=True):
        rows.append({"claim": r.claim, "statement": r.statement, "scope": r.scope, "verdict": r.verdict,
                     "ours": effect_cell(r.effect, r.ci_low, r.ci_high, r.unit), "seeds": int(r.n_seeds),
                     "paper": theirs if isinstance(theirs, str) and theirs else MISSING})
    table = pd.DataFrame(rows, columns=list(FINDINGS_COLUMNS))
    return Findings(table, f"**{len(table)} claims rows at this scale:** {verdict_counts(claims)}.")


def versus_paper(table: pd.DataFrame, *, group: str, x: str, mean: str, std: str, paper: str,
                 seeds: str = "seeds", digits: int = 2) -> pd.DataFrame:
    """Ours beside the paper's numbers, each with its change from the first ``x`` of its ``group``
    (e.g. accuracy per track and γ, and the change from γ = 0): ``group``, ``x``, ``seeds``,
    ``ours`` (mean ± std), ``ours_change``, ``paper``, ``paper_change``. Rows are sorted by
    ``group`` and ``x``; the paper's cells are missing where it has no number."""
    d = table.sort_values([group, x]).reset_index(drop=True)
    first = d.groupby(group, sort=False)
    return pd.DataFrame({
        group: d[group], x: d[x], "seeds": d[seeds],
        "ours": mean_std(d[mean], d[std], digits).fillna(d[mean].round(digits).astype(str)),
        "ours_change": (d[mean] - first[mean].transform("first")).round(digits),
        "paper": d[paper],
        "paper_change": (d[paper] - first[paper].transform("first")).round(digits),
    })
