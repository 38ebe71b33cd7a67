"""``nml diff A B``: what changed between two runs, claim by claim.

A and B are each a folder of a run's tables (``figures/<profile>``, a ``--output-dir``), a
profile name (read from ``figures/<profile>/``), or a git commit (its committed tables:
``git show <commit>:figures/<profile>/<file>``, ``profile`` default ``cpu``).

**Claims.** Every row of the claims tables (:data:`nml.report.readme.CLAIMS_TABLES`), matched on
(table, claim, scope): the verdict in A and in B, and the effect in A and in B with its seed
spread, written ``effect ±h`` where ``h`` is half the width of the row's 95% interval
(``(ci_high - ci_low) / 2``; the interval itself may be asymmetric) — the spread the verdict
reads. A claim **moved beyond the spread** when ``|effect_B - effect_A|`` exceeds the larger of
the two half-widths; it cannot be said (``?``) when one side has an effect and the other none, or
an effect has no interval; a claim with no effect on either side did not move. Rows are
ordered: changed verdicts first, then moved effects, then the rest in table order; a claim present
on one side only counts as changed (its verdict on the other side is ``absent``).

**Table numbers.** Tables with ``X_mean`` / ``X_std`` column pairs (the summaries over seeds),
matched on the columns before the first ``_mean`` / ``_std`` column (``seeds`` aside): a mean
moved beyond the spread when it changed by more than the larger of the two standard deviations
over seeds. Only those are printed.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from nml._infra.paths import project_root
from nml.report.provenance import run_git
from nml.report.readme import CLAIMS_TABLES

CLAIMS_FILES = tuple(name for _, _, name in CLAIMS_TABLES)
ABSENT = "absent"
KEY = ("table", "claim", "scope")


@dataclass(frozen=True)
class RunTables:
    """The tables of one side of a diff: a folder, or a commit's ``figures/<profile>/``."""

    label: str
    folder: Path | None = None
    commit: str | None = None
    profile: str = "cpu"

    def names(self) -> list[str]:
        if self.folder is not None:
            return sorted(p.name for p in self.folder.glob("*.csv"))
        listing = run_git("ls-tree", "--name-only", f"{self.commit}:figures/{self.profile}") or ""
        return sorted(n for n in listing.splitlines() if n.endswith(".csv"))

    def read(self, name: str) -> pd.DataFrame | None:
        if self.folder is not None:
            path = self.folder / name
            return pd.read_csv(path) if path.is_file() else None
        text = run_git("show", f"{self.commit}:figures/{self.profile}/{name}")
        return pd.read_csv(io.StringIO(text)) if text is not None else None




def resolve(spec: str, profile: str = "cpu") -> RunTables:
    """A folder, a profile name (``figures/<spec>/``) or a git commit, in that order."""
    path = Path(spec)
    if path.is_dir():
        return RunTables(str(spec), folder=path)
    if (project_root() / "figures" / spec).is_dir() and "/" not in spec:
        return RunTables(f"figures/{spec}", folder=project_root() / "figures" / spec)
    commit = (run_git("rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}") or "").strip()
    if commit:
        return RunTables(f"{spec} ({commit[:10]}:figures/{profile})", commit=commit, profile=profile)
    raise FileNotFoundError(f"{spec!r} is neither a folder, a profile with a figures/{spec}/ folder, nor a git commit")


def _claims(side: RunTables) -> pd.DataFrame:
    frames = []
    for name in CLAIMS_FILES:
        table = side.read(name)
        if table is not None:
            frames.append(table.assign(table=name))
    if not frames:
        return pd.DataFrame(columns=[*KEY, "verdict", "effect", "ci_low", "ci_high", "n_seeds", "unit"])
    return pd.concat(frames, ignore_index=True)


def _half_width(lo: float, hi: float) -> float:
    return (hi - lo) / 2 if math.isfinite(lo) and math.isfinite(hi) else float("nan")


def compare_claims(a: RunTables, b: RunTables) -> pd.DataFrame:
    """One row per claim of A or B: verdicts, effects, spreads, ``changed`` and ``moved`` (see the module docstring)."""
    ca, cb = _claims(a), _claims(b)
    keep = [*KEY, "verdict", "effect", "ci_low", "ci_high", "n_seeds", "unit"]
    # tables from before the one claims schema (no interval, no seeds) compare with no spread
    ca = ca.reindex(columns=keep).assign(order_a=range(len(ca)))
    cb = cb.reindex(columns=keep).assign(order_b=range(len(cb)))
    for c in ("effect", "ci_low", "ci_high", "n_seeds"):
        ca[c], cb[c] = pd.to_numeric(ca[c], errors="coerce"), pd.to_numeric(cb[c], errors="coerce")
    both = ca.merge(cb, on=list(KEY), how="outer", suffixes=("_a", "_b"))
    for side in ("a", "b"):
        both[f"verdict_{side}"] = both[f"verdict_{side}"].fillna(ABSENT)
        both[f"spread_{side}"] = [_half_width(float(lo), float(hi)) for lo, hi in
                                  zip(both[f"ci_low_{side}"], both[f"ci_high_{side}"], strict=True)]
    both["unit"] = both["unit_a"].fillna(both["unit_b"])
    both["delta"] = both["effect_b"].astype(float) - both["effect_a"].astype(float)
    both["changed"] = both["verdict_a"] != both["verdict_b"]
    spread = both[["spread_a", "spread_b"]].max(axis=1, skipna=False)
    judged = both["delta"].notna() & spread.notna()
    no_effect = both["effect_a"].isna() & both["effect_b"].isna()  # nothing to move (e.g. not testable twice)
    both["moved"] = pd.array([bool(abs(d) > s) if j else (False if ne else pd.NA)
                              for d, s, j, ne in zip(both["delta"], spread, judged, no_effect, strict=True)], dtype="boolean")
    both["_order"] = both["order_a"].fillna(both["order_b"] + 1e6)
    both["_rank"] = (~both["changed"]).astype(int) * 2 + (~both["moved"].fillna(False)).astype(int)
    both = both.sort_values(["_rank", "_order"], kind="stable").reset_index(drop=True)
    cols = [*KEY, "verdict_a", "verdict_b", "changed", "effect_a", "spread_a", "n_seeds_a", "effect_b", "spread_b",
            "n_seeds_b", "delta", "moved", "unit", "ci_low_a", "ci_high_a", "ci_low_b", "ci_high_b"]
    return both[cols]


def compare_tables(a: RunTables, b: RunTables) -> pd.DataFrame:
    """Means of the ``X_mean`` / ``X_std`` tables present on both sides that moved beyond the
    larger std over seeds (see the module docstring)."""
    rows = []
    for name in sorted(set(a.names()) & set(b.names())):
        if name in CLAIMS_FILES:
            continue
        ta, tb = a.read(name), b.read(name)
        if ta is None or tb is None:
            continue
        pairs = [c[:-5] for c in ta.columns if c.endswith("_mean") and f"{c[:-5]}_std" in ta.columns
                 and c in tb.columns and f"{c[:-5]}_std" in tb.columns]
        if not pairs:
            continue
        first = next(i for i, c in enumerate(ta.columns) if c.endswith(("_mean", "_std")))
        keys = [c for c in ta.columns[:first] if c != "seeds" and c in tb.columns]
        if not keys or ta.duplicated(keys).any() or tb.duplicated(keys).any():
            continue
        m = ta.merge(tb, on=keys, suffixes=("_a", "_b"))
        for p in pairs:
            ma, mb = m[f"{p}_mean_a"].astype(float), m[f"{p}_mean_b"].astype(float)
            spread = pd.concat([m[f"{p}_std_a"], m[f"{p}_std_b"]], axis=1).astype(float).max(axis=1, skipna=False)
            moved = (mb - ma).abs() > spread
            for i in m.index[moved.fillna(False)]:
                rows.append({"table": name, "row": ", ".join(f"{k}={m.at[i, k]}" for k in keys), "number": f"{p}_mean",
                             "a": ma[i], "b": mb[i], "delta": mb[i] - ma[i], "std_a": m.at[i, f"{p}_std_a"],
                             "std_b": m.at[i, f"{p}_std_b"]})
    return pd.DataFrame(rows, columns=["table", "row", "number", "a", "b", "delta", "std_a", "std_b"])


def _effect(effect: float, spread: float, n: float) -> str:
    if pd.isna(effect) or not math.isfinite(float(effect)):
        return "–"
    effect, spread = float(effect), float(spread)
    seeds = f" ({int(n)})" if pd.notna(n) else ""
    return (f"{effect:+.3g} ±{spread:.2g}" if math.isfinite(spread) else f"{effect:+.3g} [no interval]") + seeds


def format_diff(claims: pd.DataFrame, tables: pd.DataFrame, a: RunTables, b: RunTables, *, max_table_rows: int = 40) -> str:
    """The text ``nml diff`` prints."""
    n_changed, n_moved = int(claims["changed"].sum()), int(claims["moved"].fillna(False).sum())
    lines = [f"A: {a.label}", f"B: {b.label}",
             f"{len(claims)} claims; {n_changed} verdicts changed; {n_moved} effects moved beyond the spread "
             "(|B - A| > the larger half-width of the two 95% intervals).",
             "effect ±h (n): h = half the 95% interval's width over seeds, n = seeds; "
             "flags: V = verdict changed, M = moved beyond the spread, ? = spread unknown", ""]
    header = ("", "claim", "scope", "verdict A", "verdict B", "effect A", "effect B", "B - A", "unit")
    body = []
    for r in claims.itertuples(index=False):
        flag = ("V" if r.changed else " ") + ("?" if r.moved is pd.NA else "M" if r.moved else " ")
        delta = f"{r.delta:+.3g}" if pd.notna(r.delta) else "–"
        body.append((flag, str(r.claim), ("" if pd.isna(r.scope) else str(r.scope))[:60], str(r.verdict_a), str(r.verdict_b),
                     _effect(r.effect_a, r.spread_a, r.n_seeds_a), _effect(r.effect_b, r.spread_b, r.n_seeds_b),
                     delta, str(r.unit) if isinstance(r.unit, str) else ""))
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *body]:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    lines.append("")
    if tables.empty:
        lines.append("Table numbers (X_mean / X_std summaries): none moved beyond the larger std over seeds.")
    else:
        lines.append(f"Table numbers that moved beyond the larger std over seeds: {len(tables)}"
                     + (f" (first {max_table_rows})" if len(tables) > max_table_rows else ""))
        for r in tables.head(max_table_rows).itertuples(index=False):
            lines.append(f"  {r.table}  {r.row}  {r.number}: {r.a:.4g} -> {r.b:.4g} ({r.delta:+.3g}; std {r.std_a:.2g} / {r.std_b:.2g})")
    return "\n".join(lines)


def diff_runs(spec_a: str, spec_b: str, *, profile: str = "cpu") -> tuple[str, pd.DataFrame]:
    """Resolve A and B, compare them; return the text and the claims comparison."""
    a, b = resolve(spec_a, profile), resolve(spec_b, profile)
    claims = compare_claims(a, b)
    tables = compare_tables(a, b)
    return format_diff(claims, tables, a, b), claims

