import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_blobs

from nml.estimators.frozen import LinearProbe


@pytest.fixture
def blobs():
    X, y = make_blobs(n_samples=300, centers=3, n_features=8, random_state=0, cluster_std=1.0)
    return X.astype(np.float32), y


def test_fits_separable_data(blobs):
    X, y = blobs
    probe = LinearProbe(epochs=10, batch_size=32).fit(X, y)
    assert probe.score(X, y) > 0.95
    proba = probe.predict_proba(X)
    assert proba.shape == (300, 3) and np.allclose(proba.sum(1), 1)
    assert probe.loss_curve_[-1] < probe.loss_curve_[0]


def test_same_seed_same_probe(blobs):
    X, y = blobs
    a = LinearProbe(epochs=3, seed=1).fit(X, y)
    b = clone(a).fit(X, y)
    assert np.array_equal(a.coef_, b.coef_)
    c = LinearProbe(epochs=3, seed=2).fit(X, y)
    assert not np.array_equal(a.coef_, c.coef_)


def test_keeps_original_labels(blobs):
    X, y = blobs
    labels = np.array(["cat", "dog", "eel"])[y]
    probe = LinearProbe(epochs=5).fit(X, labels)
    assert set(probe.predict(X)) <= {"cat", "dog", "eel"}


@pytest.mark.parametrize("kwargs, match", [
    ({"epochs": 0}, r"'epochs' parameter of LinearProbe must be an int in the range \[1, inf\)"),
    ({"batch_size": -1}, "'batch_size' parameter"),
    ({"lr": 0.0}, r"'lr' parameter of LinearProbe must be a float in the range \(0.0, inf\)"),
    ({"weight_decay": -1.0}, "'weight_decay' parameter"),
    ({"device": "tpu"}, "'device' parameter"),
])
def test_bad_hyper_parameters(blobs, kwargs, match):
    with pytest.raises(ValueError, match=match):
        LinearProbe(**kwargs).fit(*blobs)


def test_bad_inputs(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="at least 2 classes"):
        LinearProbe().fit(X, np.zeros(len(X), int))
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        LinearProbe().fit(bad, y)
    with pytest.raises(ValueError):
        LinearProbe().fit(X, y[:-1])
    probe = LinearProbe(epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        probe.predict(X[:, :3])


def test_fits_inside_no_grad(blobs):
    import torch

    with torch.no_grad():
        probe = LinearProbe(epochs=10, batch_size=32).fit(*blobs)
    assert probe.score(*blobs) > 0.95  # as outside no_grad (test_fits_separable_data)
