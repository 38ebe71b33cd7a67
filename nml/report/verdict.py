"""One verdict type and one row schema for every claims table of every chapter.

A claim is judged from an :class:`~nml.report.scores.Estimate` of its effect: the mean over seeds
of a per-seed statistic and a confidence interval at :data:`CONFIDENCE`. The effect is signed so
that a positive value is what the paper claims, and the verdict reads the interval only:

* ``holds`` — the interval lies entirely above 0 (the claimed side);
* ``does not hold`` — the interval lies entirely below 0 (the other side);
* ``inconclusive`` — the interval contains 0; the numbers cannot tell at this scale;
* ``not testable`` — the grid lacks what the claim needs (a γ, a method, a test set), or the
  claim's precondition fails (e.g. C4c where no tuner ranks a noisy checkpoint above clean);
* ``not judged`` — fewer than :data:`MIN_SEEDS` seeds: an interval from one or two seeds says
  nothing about another machine.

Why an interval and not a sign: CPU kernels differ between machines, so the same seeds give
slightly different numbers elsewhere. A verdict that only reads the sign of the mean flips as soon
as the mean sits near zero; a verdict that needs the interval to exclude zero can only move to or
from ``inconclusive`` when numbers move by less than the interval's width.
"""

from __future__ import annotations

import math
from typing import Any

HOLDS = "holds"
INCONCLUSIVE = "inconclusive"
DOES_NOT_HOLD = "does not hold"
NOT_TESTABLE = "not testable"
NOT_JUDGED = "not judged"
VERDICTS: tuple[str, ...] = (HOLDS, INCONCLUSIVE, DOES_NOT_HOLD, NOT_TESTABLE, NOT_JUDGED)

CONFIDENCE = 0.95
"""Two-sided level of every claim's interval."""

MIN_SEEDS = 3
"""Fewest seeds a verdict is given for; below it the row says ``not judged``."""

COLUMNS: tuple[str, ...] = ("claim", "statement", "scope", "verdict", "effect", "ci_low", "ci_high", "unit",
                            "n_seeds", "evidence")
"""The columns of every claims table, in order. ``effect`` is signed so that positive is the
paper's claim; ``unit`` says what it is measured in (e.g. "pts", "Spearman rho")."""


def verdict_from_interval(ci_low: float, ci_high: float, n_seeds: int) -> str:
    """The verdict for an interval of a claim-signed effect (positive = as the paper claims)."""
    if n_seeds < MIN_SEEDS:
        return NOT_JUDGED
    if not (math.isfinite(ci_low) and math.isfinite(ci_high)):
        return NOT_TESTABLE
    if ci_low > 0:
        return HOLDS
    if ci_high < 0:
        return DOES_NOT_HOLD
    return INCONCLUSIVE


def claim_row(claim: str, statement: str, scope: str, estimate: Any = None, *, unit: str = "pts",
              evidence: str = "", verdict: str | None = None) -> dict[str, Any]:
    """One row of a claims table.

    ``estimate`` is an :class:`~nml.report.scores.Estimate` (None when the claim cannot be
    computed). ``verdict`` overrides the interval's verdict; only ``not testable`` and
    ``not judged`` may be forced, so no row can claim more than its interval shows.
    """
    if verdict is not None and verdict not in (NOT_TESTABLE, NOT_JUDGED):
        raise ValueError(f"only {NOT_TESTABLE!r} or {NOT_JUDGED!r} can be forced, got {verdict!r}")
    if estimate is None:
        effect = ci_low = ci_high = float("nan")
        n_seeds = 0
        verdict = verdict or NOT_TESTABLE
    else:
        effect, ci_low, ci_high, n_seeds = estimate.effect, estimate.ci_low, estimate.ci_high, estimate.n_seeds
        verdict = verdict or verdict_from_interval(ci_low, ci_high, n_seeds)
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
    return {"claim": claim, "statement": statement, "scope": scope, "verdict": verdict, "effect": effect,
            "ci_low": ci_low, "ci_high": ci_high, "unit": unit, "n_seeds": int(n_seeds), "evidence": evidence}


def not_testable(claim: str, statement: str, scope: str, why: str) -> dict[str, Any]:
    """A row for a claim the grid cannot test, saying why."""
    return claim_row(claim, statement, scope, None, evidence=why, verdict=NOT_TESTABLE)


def format_interval(effect: float, ci_low: float, ci_high: float, digits: int = 2) -> str:
    """``+1.23 [+0.40, +2.06]``; ``+1.23 [no interval]`` from one seed; ``n/a`` without an effect.

    What claims' evidence texts say; a claims table's effect column is
    :func:`nml.report.display.effect_cell`.
    """
    if not math.isfinite(effect):
        return "n/a"
    if not (math.isfinite(ci_low) and math.isfinite(ci_high)):
        return f"{effect:+.{digits}f} [no interval]"
    return f"{effect:+.{digits}f} [{ci_low:+.{digits}f}, {ci_high:+.{digits}f}]"
