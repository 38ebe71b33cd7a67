"""Claims C4–C5 of the NMTune paper (SPEC §1), judged from chapter 03's numbers.

Same rules as ``nml.claims``: "holds" = the claimed sign and larger than the spread over seeds;
"weak (within seed spread)" = the claimed sign only; "does not hold" = the opposite sign or no
change; "not testable" = the grid lacks what the claim needs.

Differences between methods are *paired*: for each seed (and γ) the difference is taken on the
same features and data, and the spread is the standard deviation of those paired differences.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from nml.claims import _std, _verdict

CLAIMS = {
    "C4a": "NMTune beats MLP tuning",
    "C4b": "MLP tuning beats LP",
    "C4c": "with NMTune, clean pre-training is best again (beats every noisy checkpoint)",
    "C5a": "with noisy downstream labels, LP keeps the ranking of pre-training noise levels it has with clean labels",
    "C5b": "NMTune beats LP while downstream noise is light",
}


def _row(claim: str, scope: str, effect: float, evidence: str, verdict: str) -> dict:
    return {"claim": claim, "statement": CLAIMS[claim], "scope": scope, "verdict": verdict,
            "effect_pts": effect, "evidence": evidence}


def _seed_col(rows: pd.DataFrame) -> str:
    return "seed" if "seed" in rows else "tuner_seed"


def _task_mean(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Average over tasks and test domains: one accuracy per (keys, method)."""
    return rows.groupby([*keys, "method"])["acc"].mean().unstack("method")


def _beats(rows: pd.DataFrame, better: str, worse: str, claim: str, scope: str, keys: list[str]) -> dict:
    if rows.empty or better not in set(rows["method"]) or worse not in set(rows["method"]):
        return _row(claim, scope, float("nan"), f"needs {better} and {worse} results", "not testable")
    wide = _task_mean(rows, keys)
    diff = 100 * (wide[better] - wide[worse])
    seed = _seed_col(rows)
    per_seed = diff.groupby(level=seed).mean() if seed in keys else diff
    effect, spread = float(per_seed.mean()), _std(per_seed)
    wins = int((diff > 0).sum())
    evidence = (f"{better} {100 * wide[better].mean():.2f}% vs {worse} {100 * wide[worse].mean():.2f}% "
                f"(mean {effect:+.2f} pts, paired seed spread {spread:.2f}; {better} ahead in {wins}/{len(diff)} "
                f"{'/'.join(k for k in keys)} cells)")
    return _row(claim, scope, effect, evidence, _verdict(effect, spread))


def claim_c4c(rows: pd.DataFrame, track: str, kind: str, method: str = "NMTune") -> dict:
    d = rows[(rows["track"] == track) & (rows["kind"] == kind) & (rows["method"] == method)]
    per = d.groupby(["gamma", "seed"])["acc"].mean().reset_index()
    gammas = sorted(per["gamma"].unique())
    scope = f"{track} {kind}"
    if 0.0 not in gammas or len(gammas) < 2:
        return _row("C4c", scope, float("nan"), "needs gamma 0 and a noisy checkpoint", "not testable")
    means = per.groupby("gamma")["acc"].mean()
    rival = means.drop(0.0).idxmax()
    clean, other = per[per["gamma"] == 0.0]["acc"], per[per["gamma"] == rival]["acc"]
    effect = 100 * (means[0.0] - means[rival])
    spread = 100 * max(_std(clean), _std(other))
    evidence = (f"{method} {kind} acc " + ", ".join(f"{100 * m:.2f}% at {100 * g:g}%" for g, m in means.items())
                + f"; clean minus best noisy ({100 * rival:g}%) {effect:+.2f} pts, seed spread {spread:.2f}")
    return _row("C4c", scope, effect, evidence, _verdict(effect, spread))


def tuning_claims(checkpoint_rows: pd.DataFrame, real_rows: pd.DataFrame | None = None,
                  noisy_rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """The C4–C5 table: per track and split on the checkpoints, per encoder on the real models."""
    out = []
    for track in sorted(checkpoint_rows["track"].unique()):
        for kind in ("ID", "OOD"):
            d = checkpoint_rows[(checkpoint_rows["track"] == track) & (checkpoint_rows["kind"] == kind)]
            out.append(_beats(d, "NMTune", "MLP", "C4a", f"{track} {kind}", ["gamma", "seed"]))
            out.append(_beats(d, "MLP", "LP", "C4b", f"{track} {kind}", ["gamma", "seed"]))
            out.append(claim_c4c(checkpoint_rows, track, kind))
    if real_rows is not None and not real_rows.empty:
        for enc in sorted(real_rows["encoder"].unique()):
            for kind in ("ID", "OOD"):
                d = real_rows[(real_rows["encoder"] == enc) & (real_rows["kind"] == kind)]
                out.append(_beats(d, "NMTune", "MLP", "C4a", f"{enc} {kind}", ["tuner_seed"]))
                out.append(_beats(d, "MLP", "LP", "C4b", f"{enc} {kind}", ["tuner_seed"]))
    if noisy_rows is not None and not noisy_rows.empty:
        out += noisy_downstream_claims(noisy_rows)
    return pd.DataFrame(out)


def noisy_downstream_claims(rows: pd.DataFrame) -> list[dict]:
    out = []
    ratios = sorted(rows["downstream_noise"].unique())
    for track in sorted(rows["track"].unique()):
        d = rows[(rows["track"] == track) & (rows["kind"] == "ID")]
        lp = d[d["method"] == "LP"].groupby(["downstream_noise", "gamma"])["acc"].mean().unstack("gamma")
        if 0.0 in lp.index and len(lp.columns) >= 3 and len(ratios) >= 2:
            rhos = {r: spearmanr(lp.loc[0.0], lp.loc[r]).statistic for r in ratios if r > 0}
            mean_rho = float(np.nanmean(list(rhos.values())))
            evidence = "Spearman rho of LP accuracy over gamma vs clean downstream labels: " + ", ".join(
                f"{rho:+.2f} at {100 * r:g}%" for r, rho in rhos.items())
            verdict = "holds" if mean_rho >= 0.5 else ("weak (within seed spread)" if mean_rho > 0 else "does not hold")
            out.append(_row("C5a", f"{track} ID", mean_rho, evidence, verdict))
        else:
            out.append(_row("C5a", f"{track} ID", float("nan"), "needs downstream noise 0 and >= 3 gammas", "not testable"))
        light = [r for r in ratios if r > 0][:1]
        for r in light:
            sub = d[d["downstream_noise"] == r]
            row = _beats(sub, "NMTune", "LP", "C5b", f"{track} ID, downstream noise {100 * r:g}%", ["gamma", "seed"])
            out.append(row)
    return out
