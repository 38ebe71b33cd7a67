"""Claims L1–L2 (nml.chapters.ch05_language.claims) on synthetic fit rows whose predictions are built to a given accuracy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nml.chapters.ch05_language.claims import (
    chance_check,
    chance_level,
    language_claims,
    task_scores,
)
from nml.report.verdict import COLUMNS

N = 300  # samples per scored set


def _labels(test_id: str) -> np.ndarray:
    return np.arange(N) % 2


def _pred(y: np.ndarray, acc: float, rng: np.random.Generator) -> np.ndarray:
    """Predictions right on exactly round(acc * n) samples, drawn at random."""
    right = np.zeros(len(y), bool)
    right[rng.permutation(len(y))[: round(acc * len(y))]] = True
    return np.where(right, y, 1 - y).astype(np.int64)


# (kind, task, test): ID tasks a and b with their validation splits; OOD: two sets of task a's
# family, one of task b's
SETS = [("val", "a", "a/val"), ("ID", "a", "a/test"), ("OOD", "a", "a-words"), ("OOD", "a", "a-terms"),
        ("val", "b", "b/val"), ("ID", "b", "b/test"), ("OOD", "b", "b-debates")]


def _rows(acc: dict[str, float], seeds: int = 3, override: dict | None = None, seed_jitter: float = 0.01,
          methods: tuple[str, ...] = ("LP", "MLP", "NMTune")) -> tuple[pd.DataFrame, dict]:
    """One row per (method, seed, set); accuracy ``acc[method]`` (± a seed jitter), or
    ``override[test][method]`` where given (a set at chance, say)."""
    rng = np.random.default_rng(0)
    truth, out = {test: _labels(test) for _, _, test in SETS}, []
    for seed in range(seeds):
        for kind, task, test in SETS:
            for method in methods:
                a = (override or {}).get(test, acc).get(method, acc[method])
                a = float(np.clip(a + seed_jitter * rng.standard_normal(), 0, 1))
                out.append({"encoder": "enc", "kind": kind, "task": task, "family": task, "test": test, "test_id": test,
                            "metric": "accuracy", "method": method, "seed": seed,
                            "pred": _pred(truth[test], a, rng)})
    return pd.DataFrame(out), truth


def _verdicts(claims: pd.DataFrame) -> dict[tuple[str, str], str]:
    return {(r.claim, r.scope.split(", ")[1]): r.verdict for r in claims.itertuples()}


def test_claims_hold_when_nmtune_is_clearly_better_and_fail_when_clearly_worse():
    rows, truth = _rows({"LP": 0.70, "MLP": 0.72, "NMTune": 0.82})
    good = language_claims(rows, truth)
    assert list(good.columns) == list(COLUMNS) and len(good) == 4
    assert set(good["verdict"]) == {"holds"}
    assert (good["ci_low"] > 0).all() and (good["n_seeds"] == 3).all()
    rows, truth = _rows({"LP": 0.80, "MLP": 0.80, "NMTune": 0.68})
    bad = language_claims(rows, truth)
    assert set(bad["verdict"]) == {"does not hold"} and (bad["ci_high"] < 0).all()


def test_a_small_difference_with_few_test_samples_is_inconclusive():
    rows, truth = _rows({"LP": 0.75, "MLP": 0.75, "NMTune": 0.755}, seed_jitter=0.02)
    claims = language_claims(rows, truth)
    assert set(claims["verdict"]) == {"inconclusive"}
    assert ((claims["ci_low"] < 0) & (claims["ci_high"] > 0)).all()


def test_effect_is_paired_per_seed_and_ood_weights_each_family_once():
    rows, truth = _rows({"LP": 0.70, "MLP": 0.70, "NMTune": 0.70}, seed_jitter=0.0,
                        override={"a-words": {"NMTune": 0.90}, "b-debates": {"NMTune": 0.70}})
    claims = language_claims(rows, truth)
    ood = claims[(claims["claim"] == "L1") & claims["scope"].str.endswith("OOD")].iloc[0]
    # family a: (+20 on a-words, 0 on a-terms) / 2 = +10; family b: 0; families once: +5 pts
    # (a plain mean over the three OOD sets would say +6.67)
    assert ood["effect"] == pytest.approx(5.0, abs=1e-9)
    ident = claims[(claims["claim"] == "L1") & claims["scope"].str.endswith("ID")].iloc[0]
    assert ident["effect"] == pytest.approx(0.0, abs=1e-9)


def test_fewer_than_three_seeds_is_not_judged_and_a_missing_method_not_testable():
    rows, truth = _rows({"LP": 0.70, "MLP": 0.72, "NMTune": 0.82}, seeds=2)
    assert set(language_claims(rows, truth)["verdict"]) == {"not judged"}
    rows, truth = _rows({"LP": 0.70, "MLP": 0.72, "NMTune": 0.82}, methods=("LP", "NMTune"))
    v = _verdicts(language_claims(rows, truth))
    assert v[("L1", "ID")] == "holds" and v[("L2", "ID")] == v[("L2", "OOD")] == "not testable"


def test_sets_at_chance_are_left_out_and_named():
    chance = {"LP": 0.5, "MLP": 0.5, "NMTune": 0.5}
    # the b-debates OOD set is at chance for every method: NMTune's apparent loss there is ignored
    rows, truth = _rows({"LP": 0.70, "MLP": 0.72, "NMTune": 0.82}, override={"b-debates": {**chance, "NMTune": 0.40}})
    check = chance_check(task_scores(rows, truth), truth)
    at_chance = check.loc[~check["above_chance"].astype(bool), "test"].tolist()
    assert at_chance == ["b-debates"]
    claims = language_claims(rows, truth, check=check)
    ood = claims[claims["scope"] == "enc, OOD"]
    assert set(ood["verdict"]) == {"holds"} and ood["evidence"].str.contains("left out at chance: b-debates").all()
    # every OOD set at chance: not testable, never a verdict
    rows, truth = _rows({"LP": 0.70, "MLP": 0.72, "NMTune": 0.82},
                        override={t: chance for t in ("a-words", "a-terms", "b-debates")})
    v = _verdicts(language_claims(rows, truth))
    assert v[("L1", "OOD")] == v[("L2", "OOD")] == "not testable" and v[("L1", "ID")] == "holds"


def test_id_tasks_are_checked_on_validation_never_on_test_labels():
    chance = {"LP": 0.5, "MLP": 0.5, "NMTune": 0.5}
    # task b's validation split is at chance: b is left out of the ID claim even though its test
    # split is not, and a's test split at chance does not remove a (its validation is fine)
    rows, truth = _rows({"LP": 0.70, "MLP": 0.72, "NMTune": 0.82},
                        override={"b/val": chance, "a/test": {"LP": 0.5, "MLP": 0.5, "NMTune": 0.55}})
    claims = language_claims(rows, truth)
    l1 = claims[(claims["claim"] == "L1") & (claims["scope"] == "enc, ID")].iloc[0]
    assert "left out at chance: b" in l1["evidence"] and "over 1 ID task" in l1["evidence"]
    assert l1["effect"] == pytest.approx(5.0, abs=3.0)  # task a's test: +5 pts


def test_chance_level_per_metric():
    assert chance_level("accuracy", np.array([0, 0, 0, 1])) == 0.75
    assert chance_level("mcc", np.array([0, 1])) == 0.0 == chance_level("pearson", np.array([0, 1]))
    with pytest.raises(ValueError, match="metric 'f1'"):
        chance_level("f1", np.array([0, 1]))
