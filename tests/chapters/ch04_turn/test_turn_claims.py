"""Claims T1–T6 (nml.chapters.ch04_turn.claims) on synthetic frames whose verdicts can come out each way."""

import zlib

import numpy as np
import pandas as pd
import pytest

from nml.chapters.ch04_turn.claims import CLAIMS, turn_claims
from nml.report.verdict import COLUMNS, DOES_NOT_HOLD, HOLDS, INCONCLUSIVE, NOT_JUDGED, NOT_TESTABLE

N_TEST, N_CLASSES, TEST_ID = 400, 10, "synthetic-test"
Y = np.random.default_rng(0).integers(0, N_CLASSES, N_TEST)
TRUTH = {TEST_ID: Y}
BASELINES = ("ce-fft", "gce-fft", "elr-fft", "ce-lp", "gce-lp", "elr-lp", "dividemix-lp", "unicon-lp")


def predictions(acc: float, key: tuple) -> np.ndarray:
    """Predictions with exactly ``round(acc · N)`` correct, the correct ones drawn per ``key``."""
    rng = np.random.default_rng(zlib.crc32(repr(key).encode()))
    correct = np.zeros(N_TEST, bool)
    correct[rng.permutation(N_TEST)[: round(acc * N_TEST)]] = True
    return np.where(correct, Y, (Y + 1 + rng.integers(0, N_CLASSES - 1, N_TEST)) % N_CLASSES).astype(np.int32)


def run_rows(acc: dict, seeds=(0, 1, 2), jitter=0.01) -> pd.DataFrame:
    """Table 2 rows: ``acc[(noise, method)] = (best, last)``; a seed-specific jitter of ±``jitter``."""
    rows = []
    for seed in seeds:
        shift = jitter * (seed - 1)
        for (noise, method), (best, last) in acc.items():
            study = "mild" if noise == "uniform 0.1" else "table2"
            b, la = best + shift, last + shift
            rows.append({"study": study, "backbone": "ck", "noise": noise, "method": method, "seed": seed,
                         "best": b, "last": la, "test_id": TEST_ID, "fit_seconds": 1.0,
                         "pred_best": predictions(b, (noise, method, seed, "best")),
                         "pred_last": predictions(la, (noise, method, seed, "last"))})
    return pd.DataFrame(rows)


def grid(turn: float, lp_minus_fft_last: float, fft_minus_lp_mild: float) -> dict:
    acc = {}
    for noise in ("uniform 0.6", "uniform 0.9"):
        for m in BASELINES:
            acc[(noise, m)] = (0.60, 0.60)
        if noise == "uniform 0.9":
            for loss in ("ce", "gce", "elr"):
                acc[(noise, f"{loss}-fft")] = (0.55, 0.50)
                acc[(noise, f"{loss}-lp")] = (0.55, 0.50 + lp_minus_fft_last)
        acc[(noise, "turn")] = (0.60 + turn, 0.60 + turn)
    for loss in ("ce", "gce", "elr"):
        acc[("uniform 0.1", f"{loss}-lp")] = (0.70, 0.70)
        acc[("uniform 0.1", f"{loss}-fft")] = (0.70 + fft_minus_lp_mild, 0.70)
    acc[("uniform 0.1", "turn")] = (0.75, 0.75)
    return acc


def claims(rows, **kw) -> pd.DataFrame:
    return turn_claims(rows, TRUTH, "uniform 0.9", "uniform 0.1", **kw)


def verdicts(table: pd.DataFrame, claim: str) -> list[str]:
    return table.loc[table["claim"] == claim, "verdict"].tolist()


def test_schema_and_claim_names():
    table = claims(run_rows(grid(0.1, 0.1, 0.1)))
    assert tuple(table.columns) == COLUMNS
    assert set(table["claim"]) <= set(CLAIMS) and set(table["statement"]) <= set(CLAIMS.values())
    assert (table["n_seeds"] == 3).sum() >= 6


@pytest.mark.parametrize("margin, expected", [(0.10, HOLDS), (-0.10, DOES_NOT_HOLD), (0.0, INCONCLUSIVE)])
def test_t1_against_the_strongest_baseline(margin, expected):
    table = claims(run_rows(grid(margin, 0.1, 0.1)))
    assert verdicts(table, "T1") == [expected] * 2 and verdicts(table, "T1-last") == [expected] * 2
    row = table[table["claim"] == "T1"].iloc[0]
    assert row["effect"] == pytest.approx(100 * margin, abs=0.5)  # pts, positive = TURN ahead
    assert row["ci_low"] < row["effect"] < row["ci_high"]


def test_t1_rival_is_the_baseline_with_the_best_mean_over_seeds():
    acc = grid(0.05, 0.1, 0.1)
    acc[("uniform 0.6", "unicon-lp")] = (0.80, 0.80)  # stronger than TURN (0.65)
    table = claims(run_rows(acc))
    row = table[(table["claim"] == "T1") & (table["scope"] == "ck, uniform 0.6")].iloc[0]
    assert "unicon-lp" in row["evidence"] and row["verdict"] == DOES_NOT_HOLD
    assert row["effect"] == pytest.approx(-15.0, abs=0.5)


@pytest.mark.parametrize("diff, expected", [(0.12, HOLDS), (-0.12, DOES_NOT_HOLD)])
def test_t2_and_t3_each_way(diff, expected):
    table = claims(run_rows(grid(0.1, diff, diff)))
    assert verdicts(table, "T2") == [expected] and verdicts(table, "T3") == [expected]
    assert table.loc[table["claim"] == "T2", "effect"].iloc[0] == pytest.approx(100 * diff, abs=0.5)


def test_not_judged_below_three_seeds_and_not_testable_without_mild():
    table = claims(run_rows(grid(0.1, 0.1, 0.1), seeds=(0, 1)))
    judged = table[table["claim"].isin(["T1", "T1-last", "T2", "T3"])]
    assert (judged["verdict"] == NOT_JUDGED).all() and (judged["n_seeds"] == 2).all()
    no_mild = turn_claims(run_rows(grid(0.1, 0.1, 0.1)), TRUTH, "uniform 0.9", None)
    assert verdicts(no_mild, "T3") == [NOT_TESTABLE]


def timing_rows(turn_s: float, rival_s: float, way="encoder every batch", exclusive=True, seeds=(0, 1, 2)) -> pd.DataFrame:
    rows = []
    for s in seeds:
        rows.append({"backbone": "ck", "noise": "uniform 0.9", "method": "turn", "seed": s, "fit_seconds": turn_s + 0.1 * s,
                     "way": "features extracted once (TURN)", "exclusive": exclusive, "epochs": 4})
        for m in ("dividemix-lp", "unicon-lp"):
            rows.append({"backbone": "ck", "noise": "uniform 0.9", "method": m, "seed": s, "fit_seconds": rival_s - 0.1 * s,
                         "way": way, "exclusive": exclusive, "epochs": 5})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("turn_s, rival_s, expected", [(2.0, 10.0, HOLDS), (10.0, 4.0, DOES_NOT_HOLD)])
def test_t4_each_way(turn_s, rival_s, expected):
    table = claims(run_rows(grid(0.1, 0.1, 0.1)), timing=timing_rows(turn_s, rival_s))
    assert verdicts(table, "T4") == [expected] * 2
    row = table[table["claim"] == "T4"].iloc[0]
    assert row["effect"] == pytest.approx(1 - np.mean([(turn_s + 0.1 * s) / (rival_s - 0.1 * s) for s in range(3)]))


def test_t4_is_not_testable_when_the_comparison_is_unequal():
    rows = run_rows(grid(0.1, 0.1, 0.1))
    cached = claims(rows, timing=timing_rows(2.0, 10.0, way="cached bank of 4 views"))
    assert verdicts(cached, "T4") == [NOT_TESTABLE] * 2
    assert "unequal" in cached.loc[cached["claim"] == "T4", "evidence"].iloc[0]
    shared = claims(rows, timing=timing_rows(2.0, 10.0, exclusive=False))
    assert verdicts(shared, "T4") == [NOT_TESTABLE] * 2 and np.isnan(shared.loc[shared["claim"] == "T4", "effect"]).all()
    assert verdicts(claims(rows), "T4") == [NOT_TESTABLE]


def component_rows(full: float, others: dict) -> pd.DataFrame:
    rows = []
    for s in (0, 1, 2):
        for label, acc in {"LP yes, cleansing every": full, **others}.items():
            a = acc + 0.005 * (s - 1)
            rows.append({"backbone": "ck", "noise": "uniform 0.9", "label": label, "seed": s, "best": a,
                         "test_id": TEST_ID, "pred_best": predictions(a, ("comp", label, s))})
    return pd.DataFrame(rows)


def test_t5_each_way():
    comp = component_rows(0.70, {"LP no, cleansing every": 0.40, "LP yes, cleansing none": 0.80,
                                 "LP yes, cleansing once": 0.70})
    table = claims(run_rows(grid(0.1, 0.1, 0.1)), components=comp).set_index("scope")
    t5 = table[table["claim"] == "T5"]
    assert t5.loc["ck, uniform 0.9, vs LP no, cleansing every", "verdict"] == HOLDS
    assert t5.loc["ck, uniform 0.9, vs LP yes, cleansing none", "verdict"] == DOES_NOT_HOLD
    assert t5.loc["ck, uniform 0.9, vs LP yes, cleansing once", "verdict"] == INCONCLUSIVE
    assert t5.loc["ck, uniform 0.9, vs LP no, cleansing every", "effect"] == pytest.approx(30.0, abs=0.5)


@pytest.mark.parametrize("slope, expected", [(+0.05, HOLDS), (-0.05, DOES_NOT_HOLD)])
def test_t6_each_way(slope, expected):
    taus = [0.3, 0.5, 0.6, 0.7, 0.9]
    pur = pd.DataFrame([{"noise": "uniform 0.9", "seed": s, "tau": t, "first_purity_subset": 0.6 + slope * i + 0.001 * s}
                        for s in (0, 1, 2) for i, t in enumerate(taus)])
    table = claims(run_rows(grid(0.1, 0.1, 0.1)), purity=pur)
    row = table[table["claim"] == "T6"].iloc[0]
    assert row["verdict"] == expected and row["unit"] == "Spearman rho"
    assert row["effect"] == pytest.approx(np.sign(slope))
    flat = pur.assign(first_purity_subset=[0.6 + 0.02 * ((i + s) % 3) for s in (0, 1, 2) for i in range(5)])
    assert verdicts(claims(run_rows(grid(0.1, 0.1, 0.1)), purity=flat), "T6") == [INCONCLUSIVE]
