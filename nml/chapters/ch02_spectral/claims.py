"""Claims C1–C3 of the NMTune paper (Sec. 2), judged from chapter 02's probes and spectra.

Input: chapter 02's tidy rows — one per (checkpoint, task, test domain) with ``track``,
``gamma``, ``seed``, ``kind`` (ID / OOD), ``family`` (the dataset family of an OOD pairing),
``train_domain``, ``test_domain``, ``test_id`` and ``pred`` (the probe's test predictions),
and the spectral metrics ``sve_<variant>`` / ``lsvr_<variant>`` of the test features.

Every effect is computed per pre-training seed (seed ``s`` at every γ is one paired unit),
averaged over seeds, and judged by its interval (:mod:`nml.report.verdict`). Accuracies carry
the test set's sampling error (:mod:`nml.report.scores`); SVE and LSVR are properties of the
feature matrix and are judged over seeds only. OOD averages weight each dataset family once
(the digit pairings, the Fashion-MNIST corruptions), so seven corruption test sets do not
outvote six digit test sets.

* **C1** — effect = mean ID accuracy at the slight γ's (5–10%, averaged) minus at γ = 0, pts.
* **C2** — effect = −(slope of OOD accuracy on γ), pts per 10 points of γ (positive = falls).
* **C3a** — slope of ID SVE on γ, per 10 points of γ.
* **C3b** — slope of OOD LSVR on γ, per 10 points of γ.
* **C3c** — −(Pearson r of LSVR with OOD accuracy across γ), within each (training domain,
  test domain) pairing, averaged over pairings (each family once); positive = LSVR falls as
  accuracy rises.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from nml.report.findings import not_tabulated
from nml.report.scores import Estimate, Scores, correlation_by, interval, slope_by
from nml.report.verdict import COLUMNS, claim_row, format_interval, not_testable

CLAIMS = {
    "C1": "slight pre-training noise (5-10%) raises ID linear-probe accuracy over clean pre-training",
    "C2": "OOD linear-probe accuracy falls as pre-training noise rises",
    "C3a": "SVE of ID features rises with pre-training noise",
    "C3b": "LSVR of OOD features rises with pre-training noise",
    "C3c": "LSVR falls as OOD accuracy rises (within each training / test domain pairing)",
}
PAPER_SOURCE = {"C1": "Fig. 1", "C2": "Fig. 1", "C3a": "Fig. 3", "C3b": "Fig. 3", "C3c": "Fig. 3"}
"""Where the paper shows each claim: in figures only, so the Findings name the figure."""
SLIGHT = (0.04, 0.11)  # the paper's "slight" noise: 5% and 10%
PER_10_POINTS = 0.1     # slopes are reported per 10 points of γ


def _family_mean(scores: Scores, keys: list[str]) -> Scores:
    """Mean over test domains within each family, then over families (each family once)."""
    return scores.mean_by([*keys, "family"]).mean_by(keys)


def _seeds(est: Estimate) -> str:
    return f"{est.n_seeds} seeds"


def claim_c1(acc: Scores, track: str) -> dict:
    scope = track
    d = acc.where(track=track, kind="ID").mean_by(["gamma", "seed"])
    gammas = sorted(set(d.table["gamma"]))
    slight = [g for g in gammas if SLIGHT[0] <= g <= SLIGHT[1]]
    if 0.0 not in gammas or not slight:
        return not_testable("C1", CLAIMS["C1"], scope, "needs gamma 0 and 5% or 10%")
    clean = d.where(gamma=0.0).keyed(["seed"])
    noisy = d.where(d.table["gamma"].isin(slight)).mean_by(["seed"]).keyed(["seed"])
    seeds = [s for s in clean if s in noisy]
    est = interval(np.stack([noisy[s] - clean[s] for s in seeds])).scaled(100)
    means = d.mean_by(["gamma"])
    evidence = ("ID acc " + ", ".join(f"{100 * v:.2f}% at {100 * g:g}%" for g, v in zip(means.table["gamma"], means.value,
                                                                                       strict=True))
                + f"; slight minus clean {format_interval(est.effect, est.ci_low, est.ci_high)} pts ({_seeds(est)})")
    return claim_row("C1", CLAIMS["C1"], scope, est, evidence=evidence)


def _slope_claim(values: Scores, claim: str, scope: str, *, falls: bool, unit: str, scale: float,
                 label: str) -> dict:
    gammas = sorted(set(values.table["gamma"]))
    if len(gammas) < 2:
        return not_testable(claim, CLAIMS[claim], scope, "needs at least two noise ratios")
    per_seed = slope_by(values, "gamma", ["seed"])
    est = interval(per_seed).scaled(scale * PER_10_POINTS)
    if falls:
        est = est.negated()
    means = values.mean_by(["gamma"])
    shown = ", ".join(f"{v * (100 if unit == 'pts' else 1):.{2 if unit == 'pts' else 4}f} at {100 * g:g}%"
                      for g, v in zip(means.table["gamma"], means.value, strict=True))
    direction = "fall" if falls else "rise"
    evidence = (f"{label}: {shown}; {direction} per 10 pts of gamma {format_interval(est.effect, est.ci_low, est.ci_high, 3)}"
                f" {unit} ({_seeds(est)})")
    return claim_row(claim, CLAIMS[claim], scope, est, unit=f"{unit} per 10 pts of gamma", evidence=evidence)


def claim_c2(acc: Scores, track: str, family: str | None = None) -> dict:
    d = acc.where(track=track, kind="OOD")
    if family is not None:
        d = d.where(family=family)
    scope = track if family is None else f"{track}, {family}"
    values = _family_mean(d, ["gamma", "seed"])
    return _slope_claim(values, "C2", scope, falls=True, unit="pts", scale=100, label="OOD acc")


def claim_c3ab(results: pd.DataFrame, track: str, variant: str, claim: str) -> dict:
    kind, metric = ("ID", "sve") if claim == "C3a" else ("OOD", "lsvr")
    column = f"{metric}_{variant}"
    scope = f"{track}; spectrum {variant}"
    d = results[(results["track"] == track) & (results["kind"] == kind)]
    if d.empty or column not in d:
        return not_testable(claim, CLAIMS[claim], scope, f"needs {kind} rows with {column}")
    values = Scores.from_values(d[["gamma", "seed", "family", column]].reset_index(drop=True), column)
    values = _family_mean(values, ["gamma", "seed"]) if kind == "OOD" else values.mean_by(["gamma", "seed"])
    return _slope_claim(values, claim, scope, falls=False, unit=metric.upper(), scale=1,
                        label=f"{kind} {metric.upper()}")


def claim_c3c(results: pd.DataFrame, acc: Scores, track: str, variant: str) -> dict:
    column = f"lsvr_{variant}"
    scope = f"{track}; spectrum {variant}"
    mask = ((acc.table["track"] == track) & (acc.table["kind"] == "OOD")).to_numpy()
    d = acc.where(mask)
    lsvr = results.loc[(results["track"] == track) & (results["kind"] == "OOD")]
    if d.table.empty or lsvr["gamma"].nunique() < 3:
        return not_testable("C3c", CLAIMS["C3c"], scope, "needs OOD results at >= 3 noise ratios")
    keys = ["gamma", "seed", "train_domain", "test_domain"]
    x = lsvr.set_index(keys)[column]
    table = d.table.assign(x=[x.loc[tuple(k)] for k in d.table[keys].itertuples(index=False)])
    r = correlation_by(Scores(table, d.reps, d.metric), "x", ["seed", "family", "train_domain", "test_domain"])
    pairings = len(r.table[["train_domain", "test_domain"]].drop_duplicates())
    per_seed = _family_mean(r, ["seed"])
    est = interval(per_seed).negated()
    mean_r = r.mean_by(["train_domain", "test_domain"])
    negative = int((mean_r.value < 0).sum())
    evidence = (f"Pearson r(LSVR, OOD acc) across gamma within each pairing, mean over {pairings} pairings "
                f"(each family once): {-est.effect:+.2f}; {negative}/{pairings} pairings negative on average; "
                f"claim-signed {format_interval(est.effect, est.ci_low, est.ci_high)} ({_seeds(est)})")
    return claim_row("C3c", CLAIMS["C3c"], scope, est, unit="-Pearson r", evidence=evidence)


def accuracy_scores(results: pd.DataFrame, truth: Mapping[str, np.ndarray], metric: str = "accuracy") -> Scores:
    """Chapter 02's rows as :class:`Scores` of ``metric`` with their test-set resamples."""
    keys = ["track", "gamma", "seed", "kind", "family", "train_domain", "test_domain", "test_id", "pred"]
    return Scores.from_predictions(results[keys].reset_index(drop=True), truth, metric)


def spectral_claims(results: pd.DataFrame, truth: Mapping[str, np.ndarray], variants: tuple[str, ...] = ("authors",),
                    acc: Scores | None = None) -> pd.DataFrame:
    """The C1–C3 table per pre-training track; C3a–C3c once per spectrum variant.

    ``truth`` maps each ``test_id`` to its true labels; ``acc`` (optional) reuses scores already
    computed with :func:`accuracy_scores`.
    """
    acc = acc if acc is not None else accuracy_scores(results, truth)
    rows = []
    families = sorted(results.loc[results["kind"] == "OOD", "family"].unique())
    for track in sorted(results["track"].unique()):
        rows.append(claim_c1(acc, track))
        rows.append(claim_c2(acc, track))
        if len(families) > 1:
            rows += [claim_c2(acc, track, f) for f in families]
        for variant in variants:
            rows.append(claim_c3ab(results, track, variant, "C3a"))
            rows.append(claim_c3ab(results, track, variant, "C3b"))
            rows.append(claim_c3c(results, acc, track, variant))
    return pd.DataFrame(rows, columns=list(COLUMNS))


def variant_dependence(claims: pd.DataFrame) -> pd.DataFrame:
    """C3a–C3c side by side across spectrum variants: does any verdict depend on the variant?"""
    c3 = claims[claims["claim"].isin(["C3a", "C3b", "C3c"])].copy()
    parts = c3["scope"].str.split("; spectrum ", expand=True)
    c3["track"], c3["variant"] = parts[0], parts[1]
    wide = c3.pivot_table(index=["claim", "track"], columns="variant", values="verdict", aggfunc="first")
    wide["depends_on_variant"] = wide.nunique(axis=1) > 1
    return wide.reset_index()


def paper_numbers(claims: pd.DataFrame) -> pd.Series:
    """The paper's side of each claims row, for the Findings (:func:`nml.report.findings.findings`):
    C1–C3 are plotted (Figs. 1 and 3), never tabulated, so each row names its figure."""
    return claims["claim"].map(lambda c: not_tabulated(PAPER_SOURCE[c]) if c in PAPER_SOURCE else "not in the paper's tables")
