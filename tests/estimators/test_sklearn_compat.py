"""Every estimator of nml.estimators in scikit-learn's contract: scikit-learn's own estimator
checks, its parameter validation check, and the tools built on the contract (clone, Pipeline,
GridSearchCV, cross_val_score).

The image methods (FullFineTune, TURN) run the checks on feature matrices with a backbone that
reads vectors (:class:`ScaleShift`) and ``augment=False``; the two-network methods take the
matrix as their only view. Small epoch counts keep the whole module at about a minute.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from scipy.special import expit
from sklearn.base import BaseEstimator, clone
from sklearn.datasets import make_blobs
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import check_param_validation, parametrize_with_checks
from torch import nn

from nml.estimators._base import NMLClassifier
from nml.estimators.frozen.linear_probe import LinearProbe
from nml.estimators.frozen.mlp import MLPTuner
from nml.estimators.frozen.nmtune import NMTune
from nml.estimators.noisy_labels.dividemix import DivideMixLP
from nml.estimators.noisy_labels.full import FullFineTune
from nml.estimators.noisy_labels.linear import NoisyLinearProbe
from nml.estimators.noisy_labels.turn import TURN
from nml.estimators.noisy_labels.unicon import UniconLP

_TORCH_MODULE_PARAMETER = (
    "the check compares joblib.hash of each parameter before and after fit, and joblib.hash of a torch "
    "tensor is not content-based: a deep copy of an untouched nn.Module hashes differently, so any "
    "backbone parameter fails it. test_finetune.py::test_inputs_are_not_modified checks instead that fit "
    "leaves the backbone's state_dict and training flag untouched (fit trains a deep copy)."
)
# the scikit-learn checks an estimator is exempt from: class name -> {check name: why}
EXPECTED_FAILED_CHECKS: dict[str, dict[str, str]] = {
    "FullFineTune": {"check_estimators_overwrite_params": _TORCH_MODULE_PARAMETER},
    "TURN": {"check_estimators_overwrite_params": _TORCH_MODULE_PARAMETER},
}


class ScaleShift(nn.Module):
    """A trainable backbone for feature matrices of any width: z = a·x + b with scalars a, b."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.shift = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x + self.shift


# every estimator (each NMTune preset and each loss of the LP baselines), trained just enough to
# pass scikit-learn's accuracy bar (0.83 on its blobs)
ESTIMATORS: list[NMLClassifier] = [
    LinearProbe(epochs=5, batch_size=32),
    MLPTuner(epochs=5, batch_size=16, lr=1e-2),
    NMTune(preset="paper", epochs=5, batch_size=16, lr=1e-2),
    NMTune(preset="official", epochs=5, batch_size=16, lr=3e-2),
    NoisyLinearProbe(loss="ce", epochs=5, batch_size=16, lr=5e-2),
    NoisyLinearProbe(loss="gce", epochs=5, batch_size=16, lr=5e-2),
    NoisyLinearProbe(loss="elr", epochs=5, batch_size=16, lr=5e-2),
    FullFineTune(backbone=ScaleShift(), augment=False, epochs=3, batch_size=16, lr=5e-2),
    TURN(backbone=ScaleShift(), augment=False, epochs_lp=5, lp_batch_size=16, lp_lr=5e-2, epochs_fft=2,
         batch_size=16, lr=1e-2),
    DivideMixLP(epochs=3, warmup_epochs=1, batch_size=32, lr=5e-2),
    UniconLP(epochs=3, warmup_epochs=1, batch_size=32, lr=5e-2),
]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models: one intra-op thread is fastest and leaves the other core to other jobs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_blobs(n_samples=150, centers=3, n_features=5, random_state=0, cluster_std=1.5)
    return X.astype(np.float32), y


def _expected_failed_checks(estimator: BaseEstimator) -> dict[str, str]:
    return EXPECTED_FAILED_CHECKS.get(type(estimator).__name__, {})


def _estimator_id(estimator: BaseEstimator) -> str:
    return re.sub(r"\s", "", repr(estimator))  # as parametrize_with_checks names them


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=_estimator_id)
def test_parameters_validated_declaratively(estimator):
    """One constraint per parameter; a value of the wrong type or range fails ``fit`` and
    ``fit_transform`` with InvalidParameterError naming the parameter (scikit-learn's check)."""
    check_param_validation(type(estimator).__name__, estimator)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=_estimator_id)
def test_bad_parameter_is_a_value_error_naming_it(estimator, blobs):
    bad = clone(estimator).set_params(batch_size=0)
    with pytest.raises(ValueError, match=rf"The 'batch_size' parameter of {type(estimator).__name__} must be") as err:
        bad.fit(*blobs)
    assert isinstance(err.value, InvalidParameterError)
    assert not hasattr(bad, "classes_")  # validated before anything is fitted


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=_estimator_id)
def test_unfitted_use_raises_not_fitted(estimator, blobs):
    X, _ = blobs
    for method in ("predict", "predict_proba", "decision_function", "transform", "score"):
        args = (X, np.zeros(len(X))) if method == "score" else (X,)
        with pytest.raises(NotFittedError):
            getattr(clone(estimator), method)(*args)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=_estimator_id)
def test_binary_decision_function_is_1d(estimator, blobs):
    X_all, y_all = blobs
    X, y = X_all[y_all < 2], np.array(["no", "yes"])[y_all[y_all < 2]]
    est = clone(estimator).fit(X, y)
    scores, proba = est.decision_function(X), est.predict_proba(X)
    assert scores.shape == (len(X),) and proba.shape == (len(X), 2)
    assert np.array_equal(est.predict(X), est.classes_[(scores > 0).astype(int)])
    # the score of classes_[1] is its log-odds against classes_[0]
    np.testing.assert_allclose(expit(scores), proba[:, 1], rtol=1e-5, atol=1e-6)
    assert clone(estimator).fit(X_all, y_all).decision_function(X_all).shape == (len(X_all), 3)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=_estimator_id)
def test_clone(estimator, blobs):
    fitted = clone(estimator).fit(*blobs)
    twin = clone(fitted)
    assert type(twin) is type(estimator) and twin.get_params().keys() == estimator.get_params().keys()
    assert not hasattr(twin, "classes_")  # the parameters, not the fitted state
    for name, value in estimator.get_params(deep=False).items():
        if isinstance(value, nn.Module):  # deep-copied
            assert twin.get_params()[name] is not value and str(twin.get_params()[name]) == str(value)
        else:
            assert twin.get_params()[name] == value, name
    # same parameters and seed: the same model
    np.testing.assert_array_equal(twin.fit(*blobs).predict_proba(blobs[0]), fitted.predict_proba(blobs[0]))


def test_pipeline_with_a_scaler(blobs):
    X, y = blobs
    X = X * 3 + 10  # far from standardised: the scaler matters
    pipe = make_pipeline(StandardScaler(), LinearProbe(epochs=10, batch_size=16, lr=0.05)).fit(X, y)
    assert pipe.score(X, y) > 0.95
    # the pipeline is the probe on standardised features, fitted the same way
    probe = LinearProbe(epochs=10, batch_size=16, lr=0.05).fit(StandardScaler().fit_transform(X), y)
    np.testing.assert_array_equal(pipe.predict_proba(X), probe.predict_proba(StandardScaler().fit(X).transform(X)))
    # a tuner is also a transformer: a pipeline can read its representation
    features = make_pipeline(StandardScaler(), MLPTuner(epochs=2, batch_size=32)).fit(X, y).transform(X)
    assert features.shape == X.shape and features.dtype == np.float32


def test_grid_search_over_a_parameter(blobs):
    X, y = blobs
    search = GridSearchCV(NoisyLinearProbe(epochs=10, batch_size=16), {"lr": [1e-6, 5e-2]}, cv=3).fit(X, y)
    assert list(search.cv_results_["param_lr"]) == [1e-6, 5e-2]
    assert search.best_params_ == {"lr": 5e-2}  # lr 1e-6 barely moves the random initial probe
    assert search.best_estimator_.lr == 5e-2 and search.best_estimator_.score(X, y) > 0.95


def test_cross_val_score(blobs):
    X, y = blobs
    for estimator in (MLPTuner(epochs=10, batch_size=16), DivideMixLP(epochs=4, warmup_epochs=2, batch_size=16, lr=5e-2)):
        scores = cross_val_score(estimator, X, y, cv=3)
        assert scores.shape == (3,) and scores.min() > 0.8, (estimator, scores)


@pytest.mark.parametrize("estimator", [est for est in ESTIMATORS if isinstance(est, (FullFineTune, TURN))],
                         ids=_estimator_id)
def test_backbone_methods_read_feature_matrices(estimator, blobs):
    """With a backbone that reads vectors, FullFineTune and TURN take matrices everywhere: X, the
    evaluation sets, and TURN's cached features of them."""
    X, y = blobs
    est = clone(estimator).fit(X[:100], y[:100], eval_set=(X[100:].tolist(), y[100:]), val_set=(X[:30], y[:30]))
    assert est.n_features_in_ == 5 and len(est.history_) == len(est.test_predictions_) > 0
    assert est.last_test_acc_ == pytest.approx(est.score(X[100:], y[100:]))
    if isinstance(est, TURN):
        cached = clone(estimator).fit(X[:100], y[:100], eval_set=(X[100:], y[100:]), features=X[:100],
                                      eval_features=X[100:])
        assert cached.history_ == clone(estimator).fit(X[:100], y[:100], eval_set=(X[100:], y[100:])).history_
    with pytest.raises(ValueError, match="X has 4 features, but .* is expecting 5 features as input"):
        est.transform(X[:, :4])
