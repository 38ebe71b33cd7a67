"""The claims engine (one verdict type, intervals with test-set resampling) and claims C1–C3."""

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nml.chapters.ch02_spectral.claims import spectral_claims, variant_dependence
from nml.metrics import accuracy, macro_f1, mcc, mean_per_class_accuracy
from nml.report.scores import Scores, interval, metric_replicates, resample_counts
from nml.report.verdict import (
    COLUMNS,
    DOES_NOT_HOLD,
    HOLDS,
    INCONCLUSIVE,
    NOT_JUDGED,
    NOT_TESTABLE,
    claim_row,
    verdict_from_interval,
)

# ------------------------------------------------------------------------------------------
# verdicts and intervals


def test_verdict_reads_the_interval_only():
    assert verdict_from_interval(0.1, 2.0, 3) == HOLDS
    assert verdict_from_interval(-2.0, -0.1, 3) == DOES_NOT_HOLD
    assert verdict_from_interval(-0.1, 2.0, 5) == INCONCLUSIVE
    assert verdict_from_interval(0.1, 2.0, 2) == NOT_JUDGED  # two seeds say nothing about another machine
    assert verdict_from_interval(float("nan"), 1.0, 3) == NOT_TESTABLE


def test_claim_rows_have_one_schema_and_cannot_force_a_verdict():
    est = interval(np.array([[1.9], [2.0], [2.1]]))
    row = claim_row("X", "x", "s", est, evidence="e")
    assert tuple(row) == COLUMNS and row["verdict"] == HOLDS and row["n_seeds"] == 3
    with pytest.raises(ValueError, match="can be forced"):
        claim_row("X", "x", "s", est, verdict=HOLDS)
    assert claim_row("X", "x", "s", None)["verdict"] == NOT_TESTABLE


def test_interval_is_a_t_interval_over_seeds_without_test_resamples():
    values = np.array([0.5, 1.0, 2.5, 1.5])
    est = interval(values[:, None])
    half = stats.t.ppf(0.975, 3) * values.std(ddof=1) / 2
    assert est.effect == pytest.approx(values.mean())
    assert est.ci_low == pytest.approx(values.mean() - half) and est.ci_high == pytest.approx(values.mean() + half)
    assert est.se_test == 0.0 and est.n_seeds == 4
    assert np.isnan(interval(np.array([[1.0]])).ci_low)  # one seed: no interval


def test_test_set_resamples_widen_the_interval():
    rng = np.random.default_rng(0)
    base = np.array([1.0, 1.1, 0.9])
    # a test-set spread of 0.5, shared by the seeds (they are scored on the same test set)
    noisy = np.column_stack([base, base[:, None] + rng.normal(0, 0.5, 400)[None, :]])
    quiet = interval(base[:, None])
    wide = interval(noisy)
    assert wide.se_test == pytest.approx(0.5, rel=0.15)
    assert wide.ci_high - wide.ci_low > 3 * (quiet.ci_high - quiet.ci_low)
    assert wide.scaled(100).effect == pytest.approx(100 * wide.effect)
    neg = wide.negated()
    assert neg.ci_low == pytest.approx(-wide.ci_high) and neg.effect == pytest.approx(-wide.effect)


def test_resamples_are_fixed_by_the_test_set_and_paired():
    a = resample_counts("digits/test", 50, 200)
    assert a.shape == (200, 50) and np.all(a.sum(1) == 50)
    assert np.array_equal(a, resample_counts("digits/test", 50, 200))  # same test set, same resamples
    assert not np.array_equal(a, resample_counts("other/test", 50, 200))


@pytest.mark.parametrize("metric, fn", [("accuracy", accuracy), ("macro_f1", macro_f1),
                                        ("mean_per_class_accuracy", mean_per_class_accuracy), ("mcc", mcc)])
def test_metric_replicates_column_zero_is_the_metric(metric, fn):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 300)
    pred = np.where(rng.random(300) < 0.7, y, rng.integers(0, 4, 300))
    counts = resample_counts("t", 300, 50)
    reps = metric_replicates(metric, y, pred, counts)
    assert reps[0] == pytest.approx(fn(y, pred))
    # a resample equals the metric on the samples it drew
    idx = np.repeat(np.arange(300), counts[3].astype(int))
    assert reps[4] == pytest.approx(fn(y[idx], pred[idx]))


@pytest.mark.parametrize("metric", ["accuracy", "macro_f1", "mean_per_class_accuracy", "mcc", "pearson"])
def test_scoring_all_rows_of_a_test_set_at_once_equals_row_by_row(metric):
    # from_predictions scores every row of one test set in one product per class: bit for bit the
    # row-by-row values, including rows that never predict a class or predict one class only
    rng = np.random.default_rng(2)
    truth = {"a": rng.integers(0, 10, 400), "b": rng.integers(0, 4, 150)}
    tids = ["a", "b", "a", "b", "a", "a"]
    preds = []
    for i, t in enumerate(tids):
        y = truth[t]
        p = np.where(rng.random(len(y)) < 0.7, y, rng.integers(0, 10, len(y)))
        preds.append(np.full(len(y), 2) if i == 5 else np.where(p == 3, 4, p) if i == 2 else p)
    rows = pd.DataFrame({"test_id": tids, "unit": range(6), "pred": preds})
    got = Scores.from_predictions(rows, truth, metric, n_boot=200)
    want = np.stack([metric_replicates(metric, truth[t], p, resample_counts(t, len(truth[t]), 200))
                     for t, p in zip(tids, preds, strict=True)])
    assert np.array_equal(got.reps, want)
    with pytest.raises(ValueError, match="test set 'a' must be 1-D of length 400"):
        Scores.from_predictions(rows.assign(pred=[p[:-1] for p in preds]), truth, metric, n_boot=10)


def test_scores_group_means_and_pairing():
    table = pd.DataFrame({"seed": [0, 0, 1, 1], "method": ["a", "b", "a", "b"]})
    sc = Scores(table, np.array([[1.0, 2.0], [0.0, 1.0], [3.0, 3.0], [1.0, 2.0]]))
    means = sc.mean_by(["method"]).keyed(["method"])
    np.testing.assert_allclose(means[("a",)], [2.0, 2.5])
    from nml.report.scores import paired

    diff = paired(sc.where(method="a"), sc.where(method="b"), ["seed"])
    np.testing.assert_allclose(diff.reps, [[1.0, 1.0], [2.0, 1.0]])


# ------------------------------------------------------------------------------------------
# C1–C3 on synthetic chapter-02 rows

N_TEST = 2000


def _truth():
    rng = np.random.default_rng(5)
    tests = ["a", "b", "c", "d", "e"]
    return {t: rng.integers(0, 10, N_TEST) for t in tests}


def _pred(y, acc, rng):
    wrong = rng.random(len(y)) >= acc
    return np.where(wrong, (y + 1 + rng.integers(0, 9, len(y))) % 10, y)


def _results(id_acc, ood_acc, sve, lsvr, seeds=(0, 1, 2), noise=0.002, truth=None):
    """Chapter-02 rows whose accuracies / spectra follow given functions of gamma."""
    truth = truth or _truth()
    rng = np.random.default_rng(0)
    rows = []
    for gamma, seed in itertools.product([0.0, 0.05, 0.1, 0.2, 0.3], seeds):
        for task in ["a", "b"]:
            acc = id_acc(gamma) + noise * rng.normal()
            pred = _pred(truth[task], acc, rng)
            rows.append({"track": "supervised", "gamma": gamma, "seed": seed, "kind": "ID", "task": task,
                         "family": task, "train_domain": task, "test_domain": task, "test_id": task, "pred": pred,
                         "acc": accuracy(truth[task], pred), "sve_authors": sve(gamma) + noise * rng.normal(),
                         "lsvr_authors": 0.0, "sve_raw": 3.0, "lsvr_raw": 1.0})
        for test, family in [("c", "digits"), ("d", "digits"), ("e", "fashion")]:
            acc = ood_acc(gamma) + noise * rng.normal()
            pred = _pred(truth[test], acc, rng)
            rows.append({"track": "supervised", "gamma": gamma, "seed": seed, "kind": "OOD", "task": "p" + family,
                         "family": family, "train_domain": "a", "test_domain": test, "test_id": test, "pred": pred,
                         "acc": accuracy(truth[test], pred), "sve_authors": 0.0,
                         "lsvr_authors": lsvr(gamma, acc) + noise * rng.normal(), "sve_raw": 3.0, "lsvr_raw": 1.0})
    return pd.DataFrame(rows), truth


def _verdicts(df, truth):
    table = spectral_claims(df, truth, variants=("authors",))
    overall = table[~table["scope"].str.contains(",")]
    return dict(zip(overall["claim"], overall["verdict"], strict=True)), table


def test_paper_like_numbers_hold():
    df, truth = _results(id_acc=lambda g: 0.80 + (0.06 if 0 < g <= 0.1 else -0.2 * g),
                         ood_acc=lambda g: 0.6 - 0.5 * g, sve=lambda g: 3 + g, lsvr=lambda g, acc: 2 - acc)
    v, table = _verdicts(df, truth)
    assert v == {"C1": HOLDS, "C2": HOLDS, "C3a": HOLDS, "C3b": HOLDS, "C3c": HOLDS}
    assert list(table.columns) == list(COLUMNS)
    assert set(table.loc[table["claim"] == "C2", "scope"]) == {"supervised", "supervised, digits", "supervised, fashion"}


def test_opposite_numbers_do_not_hold():
    df, truth = _results(id_acc=lambda g: 0.8 - 1.0 * g, ood_acc=lambda g: 0.5 + 0.5 * g,
                         sve=lambda g: 3 - g, lsvr=lambda g, acc: acc)
    v, _ = _verdicts(df, truth)
    assert v["C1"] == DOES_NOT_HOLD and v["C2"] == DOES_NOT_HOLD and v["C3a"] == DOES_NOT_HOLD
    assert v["C3c"] == DOES_NOT_HOLD  # LSVR rises with accuracy
    assert v["C3b"] == HOLDS  # LSVR follows accuracy, which rises with gamma


def test_effects_smaller_than_the_noise_are_inconclusive():
    # no effect at all, only seed and test-sample noise
    df, truth = _results(id_acc=lambda g: 0.8, ood_acc=lambda g: 0.6, sve=lambda g: 3.0,
                         lsvr=lambda g, acc: 1.0, noise=0.02)
    v, _ = _verdicts(df, truth)
    assert v["C1"] == INCONCLUSIVE and v["C2"] == INCONCLUSIVE and v["C3a"] == INCONCLUSIVE


def test_two_seeds_are_not_judged_and_one_gamma_is_not_testable():
    df, truth = _results(lambda g: 0.8, lambda g: 0.6, lambda g: 3.0, lambda g, a: 1.0, seeds=(0, 1))
    v, _ = _verdicts(df, truth)
    assert v["C1"] == NOT_JUDGED and v["C2"] == NOT_JUDGED
    v, _ = _verdicts(df[df["gamma"] == 0.0], truth)
    assert v["C1"] == NOT_TESTABLE and v["C2"] == NOT_TESTABLE


def test_ood_averages_weight_each_family_once():
    # digits (two test sets) fall with gamma, fashion (one test set) rises twice as fast: weighted
    # by family the average does not fall; weighted by test set it would
    truth = _truth()
    df, _ = _results(lambda g: 0.8, lambda g: 0.6, lambda g: 3.0, lambda g, a: 1.0, truth=truth, noise=0.0)
    fall = {"c": -0.5, "d": -0.5, "e": 1.0}
    rng = np.random.default_rng(9)
    for i, r in df[df["kind"] == "OOD"].iterrows():
        df.at[i, "pred"] = _pred(truth[r.test_domain], 0.5 + fall[r.test_domain] * r.gamma, rng)
    table = spectral_claims(df, truth, variants=("authors",))
    c2 = table[table["claim"] == "C2"].set_index("scope")
    assert c2.loc["supervised, digits", "verdict"] == HOLDS
    assert c2.loc["supervised, fashion", "verdict"] == DOES_NOT_HOLD
    assert c2.loc["supervised", "effect"] == pytest.approx((5 - 10) / 2, abs=0.8)  # family-weighted, pts/10 pts


def test_variant_dependence_is_reported():
    df, truth = _results(id_acc=lambda g: 0.8, ood_acc=lambda g: 0.6, sve=lambda g: 3 + g,
                         lsvr=lambda g, acc: 1.0 + g)
    table = spectral_claims(df, truth, variants=("authors", "raw"))
    dep = variant_dependence(table)
    row = dep[dep["claim"] == "C3a"].iloc[0]
    assert row["authors"] == HOLDS and row["raw"] == INCONCLUSIVE and bool(row["depends_on_variant"])


def test_resamples_are_kept_on_disk_and_read_back_equal(nml_home, monkeypatch):
    from nml.report import scores

    scores._counts.cache_clear()
    a = resample_counts("kept/test", 70, 30)
    files = list((nml_home / "features" / "resamples").glob("*.npy"))
    assert len(files) == 1
    scores._counts.cache_clear()

    def no_draw(*args, **kwargs):
        raise AssertionError("resamples kept on disk were drawn again")

    monkeypatch.setattr(scores.np.random, "default_rng", no_draw)
    b = resample_counts("kept/test", 70, 30)
    assert np.array_equal(a, b) and b.dtype == np.float32 and not b.flags.writeable
    scores._counts.cache_clear()
