"""Tests of nml.metrics: spectra, SVE / LSVR, classification metrics and Pearson."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import pearsonr
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, matthews_corrcoef

from nml.metrics import (
    METRICS,
    accuracy,
    get_metric,
    largest_singular_value_ratio,
    lsvr,
    macro_f1,
    mcc,
    mean_per_class_accuracy,
    normalized_spectrum,
    pearson,
    singular_value_entropy,
    singular_values,
    spectrum_groups,
    sve,
)

FAST = settings(max_examples=50, deadline=None)


@st.composite
def feature_matrices(draw):
    n, d = draw(st.integers(1, 30)), draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).standard_normal((n, d)) * draw(st.floats(0.1, 10.0))


@st.composite
def label_pairs(draw, max_classes: int = 6):
    n = draw(st.integers(1, 80))
    k = draw(st.integers(1, max_classes))
    labels = st.lists(st.integers(0, k - 1), min_size=n, max_size=n)
    return np.array(draw(labels)), np.array(draw(labels))


# ------------------------------------------------------------------------------------------
# spectra, SVE, LSVR: hand-computed cases


def test_two_singular_values_3_and_1():
    features = np.array([[3.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    np.testing.assert_allclose(singular_values(features, variant="raw"), [3.0, 1.0])
    expected_sve = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert singular_value_entropy(features, variant="raw") == pytest.approx(expected_sve)
    assert largest_singular_value_ratio(features, variant="raw") == pytest.approx(-math.log(0.75))
    assert sve([3.0, 1.0]) == pytest.approx(expected_sve)
    assert lsvr([1.0, 3.0]) == pytest.approx(-math.log(0.75))  # order does not matter


def test_rank_one_matrix_has_zero_sve_and_lsvr():
    rng = np.random.default_rng(0)
    features = np.outer(rng.standard_normal(50), rng.standard_normal(8))
    assert singular_value_entropy(features, variant="raw") == pytest.approx(0.0, abs=1e-9)
    assert largest_singular_value_ratio(features, variant="raw") == pytest.approx(0.0, abs=1e-9)
    assert sve([2.0, 0.0, 0.0]) == 0.0 and lsvr([2.0, 0.0, 0.0]) == 0.0


@pytest.mark.parametrize("d", [1, 4, 16])
def test_orthogonal_equal_scale_matrix_has_log_d(d):
    q, _ = np.linalg.qr(np.random.default_rng(d).standard_normal((40, d)))
    features = 2.5 * q  # orthonormal columns, all singular values 2.5
    np.testing.assert_allclose(singular_values(features, variant="raw"), 2.5)
    assert singular_value_entropy(features, variant="raw") == pytest.approx(math.log(d), abs=1e-12)
    assert largest_singular_value_ratio(features, variant="raw") == pytest.approx(math.log(d), abs=1e-12)


def test_authors_variant_by_hand():
    # rows [3, 4] and [1, 0]: L2-normalised [0.6, 0.8] and [1, 0]; minus each row's mean (0.7, 0.5):
    # [-0.1, 0.1] and [0.5, -0.5], a rank-1 matrix with singular value sqrt(0.02 + 0.5)
    features = np.array([[3.0, 4.0], [1.0, 0.0]])
    np.testing.assert_allclose(singular_values(features), [math.sqrt(0.52), 0.0], atol=1e-12)
    np.testing.assert_allclose(singular_values(features, variant="authors"), singular_values(features))
    assert largest_singular_value_ratio(features) == pytest.approx(0.0, abs=1e-12)


@FAST
@given(features=feature_matrices(), scales=st.lists(st.floats(1e-2, 1e2), min_size=1, max_size=1))
def test_authors_variant_ignores_each_rows_scale(features, scales):
    # L2-normalising the rows first makes the spectrum blind to how long each feature vector is
    row_scales = np.random.default_rng(0).uniform(0.1, 10.0, size=(features.shape[0], 1)) * scales[0]
    np.testing.assert_allclose(singular_values(features * row_scales), singular_values(features), atol=1e-9)


def test_authors_variant_matches_truncated_svd_of_the_transformed_rows():
    from sklearn.decomposition import TruncatedSVD

    features = np.abs(np.random.default_rng(3).standard_normal((60, 12)))
    u = features / np.linalg.norm(features, axis=1, keepdims=True)
    u = u - u.mean(axis=1, keepdims=True)
    svd = TruncatedSVD(n_components=11, algorithm="arpack").fit(u)
    np.testing.assert_allclose(singular_values(features)[:11], svd.singular_values_, rtol=1e-6)


def test_unknown_variant_is_rejected():
    with pytest.raises(ValueError, match="variant must be one of"):
        singular_values(np.eye(3), variant="paper")


@FAST
@given(features=feature_matrices(), scale=st.floats(1e-3, 1e3))
def test_sve_and_lsvr_scale_invariant(features, scale):
    # with D = 1 the authors' row centring leaves nothing: that variant needs D >= 2
    for variant in ("raw", "centered", "authors") if features.shape[1] > 1 else ("raw",):
        if not singular_values(features, variant=variant).sum() > 1e-9:
            continue
        assert singular_value_entropy(scale * features, variant=variant) == pytest.approx(
            singular_value_entropy(features, variant=variant), abs=1e-7
        )
        assert largest_singular_value_ratio(scale * features, variant=variant) == pytest.approx(
            largest_singular_value_ratio(features, variant=variant), abs=1e-7
        )


@FAST
@given(features=feature_matrices())
def test_singular_values_match_numpy_and_bounds(features):
    sigma = singular_values(features, variant="raw")
    assert sigma.dtype == np.float64 and sigma.shape == (min(features.shape),)
    assert np.all(np.diff(sigma) <= 1e-12)  # descending
    np.testing.assert_allclose(sigma, np.linalg.svd(features, compute_uv=False))
    centred = features - features.mean(axis=0)
    np.testing.assert_allclose(
        singular_values(features, variant="centered"), np.linalg.svd(centred, compute_uv=False), atol=1e-9
    )
    value = sve(sigma)
    assert isinstance(value, float) and -1e-12 <= value <= math.log(sigma.size) + 1e-9
    p = normalized_spectrum(sigma)
    assert p.sum() == pytest.approx(1.0)
    assert sve(sigma) == pytest.approx(-np.sum(p[p > 0] * np.log(p[p > 0])))
    assert lsvr(sigma) == pytest.approx(-math.log(p[0]))
    # the top direction carries at most all, at least 1/K of the spectrum
    assert 0.0 <= lsvr(sigma) <= math.log(sigma.size) + 1e-9


def test_torch_features_accepted():
    torch = pytest.importorskip("torch")
    features = np.random.default_rng(1).standard_normal((20, 5))
    tensor = torch.tensor(features, dtype=torch.float32, requires_grad=True)
    np.testing.assert_allclose(singular_values(tensor), singular_values(features), rtol=1e-5, atol=1e-6)
    assert singular_value_entropy(tensor) == pytest.approx(
        singular_value_entropy(features), rel=1e-5
    )
    assert sve(torch.tensor([3.0, 1.0])) == pytest.approx(sve([3.0, 1.0]))


def test_spectrum_groups_default_and_custom_edges():
    sigma = np.arange(600, 0, -1).astype(float)
    groups = spectrum_groups(sigma)
    assert list(groups) == ["top", "middle", "rest"]
    assert [groups[g].size for g in groups] == [20, 480, 100]
    np.testing.assert_array_equal(np.concatenate(list(groups.values())), sigma)
    np.testing.assert_array_equal(groups["top"], sigma[:20])
    small = spectrum_groups(np.array([3.0, 2.0, 1.0]), edges=(1, 10))
    np.testing.assert_array_equal(small["top"], [3.0])
    np.testing.assert_array_equal(small["middle"], [2.0, 1.0])
    assert small["rest"].size == 0
    groups["top"][0] = -1.0  # copies, not views
    assert sigma[0] == 600.0


def test_normalized_spectrum():
    np.testing.assert_allclose(normalized_spectrum([3.0, 1.0]), [0.75, 0.25])


@pytest.mark.parametrize(
    ("features", "match"),
    [
        (np.ones(5), r"features must be a 2-D \(N, D\) array"),
        (np.ones((0, 3)), "features must be non-empty"),
        (np.ones((3, 0)), "features must be non-empty"),
        (np.array([[1.0, np.nan]]), "features must be finite"),
        (np.array([[1.0, np.inf]]), "features must be finite"),
        (np.array([["a"]]), "features must be numeric"),
    ],
)
def test_singular_values_errors(features, match):
    with pytest.raises(ValueError, match=match):
        singular_values(features)


def test_spectral_errors():
    with pytest.raises(ValueError, match="must not be all zero"):
        singular_value_entropy(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="use singular_value_entropy"):
        sve(np.eye(3))
    with pytest.raises(ValueError, match="sigma must be non-negative"):
        lsvr([1.0, -0.5])
    with pytest.raises(ValueError, match="sigma must be non-empty"):
        sve([])
    with pytest.raises(ValueError, match="sigma must be finite"):
        sve([1.0, np.nan])
    with pytest.raises(ValueError, match=r"edges must satisfy 0 <= a <= b"):
        spectrum_groups([1.0, 2.0], edges=(5, 2))
    with pytest.raises(ValueError, match="edges must be a pair of integers"):
        spectrum_groups([1.0, 2.0], edges=(1.5, 2))
    with pytest.raises(ValueError, match="edges must be a pair of integers"):
        spectrum_groups([1.0, 2.0], edges=3)
    with pytest.raises(ValueError, match="sigma must be a 1-D array"):
        spectrum_groups(np.eye(2))


# ------------------------------------------------------------------------------------------
# classification metrics


def test_imbalanced_hand_example():
    y_true = np.array([0] * 8 + [1] * 2)
    y_pred = np.array([0] * 8 + [0, 1])
    assert accuracy(y_true, y_pred) == pytest.approx(0.9)
    assert mean_per_class_accuracy(y_true, y_pred) == pytest.approx((1.0 + 0.5) / 2)
    # the always-majority classifier looks good on accuracy, not on mean per-class accuracy
    majority = np.zeros(10, dtype=int)
    assert accuracy(y_true, majority) == pytest.approx(0.8)
    assert mean_per_class_accuracy(y_true, majority) == pytest.approx(0.5)
    assert mcc(y_true, majority) == 0.0


def test_mcc_single_label_is_zero_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mcc([1, 1, 1], [1, 1, 1]) == 0.0


def test_mean_per_class_accuracy_ignores_classes_only_predicted():
    # class 2 is only predicted: it costs class 0 recall but does not enter the mean
    assert mean_per_class_accuracy([0, 0, 1, 1], [0, 2, 1, 1]) == pytest.approx((0.5 + 1.0) / 2)


def test_macro_f1_hand_example():
    # class 0: P = 1, R = 0.5, F1 = 2/3; class 1: P = 2/3, R = 1, F1 = 0.8
    assert macro_f1([0, 0, 1, 1], [0, 1, 1, 1]) == pytest.approx((2 / 3 + 0.8) / 2)


@FAST
@given(pair=label_pairs())
def test_agree_with_scikit_learn(pair):
    y_true, y_pred = pair
    for value in (
        accuracy(y_true, y_pred),
        mean_per_class_accuracy(y_true, y_pred),
        macro_f1(y_true, y_pred),
        mcc(y_true, y_pred),
    ):
        assert type(value) is float
    assert accuracy(y_true, y_pred) == pytest.approx(accuracy_score(y_true, y_pred))
    # balanced accuracy is the mean recall over the classes of y_true
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true"
        warnings.simplefilter("ignore", UserWarning)
        expected_balanced = balanced_accuracy_score(y_true, y_pred)
    assert mean_per_class_accuracy(y_true, y_pred) == pytest.approx(expected_balanced)
    assert macro_f1(y_true, y_pred) == pytest.approx(
        f1_score(y_true, y_pred, average="macro", zero_division=0)
    )
    with warnings.catch_warnings():  # "A single label was found in 'y_true' and 'y_pred'"
        warnings.simplefilter("ignore", UserWarning)
        expected_mcc = matthews_corrcoef(y_true, y_pred)
    assert mcc(y_true, y_pred) == pytest.approx(expected_mcc)
    assert 0.0 <= mean_per_class_accuracy(y_true, y_pred) <= 1.0
    assert 0.0 <= macro_f1(y_true, y_pred) <= 1.0


@FAST
@given(
    xy=st.integers(2, 60).flatmap(
        lambda n: st.tuples(
            st.lists(st.floats(-1e3, 1e3), min_size=n, max_size=n),
            st.lists(st.floats(-1e3, 1e3), min_size=n, max_size=n),
        )
    )
)
def test_pearson_agrees_with_scipy(xy):
    x, y = np.array(xy[0]), np.array(xy[1])
    value = pearson(x, y)
    assert type(value) is float
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        assert math.isnan(value)
    else:
        expected = pearsonr(x, y).statistic
        assert value == pytest.approx(expected, abs=1e-9, nan_ok=True)


def test_pearson_hand_examples():
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3]))


@pytest.mark.parametrize("name", list(METRICS))
def test_metric_errors(name):
    func = get_metric(name)
    with pytest.raises(ValueError, match="must have equal lengths, got 3 and 2"):
        func([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="must be non-empty"):
        func([], [])
    with pytest.raises(ValueError, match="must be a 1-D array"):
        func(np.zeros((2, 2)), np.zeros((2, 2)))


def test_pearson_specific_errors():
    with pytest.raises(ValueError, match="at least 2 observations"):
        pearson([1.0], [2.0])
    with pytest.raises(ValueError, match="x and y must be finite"):
        pearson([1.0, np.nan], [2.0, 3.0])


def test_registry():
    assert list(METRICS) == ["accuracy", "mean_per_class_accuracy", "macro_f1", "mcc", "pearson"]
    assert get_metric("macro_f1") is macro_f1
    with pytest.raises(ValueError, match=r"unknown metric 'f1'; valid names: \['accuracy', "):
        get_metric("f1")
