"""Claims C4–C5 of the NMTune paper (Sec. 3 and App. B.5), judged from chapter 03's fits.

Input rows: one per (fit, test set) with ``method`` (LP / MLP / NMTune), ``kind`` (ID / OOD),
``family``, ``test_id``, ``pred`` (the fit's test predictions) and ``seed`` (the replication
seed), with either ``track`` and ``gamma`` (01's checkpoints; the tuner seed is the checkpoint's
seed) or ``encoder`` (published encoders; ``seed`` is the tuner's). Every effect is a per-seed
statistic averaged over seeds and judged by its 95% interval (:mod:`nml.report.verdict`);
methods are compared on the same features, seeds and test samples (paired), and OOD averages
weight each family once.

* **C4a / C4b** — NMTune minus MLP / MLP minus LP, macro-F1 in points (the paper's Fig. 5 plots
  F1); the accuracy difference and its interval are in the evidence.
* **C4c** — "with NMTune the clean checkpoint is best again" presupposes that without NMTune a
  noisy checkpoint beats the clean one. It is tested only where LP or MLP ranks some noisy
  checkpoint above the clean one (mean macro-F1 over seeds); elsewhere ``not testable``. Effect:
  NMTune's macro-F1 on the clean checkpoint minus on its best noisy rival (the noisy γ with the
  highest NMTune mean: the strictest rival).
* **C5a** — with noisy downstream labels and LP, slight pre-training noise (5–10%, averaged)
  beats clean pre-training (accuracy, per downstream noise ratio).
* **C5b** — with noisy downstream labels and NMTune, the clean checkpoint is best again (as
  C4c, testable where LP ranks a noisy checkpoint above clean at that ratio).
* **C5c** — under the heaviest downstream noise, NMTune falls behind LP (LP minus NMTune).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from nml.report.findings import not_tabulated, paper_number
from nml.report.reference import paper_table
from nml.report.scores import Estimate, Scores, interval, paired
from nml.report.verdict import COLUMNS, claim_row, format_interval, not_testable

CLAIMS = {
    "C4a": "NMTune beats MLP tuning (macro-F1)",
    "C4b": "MLP tuning beats LP (macro-F1)",
    "C4c": "with NMTune, clean pre-training is best again where LP or MLP prefers a noisy checkpoint (macro-F1)",
    "C5a": "with noisy downstream labels and LP, slight pre-training noise (5-10%) beats clean pre-training",
    "C5b": "with noisy downstream labels and NMTune, the clean checkpoint is best again",
    "C5c": "under heavy downstream noise, NMTune falls behind LP",
}
SLIGHT = (0.04, 0.11)
PAPER_SOURCE = {"C4c": "Fig. 5", "C5a": "Figs. 15-16", "C5b": "Figs. 15-16", "C5c": "Figs. 15-16"}
"""Where the paper shows the claims its tables have no number for."""
# checkpoint rows carry ``tuner_seed`` beside ``seed`` (the same number); it is kept as a key column
_KEYS = ("track", "gamma", "seed", "encoder", "tuner_seed", "downstream_noise", "method", "kind", "family",
         "train_domain", "test_domain")


def method_scores(rows: pd.DataFrame, truth: Mapping[str, np.ndarray], metric: str) -> Scores:
    """Chapter 03's rows as :class:`Scores` of ``metric`` (with the test-set resamples)."""
    keys = [k for k in _KEYS if k in rows]
    return Scores.from_predictions(rows[[*keys, "test_id", "pred"]].reset_index(drop=True), truth, metric)


def _per_seed(scores: Scores, keys: list[str]) -> Scores:
    """Mean over test domains within each family, then over families, then over everything but
    the seed and ``keys`` (e.g. the γ's)."""
    extra = [k for k in ("gamma",) if k in scores.table and k not in keys]
    by_family = scores.mean_by(["seed", *keys, *extra, "family"]).mean_by(["seed", *keys, *extra])
    return by_family.mean_by(["seed", *keys])


def _difference(scores: Scores, better: str, worse: str) -> Estimate:
    per = _per_seed(scores, ["method"])
    diff = paired(per.where(method=better), per.where(method=worse), ["seed"])
    return interval(diff).scaled(100)


def claim_beats(f1: Scores, acc: Scores, better: str, worse: str, claim: str, scope: str) -> dict:
    methods = set(f1.table["method"])
    if f1.table.empty or better not in methods or worse not in methods:
        return not_testable(claim, CLAIMS[claim], scope, f"needs {better} and {worse} results")
    est = _difference(f1, better, worse)
    est_acc = _difference(acc, better, worse)
    means = _per_seed(f1, ["method"]).mean_by(["method"]).keyed(["method"])
    evidence = (f"macro-F1 {better} {100 * means[(better,)][0]:.2f} vs {worse} {100 * means[(worse,)][0]:.2f}: "
                f"{format_interval(est.effect, est.ci_low, est.ci_high)} pts; accuracy "
                f"{format_interval(est_acc.effect, est_acc.ci_low, est_acc.ci_high)} pts ({est.n_seeds} seeds)")
    return claim_row(claim, CLAIMS[claim], scope, est, evidence=evidence)


def _gamma_means(scores: Scores, method: str) -> pd.Series:
    per = _per_seed(scores.where(method=method), ["gamma"]).mean_by(["gamma"])
    return pd.Series(per.value, index=per.table["gamma"]).sort_index()


def claim_clean_best_again(scores: Scores, claim: str, scope: str, reference: tuple[str, ...],
                           unit: str = "pts") -> dict:
    """C4c / C5b: NMTune's clean checkpoint vs its best noisy rival, where a reference method
    ranks a noisy checkpoint above the clean one."""
    methods = set(scores.table["method"])
    gammas = sorted(set(scores.table["gamma"])) if not scores.table.empty else []
    if "NMTune" not in methods or 0.0 not in gammas or len(gammas) < 2:
        return not_testable(claim, CLAIMS[claim], scope, "needs NMTune on the clean and a noisy checkpoint")
    preferring = []
    for m in reference:
        if m in methods:
            means = _gamma_means(scores, m)
            if means.drop(0.0).max() > means[0.0]:
                preferring.append(f"{m} prefers {100 * means.drop(0.0).idxmax():g}%")
    if not preferring:
        return not_testable(claim, CLAIMS[claim], scope,
                            f"{' and '.join(m for m in reference if m in methods)} already rank the clean checkpoint first: "
                            "nothing for NMTune to restore")
    nm = _gamma_means(scores, "NMTune")
    rival = float(nm.drop(0.0).idxmax())
    per = _per_seed(scores.where(method="NMTune"), ["gamma"])
    diff = paired(per.where(gamma=0.0), per.where(gamma=rival), ["seed"])
    est = interval(diff).scaled(100)
    evidence = (f"{'; '.join(preferring)}; NMTune " + ", ".join(f"{100 * v:.2f} at {100 * g:g}%" for g, v in nm.items())
                + f"; clean minus best noisy ({100 * rival:g}%) {format_interval(est.effect, est.ci_low, est.ci_high)} "
                f"{unit} ({est.n_seeds} seeds)")
    return claim_row(claim, CLAIMS[claim], scope, est, evidence=evidence)


def _c4_claims(rows: pd.DataFrame, truth: Mapping[str, np.ndarray], group: str, *, with_c4c: bool) -> list[dict]:
    """C4a, C4b (and C4c across checkpoints) per value of ``group`` (track or encoder) and split kind."""
    f1, acc = method_scores(rows, truth, "macro_f1"), method_scores(rows, truth, "accuracy")
    out = []
    for value in sorted(rows[group].unique()):
        for kind in ("ID", "OOD"):
            scope = f"{value} {kind}"
            sf, sa = f1.where(**{group: value, "kind": kind}), acc.where(**{group: value, "kind": kind})
            out.append(claim_beats(sf, sa, "NMTune", "MLP", "C4a", scope))
            out.append(claim_beats(sf, sa, "MLP", "LP", "C4b", scope))
            if with_c4c:
                out.append(claim_clean_best_again(sf, "C4c", scope, ("LP", "MLP")))
    return out


def tuning_claims(checkpoint_rows: pd.DataFrame, truth: Mapping[str, np.ndarray],
                  real_rows: pd.DataFrame | None = None, noisy_rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """The C4–C5 table: per track and split on the checkpoints, per encoder on the real models,
    and the noisy-downstream claims. ``truth`` maps every ``test_id`` to its true labels."""
    out = []
    if not checkpoint_rows.empty:
        out += _c4_claims(checkpoint_rows, truth, "track", with_c4c=True)
    if real_rows is not None and not real_rows.empty:
        out += _c4_claims(real_rows, truth, "encoder", with_c4c=False)
    if noisy_rows is not None and not noisy_rows.empty:
        out += noisy_downstream_claims(noisy_rows, truth)
    return pd.DataFrame(out, columns=list(COLUMNS))


def noisy_downstream_claims(rows: pd.DataFrame, truth: Mapping[str, np.ndarray]) -> list[dict]:
    """C5a–C5c on the ID tasks, per pre-training track and downstream noise ratio (accuracy)."""
    out = []
    rows = rows[rows["kind"] == "ID"]
    acc = method_scores(rows, truth, "accuracy")
    ratios = sorted(r for r in rows["downstream_noise"].unique() if r > 0)
    for track in sorted(rows["track"].unique()):
        for r in ratios:
            scope = f"{track} ID, downstream noise {100 * r:g}%"
            sub = acc.where(track=track, downstream_noise=r)
            out.append(_slight_beats_clean(sub.where(method="LP"), scope))
            out.append(claim_clean_best_again(sub, "C5b", scope, ("LP",)))
        if ratios:
            heavy = ratios[-1]
            scope = f"{track} ID, downstream noise {100 * heavy:g}%"
            sub = acc.where(track=track, downstream_noise=heavy)
            methods = set(sub.table["method"])
            if {"LP", "NMTune"} <= methods:
                est = _difference(sub, "LP", "NMTune")
                out.append(claim_row("C5c", CLAIMS["C5c"], scope, est, evidence=(
                    f"LP minus NMTune accuracy {format_interval(est.effect, est.ci_low, est.ci_high)} pts, "
                    f"averaged over the pre-training noise ratios ({est.n_seeds} seeds)")))
            else:
                out.append(not_testable("C5c", CLAIMS["C5c"], scope, "needs LP and NMTune"))
    if not ratios:
        out.append(not_testable("C5a", CLAIMS["C5a"], "ID", "needs a downstream noise ratio above 0"))
    return out


def _slight_beats_clean(lp: Scores, scope: str) -> dict:
    gammas = sorted(set(lp.table["gamma"])) if not lp.table.empty else []
    slight = [g for g in gammas if SLIGHT[0] <= g <= SLIGHT[1]]
    if 0.0 not in gammas or not slight:
        return not_testable("C5a", CLAIMS["C5a"], scope, "needs LP on the clean and a 5% or 10% checkpoint")
    per = _per_seed(lp, ["gamma"])
    noisy = per.where(per.table["gamma"].isin(slight)).mean_by(["seed"])
    est = interval(paired(noisy, per.where(gamma=0.0), ["seed"])).scaled(100)
    means = _gamma_means(lp, "LP")
    evidence = ("LP acc " + ", ".join(f"{100 * v:.2f} at {100 * g:g}%" for g, v in means.items())
                + f"; slight minus clean {format_interval(est.effect, est.ci_low, est.ci_high)} pts ({est.n_seeds} seeds)")
    return claim_row("C5a", CLAIMS["C5a"], scope, est, evidence=evidence)


def paper_numbers(claims: pd.DataFrame) -> pd.Series:
    """The paper's side of each claims row, for the Findings (:func:`nml.report.findings.findings`).

    C4a / C4b: the same difference of macro-F1 in points (NMTune − MLP, MLP − LP) in the paper's
    Table 2 (vision), mean over its published models, on the row's split (ID or OOD: the last word
    of the scope). The other claims are plotted only (Figs. 5, 15 and 16): the row names the figure.
    """
    table = paper_table("nmtune_table2_vision")
    f1 = table[table["metric"] == "f1"].pivot_table(index=["model", "split"], columns="method", values="value")
    pairs = {"C4a": ("NMTune", "MLP"), "C4b": ("MLP", "LP")}

    def one(claim: str, scope: str) -> str:
        if claim not in pairs:
            return not_tabulated(PAPER_SOURCE[claim]) if claim in PAPER_SOURCE else "not in the paper's tables"
        better, worse = pairs[claim]
        split = scope.split()[-1]
        diff = 100 * (f1[better] - f1[worse]).xs(split, level="split")
        return paper_number(diff.mean(), "pts", f"Table 2, {split}: mean of {len(diff)} models, macro-F1")

    return pd.Series([one(c, s) for c, s in zip(claims["claim"], claims["scope"], strict=True)], index=claims.index)
