"""Claims L1–L2 (the language part of C4, the NMTune paper's Sec. 4.2), judged from chapter 05's fits.

Input: chapter 05's tidy rows (:func:`nml.chapters.ch05_language.run.tune_encoders`) — one per (encoder,
task, method, tuner seed, scored set) with ``kind`` (``val`` / ``ID`` / ``OOD``), ``family`` (the
task an OOD set belongs to), ``metric`` (the task's metric), ``test_id`` and ``pred`` (the
predictions on that set) — and the true labels of every scored set by ``test_id``.

* **L1** — NMTune beats LP; **L2** — NMTune beats MLP tuning; each per encoder, in-domain (ID)
  and out-of-domain (OOD). Effect = NMTune's score minus the rival's, in points of the task
  metric (×100), computed per tuner seed (both methods read the same frozen features and the
  same samples), averaged over the ID test splits, or over the OOD sets with each task's OOD
  family counted once (mean within a family, then over families). The interval adds the test
  samples' bootstrap (shared by both methods: paired) to the spread over seeds
  (:func:`nml.report.scores.interval`); the verdict reads the interval (:mod:`nml.report.verdict`).

**A set at chance measures nothing.** Before a set enters a claim, the methods' mean score on it
must lie clearly above chance (its interval above the chance level: the majority class's share
for accuracy, 0 for MCC and Pearson). An ID task is checked on its *validation* split (carved from
its training split, never on test labels); an OOD set, which has no validation part, on itself —
a precondition stated in advance that favours no method (the mean over all methods is checked,
not LP's or NMTune's). Sets that fail are left out and named; when no set is left the claim is
``not testable``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from nml.report.findings import paper_number
from nml.report.reference import paper_table
from nml.report.scores import Scores, interval, paired
from nml.report.verdict import COLUMNS, MIN_SEEDS, claim_row, format_interval, not_testable

CLAIMS = {
    "L1": "NMTune beats LP on frozen language-model features",
    "L2": "NMTune beats MLP tuning on frozen language-model features",
}
RIVALS = {"L1": "LP", "L2": "MLP"}
KEYS = ["encoder", "kind", "task", "family", "test", "test_id", "metric", "method", "seed"]


def chance_level(metric: str, labels: np.ndarray) -> float:
    """The score of a classifier that knows nothing: the majority share (accuracy), 0 (MCC, Pearson)."""
    if metric == "accuracy":
        return float(np.bincount(np.asarray(labels, dtype=np.int64)).max() / len(labels))
    if metric in ("mcc", "pearson"):
        return 0.0
    raise ValueError(f"no chance level for metric {metric!r}")


def task_scores(rows: pd.DataFrame, truth: Mapping[str, np.ndarray],
                gold: Mapping[str, np.ndarray] | None = None) -> Scores:
    """Each row's task metric on its set and on the set's bootstrap resamples (one block per metric)."""
    parts = []
    for metric, d in rows[[*KEYS, "pred"]].groupby("metric", sort=False):
        parts.append(Scores.from_predictions(d.reset_index(drop=True), truth, str(metric), gold_scores=gold))
    if not parts:
        raise ValueError("no rows to score")
    return Scores(pd.concat([p.table for p in parts], ignore_index=True), np.vstack([p.reps for p in parts]), "task metric")


def chance_check(scores: Scores, truth: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Is each set above chance? One row per (encoder, kind, task, test): the methods' mean score per
    seed minus the chance level, its interval (seeds and test samples) and ``above_chance``.

    ``above_chance`` is True when the interval lies above 0, False when it does not, and NaN when
    the interval is undefined (a single seed): such sets are not excluded, their claims are
    ``not judged`` anyway.
    """
    out = []
    keys = ["encoder", "kind", "task", "family", "test", "test_id", "metric"]
    per_set = scores.mean_by([*keys, "seed"])  # mean over methods
    for key, idx in per_set.table.groupby(keys, sort=False).indices.items():
        info = dict(zip(keys, key, strict=True))
        chance = chance_level(info["metric"], truth[info["test_id"]])
        est = interval(per_set.reps[idx] - chance)
        finite = np.isfinite(est.ci_low)
        out.append({**info, "chance": chance, "score": est.effect + chance,
                    "above_chance_by": est.effect, "ci_low": est.ci_low, "ci_high": est.ci_high, "n_seeds": est.n_seeds,
                    "above_chance": bool(est.ci_low > 0) if finite else np.nan})
    return pd.DataFrame(out)


def _usable(check: pd.DataFrame, encoder: str, kind: str) -> tuple[list[str], list[str]]:
    """(tasks or OOD sets that enter the claim, those left out at chance), for ``encoder`` and ``kind``.

    ID tasks are checked on their validation split; OOD sets on themselves."""
    gate_kind = "val" if kind == "ID" else "OOD"
    col = "task" if kind == "ID" else "test"
    d = check[(check["encoder"] == encoder) & (check["kind"] == gate_kind)]
    out = d.loc[d["above_chance"].eq(False), col].tolist()  # NaN (not checked: one seed) is kept
    keep = [x for x in d[col].tolist() if x not in out]
    return keep, out


def beats(scores: Scores, check: pd.DataFrame, claim: str, encoder: str, kind: str) -> dict:
    """One row: NMTune vs ``RIVALS[claim]`` for one encoder and kind (see the module docstring)."""
    better, worse = "NMTune", RIVALS[claim]
    scope = f"{encoder}, {kind}"
    d = scores.where(encoder=encoder, kind=kind)
    methods = set(d.table["method"])
    if d.table.empty or better not in methods or worse not in methods:
        return not_testable(claim, CLAIMS[claim], scope, f"needs {better} and {worse} results on {kind} sets")
    keep, out = _usable(check, encoder, kind)
    col, unit = ("task", "ID task") if kind == "ID" else ("test", "OOD set")
    left_out = f"; left out at chance: {', '.join(out)}" if out else ""
    if not keep:
        return not_testable(claim, CLAIMS[claim], scope, f"every {unit} is at chance"
                            f"{' on its validation split' if kind == 'ID' else ''}: {', '.join(out)}")
    d = d.where(d.table[col].isin(keep).to_numpy())
    per_method = d.mean_by(["method", "seed", "family"]).mean_by(["method", "seed"])  # each family once
    a, b = per_method.where(method=better), per_method.where(method=worse)
    est = interval(paired(a, b, ["seed"])).scaled(100)
    scores_by = d.mean_by([col, "method"]).keyed([col, "method"])
    wins = sum(scores_by[(t, better)][0] > scores_by[(t, worse)][0] for t in keep
               if (t, better) in scores_by and (t, worse) in scores_by)
    shown = (format_interval(est.effect, est.ci_low, est.ci_high) if np.isfinite(est.ci_low)
             else f"{est.effect:+.2f} (no interval)")
    seeds = f"{est.n_seeds} seeds" + ("" if est.n_seeds >= MIN_SEEDS else f", fewer than {MIN_SEEDS}: not judged")
    over = f"{len(keep)} {unit}{'' if len(keep) == 1 else 's'}"
    over += " (checked on validation)" if kind == "ID" else (", each family once" if len(set(d.table["family"])) > 1 else "")
    evidence = (f"{better} {100 * a.value.mean():.2f} vs {worse} {100 * b.value.mean():.2f} (task metric x100, "
                f"mean over {over}); difference {shown} pts ({seeds}); {better} ahead on {wins}/{len(keep)}{left_out}")
    return claim_row(claim, CLAIMS[claim], scope, est, unit="pts", evidence=evidence)


def language_claims(rows: pd.DataFrame, truth: Mapping[str, np.ndarray], gold: Mapping[str, np.ndarray] | None = None,
                    check: pd.DataFrame | None = None) -> pd.DataFrame:
    """L1 and L2 per encoder, ID and OOD, in the schema :data:`nml.report.verdict.COLUMNS`.

    ``truth`` maps each ``test_id`` to its labels, ``gold`` to its gold scores (Pearson tasks);
    ``check`` reuses a :func:`chance_check` table.
    """
    scores = task_scores(rows, truth, gold)
    check = chance_check(scores, truth) if check is None else check
    out = []
    for encoder in rows["encoder"].unique():
        for kind in ("ID", "OOD"):
            for claim in ("L1", "L2"):
                out.append(beats(scores, check, claim, encoder, kind))
    return pd.DataFrame(out, columns=list(COLUMNS))


def paper_numbers(claims: pd.DataFrame) -> pd.Series:
    """The paper's side of each claims row, for the Findings (:func:`nml.report.findings.findings`):
    the same difference (NMTune minus LP for L1, minus MLP for L2) in the paper's Table 2 (language
    part: GLUE ID, GLUE-X OOD), in points of its average score, mean over its models, on the row's
    split (the last word of the scope)."""
    table = paper_table("nmtune_table2_language").pivot_table(index=["model", "split"], columns="method", values="value")

    def one(claim: str, scope: str) -> str:
        split = scope.split()[-1]
        if claim not in RIVALS or split not in set(table.index.get_level_values("split")):
            return "not in the paper's tables"
        diff = (table["NMTune"] - table[RIVALS[claim]]).xs(split, level="split")
        return paper_number(float(diff.mean()), "pts", f"Table 2, {split}: mean of {len(diff)} models")

    return pd.Series([one(c, s) for c, s in zip(claims["claim"], claims["scope"], strict=True)], index=claims.index)
