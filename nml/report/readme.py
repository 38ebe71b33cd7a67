"""The README's results, generated from the claims tables and the run's timings (never typed).

``nml report --readme`` rewrites the blocks between ``<!-- <name>:begin -->`` and
``<!-- <name>:end -->`` in README.md from the CSVs of a profile's figures folder:

* ``results`` — every chapter's claims table (verdict, effect and its 95% interval, seeds), with a
  count of verdicts per chapter, and chapter 02's check of whether a C3 verdict depends on the
  spectrum variant;
* ``timings`` — each notebook's wall time in the last run (``run_timings.csv``, written by
  ``nml run``).

A test renders the blocks from the committed ``figures/cpu`` and fails when README.md differs, so
the README cannot drift from the tables.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from nml.report.display import claims_markdown
from nml.report.verdict import VERDICTS

CLAIMS_TABLES = (
    ("02", "Chapter 02 — noise in pre-training, downstream and in the spectrum (C1–C3)", "02_claims_C1-C3.csv"),
    ("03", "Chapter 03 — LP vs MLP vs NMTune (C4–C5)", "03_claims_C4-C5.csv"),
    ("04", "Chapter 04 — TURN under noisy downstream labels (T1–T6)", "04_claims_TURN.csv"),
    ("05", "Chapter 05 — frozen language models (L1–L2)", "05_claims_language.csv"),
)
TIMINGS = "run_timings.csv"


def _counts(claims: pd.DataFrame) -> str:
    counts = claims["verdict"].value_counts()
    return ", ".join(f"{int(counts[v])} {v}" for v in VERDICTS if v in counts)


def render_results(figures: Path) -> str:
    """The ``results`` block from the claims CSVs in ``figures`` (chapters without one are skipped)."""
    figures = Path(figures)
    parts = []
    for number, title, name in CLAIMS_TABLES:
        path = figures / name
        if not path.is_file():
            continue
        claims = pd.read_csv(path)
        # the compact table: evidence stays in the CSV and the notebook
        parts.append(f"#### {title}\n\n`{figures.name}/{name}` — {len(claims)} rows: {_counts(claims)}.\n\n"
                     + claims_markdown(claims, compact=True))
        if number == "02" and (figures / "02_claims_C3_by_variant.csv").is_file():
            dep = pd.read_csv(figures / "02_claims_C3_by_variant.csv")
            changed = dep[dep["depends_on_variant"].astype(bool)]
            note = ("No C3 verdict depends on the spectrum variant (authors' vs raw)." if changed.empty else
                    "C3 verdicts that depend on the spectrum variant (authors' vs raw): "
                    + "; ".join(f"{r.claim} {r.track}" for r in changed.itertuples()) + ".")
            parts[-1] += "\n\n" + note
    return "\n\n".join(parts) if parts else "_No claims tables in this profile's figures yet._"


def render_timings(figures: Path) -> str:
    """The ``timings`` block from ``run_timings.csv`` (each notebook's last wall time)."""
    path = Path(figures) / TIMINGS
    if not path.is_file():
        return "_No run timings recorded yet (`nml run` writes them)._"
    t = pd.read_csv(path)
    lines = ["| notebook | wall time | finished (UTC) |", "|---|---|---|"]
    for r in t.itertuples():
        minutes, seconds = divmod(int(round(r.seconds)), 60)
        lines.append(f"| {r.notebook} | {minutes} min {seconds:02d} s | {r.finished} |")
    total = int(round(t["seconds"].sum()))
    lines.append(f"| **all** | **{total // 60} min {total % 60:02d} s** | |")
    return "\n".join(lines)


BLOCKS = {"results": render_results, "timings": render_timings}


def _pattern(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- {name}:begin -->)\n(.*?)\n?(<!-- {name}:end -->)", re.DOTALL)


def rendered_readme(text: str, figures: Path) -> str:
    """``text`` with every generated block replaced by its rendering from ``figures``."""
    for name, render in BLOCKS.items():
        pattern = _pattern(name)
        if not pattern.search(text):
            raise ValueError(f"README has no <!-- {name}:begin --> ... <!-- {name}:end --> block")
        body = render(figures)
        text = pattern.sub(lambda m, body=body: f"{m.group(1)}\n{body}\n{m.group(3)}", text)
    return text


def update_readme(readme: Path, figures: Path) -> bool:
    """Rewrite the generated blocks of ``readme`` in place; True if anything changed."""
    from nml._infra.cache import atomic_write_text

    old = Path(readme).read_text()
    new = rendered_readme(old, figures)
    if new != old:
        atomic_write_text(readme, new)
    return new != old
