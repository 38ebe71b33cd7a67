"""The language part of claim C4 (SPEC §1, the paper's Sec. 4.2), judged from chapter 05's numbers.

Same rules as ``nml.tuning_claims``: "holds" = the claimed sign and larger than the spread over
seeds; "weak (within seed spread)" = the claimed sign only; "does not hold" = the opposite sign
or no change. Differences are paired: for each tuner seed, both methods read the same features,
and the score (the task's metric) is averaged over the tasks (ID) or the OOD test sets.
"""

from __future__ import annotations

import pandas as pd

from nml.claims import _std, _verdict

CLAIMS = {
    "L1": "NMTune beats LP on frozen language-model features",
    "L2": "NMTune beats MLP tuning on frozen language-model features",
}


def _row(claim: str, encoder: str, kind: str, effect: float, evidence: str, verdict: str) -> dict:
    return {"claim": claim, "statement": CLAIMS[claim], "encoder": encoder, "kind": kind, "verdict": verdict,
            "effect_pts": effect, "evidence": evidence}


def beats(rows: pd.DataFrame, better: str, worse: str, claim: str, encoder: str, kind: str) -> dict:
    """One verdict: ``better`` vs ``worse`` on ``rows`` (one encoder, one kind), paired by seed."""
    methods = set(rows["method"])
    if rows.empty or better not in methods or worse not in methods:
        return _row(claim, encoder, kind, float("nan"), f"needs {better} and {worse} results", "not testable")
    per_seed = rows.groupby(["seed", "method"])["score"].mean().unstack("method")
    diff = 100 * (per_seed[better] - per_seed[worse])
    effect, spread = float(diff.mean()), _std(diff)
    per_test = rows.groupby(["test", "method"])["score"].mean().unstack("method")
    wins = int((per_test[better] > per_test[worse]).sum())
    evidence = (f"{better} {100 * per_seed[better].mean():.2f} vs {worse} {100 * per_seed[worse].mean():.2f} "
                f"(mean {effect:+.2f} pts, paired seed spread {spread:.2f}; {better} ahead on {wins}/{len(per_test)} "
                f"{'tasks' if kind == 'ID' else 'OOD sets'})")
    return _row(claim, encoder, kind, effect, evidence, _verdict(effect, spread))


def language_claims(rows: pd.DataFrame) -> pd.DataFrame:
    """L1 and L2 per encoder, in-domain and out-of-domain."""
    out = []
    for encoder in rows["encoder"].unique():
        for kind in ("ID", "OOD"):
            d = rows[(rows["encoder"] == encoder) & (rows["kind"] == kind)]
            out.append(beats(d, "NMTune", "LP", "L1", encoder, kind))
            out.append(beats(d, "NMTune", "MLP", "L2", encoder, kind))
    return pd.DataFrame(out)
