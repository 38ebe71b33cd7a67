"""C4–C5 verdicts follow the numbers: planted effects hold, reversed ones do not."""

import itertools

import numpy as np
import pandas as pd

from nml.tuning_claims import claim_c4c, noisy_downstream_claims, tuning_claims


def _rows(gain: dict[str, float], gammas=(0.0, 0.05, 0.1), seeds=(0, 1, 2), clean_bonus=0.0, noise=0.002):
    rng = np.random.default_rng(0)
    rows = []
    for track, kind, g, s, m in itertools.product(["supervised"], ["ID", "OOD"], gammas, seeds, gain):
        acc = 0.8 + gain[m] - 0.01 * g + (clean_bonus if g == 0 else 0.0) + rng.normal(scale=noise)
        rows.append({"track": track, "kind": kind, "gamma": g, "seed": s, "method": m, "acc": acc})
    return pd.DataFrame(rows)


def _verdict(table, claim, scope):
    return table[(table["claim"] == claim) & (table["scope"] == scope)]["verdict"].item()


def test_planted_ordering_holds():
    table = tuning_claims(_rows({"LP": 0.0, "MLP": 0.02, "NMTune": 0.04}, clean_bonus=0.02))
    for kind in ("ID", "OOD"):
        assert _verdict(table, "C4a", f"supervised {kind}") == "holds"
        assert _verdict(table, "C4b", f"supervised {kind}") == "holds"
        assert _verdict(table, "C4c", f"supervised {kind}") == "holds"


def test_reversed_ordering_does_not_hold_and_small_gain_is_weak():
    table = tuning_claims(_rows({"LP": 0.03, "MLP": 0.0, "NMTune": 0.0005}, noise=0.01))
    assert _verdict(table, "C4b", "supervised ID") == "does not hold"
    assert _verdict(table, "C4a", "supervised ID") in ("weak (within seed spread)", "does not hold")


def test_c4c_needs_a_clean_and_a_noisy_checkpoint():
    rows = _rows({"NMTune": 0.0}, gammas=(0.05,))
    assert claim_c4c(rows, "supervised", "ID")["verdict"] == "not testable"


def test_real_model_rows_use_tuner_seeds():
    rows = _rows({"LP": 0.0, "MLP": 0.02, "NMTune": 0.05}, gammas=(0.0,)).drop(columns=["track", "gamma"])
    rows = rows.rename(columns={"seed": "tuner_seed"}).assign(encoder="enc")
    table = tuning_claims(_rows({"LP": 0.0, "MLP": 0.0, "NMTune": 0.0}), real_rows=rows)
    assert _verdict(table, "C4a", "enc ID") == "holds"
    assert _verdict(table, "C4b", "enc OOD") == "holds"


def _noisy(lp_ranking_kept: bool):
    rows = []
    for r, g, m in itertools.product([0.0, 0.1, 0.3], [0.0, 0.05, 0.1, 0.2], ["LP", "NMTune"]):
        base = {0.0: 0.80, 0.05: 0.82, 0.1: 0.81, 0.2: 0.78}[g]
        if not lp_ranking_kept and r > 0:
            base = 1.6 - base  # reverse the ranking over gamma
        acc = base - r * 0.2 + (0.03 if m == "NMTune" and r == 0.1 else 0.0)
        rows.append({"track": "supervised", "kind": "ID", "gamma": g, "seed": 0, "method": m,
                     "downstream_noise": r, "acc": acc})
    return pd.DataFrame(rows)


def test_noisy_downstream_claims():
    kept = {r["claim"]: r for r in noisy_downstream_claims(_noisy(True))}
    assert kept["C5a"]["verdict"] == "holds" and kept["C5a"]["effect_pts"] == 1.0
    assert kept["C5b"]["verdict"] == "holds" and "10%" in kept["C5b"]["scope"]
    broken = {r["claim"]: r for r in noisy_downstream_claims(_noisy(False))}
    assert broken["C5a"]["verdict"] == "does not hold"
