"""The README's results, generated from the claims tables and the run's timings (never typed).

``nml report --readme`` rewrites the blocks between ``<!-- <name>:begin -->`` and
``<!-- <name>:end -->`` in README.md from the CSVs of a profile's figures folder:

* ``results`` — every chapter's claims table (verdict, effect and its 95% interval, seeds), with a
  count of verdicts per chapter, and chapter 02's check of whether a C3 verdict depends on the
  spectrum variant;
* ``timings`` — each notebook's wall time in the last cold and the last warm run
  (``run_timings.csv``, written by ``nml run``);
* ``benchmarks`` — the tables ``nml bench fits --csv`` and ``nml bench nmtune --shape paper --csv``
  wrote into the figures folder (:data:`BENCH_FITS`, :data:`BENCH_NMTUNE_PAPER`), with their goals.

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
BENCH_FITS = "bench_fits.csv"
BENCH_NMTUNE_PAPER = "bench_nmtune_paper_shape.csv"
BENCH_ARITHMETIC = "bench_fit_arithmetic.csv"
COLD_GOAL_MINUTES = 35  # issue 13's goal for the cold cpu story on 2 cores


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


def _minutes(seconds: float) -> str:
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s"


def render_timings(figures: Path) -> str:
    """The ``timings`` block from ``run_timings.csv``: each notebook's wall time in the last cold run
    (from caches with nothing computed) and the last warm run (every cache entry reused)."""
    path = Path(figures) / TIMINGS
    if not path.is_file():
        return "_No run timings recorded yet (`nml run` writes them)._"
    t = pd.read_csv(path)
    if "run" not in t:
        t["run"] = "cold"
    kinds = [k for k in ("cold", "warm") if (t["run"] == k).any()]
    if not kinds:
        return "_No cold or warm run recorded yet (only partial runs)._"
    lines = ["| notebook | " + " | ".join(f"{k} run | finished (UTC)" for k in kinds) + " |",
             "|---|" + "---|---|" * len(kinds)]
    for notebook in sorted(t["notebook"].unique()):
        cells = []
        for k in kinds:
            row = t[(t["notebook"] == notebook) & (t["run"] == k)]
            cells += [_minutes(row["seconds"].iloc[0]), row["finished"].iloc[0]] if len(row) else ["", ""]
        lines.append(f"| {notebook} | " + " | ".join(cells) + " |")
    totals = [f"**{_minutes(t.loc[t['run'] == k, 'seconds'].sum())}** | " for k in kinds]
    lines.append("| **all** | " + " | ".join(totals).rstrip(" |") + " | |")
    return "\n".join(lines)


def _bench_fits(path: Path) -> list[str]:
    t = pd.read_csv(path)
    rate = float(t["gemm_gflops"].iloc[0])
    lines = [f"`nml bench fits` (`{path.name}`): fp32 GEMM rate on one thread {rate:.1f} GFLOP/s; MLP and NMTune "
             f"with the official head (4×D, two views), batch 64; LP 30 epochs.", "",
             "| shape | method | fits | s per fit | GFLOP/s | of GEMM rate | goal |", "|---|---|---|---|---|---|---|"]
    for r in t.itertuples():
        if pd.isna(r.gflops):
            lines.append(f"| {r.shape} ({r.n_train} × {r.n_features}) | {r.method} | alone | {r.seconds_per_fit:.3f} | | | |")
            continue
        goal = "" if pd.isna(r.goal) else f"≥ {r.goal:.0%}: **{'meets' if r.fraction_of_gemm >= r.goal else 'misses'}**"
        lines.append(f"| {r.shape} ({r.n_train} × {r.n_features}) | {r.method} | {r.mode} | {r.seconds_per_fit:.3f} | "
                     f"{r.gflops:.1f} | {r.fraction_of_gemm:.1%} | {goal} |")
    return lines


def _bench_nmtune_paper(path: Path) -> list[str]:
    lines = []
    for r in pd.read_csv(path).itertuples():
        how = (f"projected from {r.measured_epochs} measured epochs" if r.authors_projected
               else f"all {r.epochs} epochs measured")
        ok = "meets" if r.speedup_cached >= r.goal else "misses"
        lines += [f"`nml bench nmtune --shape paper` (`{path.name}`): {r.encoder} at {r.image_size} px, {r.n} images, "
                  f"{r.feature_dim}-d features, official head (hidden {r.hidden}), {r.epochs} epochs, batch {r.batch_size}, "
                  f"{r.n_views} view per step, {r.threads} threads.", "",
                  "| path | seconds |", "|---|---|",
                  f"| cached: one extraction pass | {r.extract_s:.1f} |",
                  f"| cached: NMTune on the cached features | {r.tune_cached_s:.1f} |",
                  f"| cached: total | {r.cached_total_s:.1f} |",
                  f"| authors' loop (encoder every batch), {r.epochs} epochs, {how} | {r.authors_total_s:.1f} |", "",
                  f"Ratio **{r.speedup_cached:.1f}×** (goal ≥ {r.goal:g}×: **{ok}**); arithmetic limit "
                  f"({r.epochs} × {r.encoder_gflop:.2f} + {r.head_train_gflop:.2f}) / ({r.encoder_gflop:.2f} + "
                  f"{r.head_train_gflop:.2f}) = {r.arithmetic_limit:.1f}× (GFLOP per image: encoder forward; "
                  f"head training = 3 × {r.head_fwd_gflop:.4f} × {r.epochs} epochs)."]
    return lines


def _bench_arithmetic(path: Path) -> list[str]:
    t = pd.read_csv(path)
    rate, cores = float(t["gemm_gflops"].iloc[0]), int(t["cores"].iloc[0])
    lines = [f"`nml bench arithmetic` (`{path.name}`): chapter 03's distinct fits counted from its tables (matrix "
             f"products as `nml bench fits` counts them), at this machine's fp32 GEMM rate ({rate:.1f} GFLOP/s per "
             f"thread) on {cores} cores.", "",
             "| section | fits | GFLOP | measured CPU-s | CPU-s at the GEMM rate | reached | floor (wall) |",
             "|---|---|---|---|---|---|---|"]
    for r in t.itertuples():
        bold = "**" if r.section == "all" else ""
        lines.append(f"| {bold}{r.section}{bold} | {r.fits} | {r.gflop:,.0f} | {r.measured_cpu_s:,.0f} | "
                     f"{r.cpu_s_at_gemm_rate:,.0f} | {r.fraction_of_gemm:.0%} | {bold}{_minutes(r.floor_wall_s)}{bold} |")
    timings = path.parent / TIMINGS
    if timings.is_file():
        tt = pd.read_csv(timings)
        cold = tt[(tt["run"] == "cold") & ~tt["notebook"].str.startswith("03")].drop_duplicates("notebook", keep="last")
        if len(cold):
            floor = float(t.loc[t["section"] == "all", "floor_wall_s"].iloc[0]) + float(cold["seconds"].sum())
            verdict = "out of reach" if floor > 60 * COLD_GOAL_MINUTES else "within reach"
            lines += ["", f"Chapter 03's fits alone, at the GEMM peak, need {_minutes(floor - cold['seconds'].sum())}; "
                          f"the other chapters took {_minutes(cold['seconds'].sum())} cold "
                          f"({', '.join(cold['notebook'].str[:2])}, as measured): a floor of **{_minutes(floor)}** for the cold "
                          f"story in fp32 on this grid, so the goal of {COLD_GOAL_MINUTES} min is **{verdict}**."]
    return lines


def render_benchmarks(figures: Path) -> str:
    """The ``benchmarks`` block: the committed bench tables with their goals (nothing typed)."""
    parts = []
    for name, render in ((BENCH_FITS, _bench_fits), (BENCH_NMTUNE_PAPER, _bench_nmtune_paper),
                         (BENCH_ARITHMETIC, _bench_arithmetic)):
        path = Path(figures) / name
        parts.append("\n".join(render(path)) if path.is_file() else f"_`{name}` not measured yet._")
    return "\n\n".join(parts)


BLOCKS = {"results": render_results, "timings": render_timings, "benchmarks": render_benchmarks}


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
