"""Noisy-label fine-tuning (nml.estimators.noisy_labels): losses, GMM cleansing, common estimator behaviour, TURN."""

import copy
import logging
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.exceptions import DataConversionWarning
from sklearn.utils._param_validation import InvalidParameterError
from torch import nn

import nml.estimators.noisy_labels.turn as turn_module
from nml.estimators.noisy_labels import (
    TURN,
    ELRMemory,
    FullFineTune,
    NoisyLinearProbe,
    class_balanced_subset,
    create_method,
    detection_scores,
    gce_loss,
    gmm_clean_probability,
    list_methods,
    method_input,
)
from nml.estimators.noisy_labels.base import select_epochs
from nml.estimators.noisy_labels.losses import soft_cross_entropy
from nml.noise import symmetric_noise

FAST = settings(max_examples=60, deadline=None)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_backbone() -> nn.Module:
    """A fixed, randomly initialised conv feature extractor without BatchNorm: 1×H×W -> 128."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten())


def band_images(n: int, n_classes: int, *, seed: int, noise: float = 0.3, side: int = 12):
    """Class c = a bright horizontal band at rows 2c+1, 2c+2, plus Gaussian pixel noise; balanced."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randperm(n, generator=gen) % n_classes
    X = noise * torch.randn(n, 1, side, side, generator=gen)
    for c in range(n_classes):
        X[y == c, 0, 2 * c + 1 : 2 * c + 3, :] += 1.0
    return X, y.numpy()


def backbone_features(backbone: nn.Module, X: torch.Tensor) -> np.ndarray:
    """Frozen features as the estimators extract them: a copy in eval mode, channels-last model and
    batches (``batched_logits``), so that equalities with an estimator's own extraction are exact."""
    import copy

    from nml._infra.training import channels_last
    from nml.estimators.noisy_labels.base import batched_logits

    return batched_logits(channels_last(copy.deepcopy(backbone)), X, batch_size=256, device=torch.device("cpu")).numpy()


# ====================================================================== losses
def test_gce_matches_formula_and_reductions():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 5, generator=gen, dtype=torch.float64) * 2
    y = torch.randint(0, 5, (16,), generator=gen)
    p_y = torch.softmax(logits, 1)[torch.arange(16), y]
    for q in (0.3, 0.7):
        expected = (1 - p_y**q) / q
        assert torch.allclose(gce_loss(logits, y, q, reduction="none"), expected)
        assert gce_loss(logits, y, q).item() == pytest.approx(expected.mean().item())
        assert gce_loss(logits, y, q, reduction="sum").item() == pytest.approx(expected.sum().item())
    # q = 1: the mean absolute error 1 − p_y
    assert torch.allclose(gce_loss(logits, y, 1.0, reduction="none"), 1 - p_y)
    # q → 0: cross-entropy (the gap is ≈ q·log²p/2)
    ce = F.cross_entropy(logits, y, reduction="none")
    assert torch.allclose(gce_loss(logits, y, 1e-4, reduction="none"), ce, rtol=1e-3)
    assert not torch.allclose(gce_loss(logits, y, 0.7, reduction="none"), ce, rtol=1e-1)


def test_gce_gradient_is_ce_gradient_weighted_by_p_y_to_the_q():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(8, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 4, (8,), generator=gen)
    (g_gce,) = torch.autograd.grad(gce_loss(logits, y, 0.7, reduction="sum"), logits)
    (g_ce,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), logits)
    p_y = torch.softmax(logits.detach(), 1)[torch.arange(8), y]
    assert torch.allclose(g_gce, p_y[:, None] ** 0.7 * g_ce)


@pytest.mark.parametrize("q", [0.0, -0.5, 1.5, float("nan")])
def test_gce_rejects_bad_q(q):
    with pytest.raises(ValueError, match=r"q must be in \(0, 1\]"):
        gce_loss(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), q)


def test_gce_rejects_bad_reduction():
    with pytest.raises(ValueError, match="reduction must be"):
        gce_loss(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), 0.7, reduction="max")


def test_soft_cross_entropy():
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(10, 4, generator=gen)
    y = torch.randint(0, 4, (10,), generator=gen)
    assert torch.allclose(soft_cross_entropy(logits, F.one_hot(y, 4).float()), F.cross_entropy(logits, y))
    soft = torch.softmax(torch.randn(10, 4, generator=gen), 1)
    assert torch.allclose(soft_cross_entropy(logits, soft, reduction="none"),
                          F.cross_entropy(logits, soft, reduction="none"), atol=1e-6)


def test_elr_targets_and_regulariser_by_hand():
    beta, lam = 0.6, 2.5
    memory = ELRMemory(5, 3, beta=beta, lam=lam)
    gen = torch.Generator().manual_seed(3)
    # sample 0's softmax saturates: the clamp, then the renormalisation, matter
    l1 = torch.tensor([[12.0, -12.0, 0.0], [0.3, -0.2, 0.5]])
    l2 = torch.randn(2, 3, generator=gen, requires_grad=True)
    y1, y2 = torch.tensor([0, 2]), torch.tensor([1, 1])
    idx1, idx2 = torch.tensor([0, 2]), torch.tensor([2, 4])

    def prob(logits):  # the clamped, renormalised softmax the memory averages
        p = torch.softmax(logits.detach().double(), 1).clamp(1e-4, 1 - 1e-4)
        return p, p / p.sum(1, keepdim=True)

    memory.loss(l1, y1, idx1)
    p1, n1 = prob(l1)
    t = torch.zeros(5, 3, dtype=torch.float64)
    t[idx1] = (1 - beta) * n1
    assert torch.allclose(memory.targets.double(), t, atol=1e-6)

    loss = memory.loss(l2, y2, idx2)
    p2, n2 = prob(l2)
    t[idx2] = beta * t[idx2] + (1 - beta) * n2  # sample 2 now averages two outputs, sample 4 one
    assert torch.allclose(memory.targets.double(), t, atol=1e-6)
    assert memory.targets[[1, 3]].abs().sum() == 0  # untouched samples keep zero targets
    regulariser = torch.log(1 - (t[idx2] * p2).sum(1)).mean()
    expected = F.cross_entropy(l2.detach().double(), y2) + lam * regulariser
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert regulariser.item() < 0  # the term is a reward for agreeing with the targets
    loss.backward()  # the targets are constants: the gradient flows through p only
    assert l2.grad is not None and not memory.targets.requires_grad


def test_elr_without_lambda_is_cross_entropy():
    memory = ELRMemory(4, 3, beta=0.7, lam=0.0)
    logits, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    for _ in range(2):
        assert torch.equal(memory.loss(logits, y, torch.arange(4)), F.cross_entropy(logits, y))


@pytest.mark.parametrize("kwargs, match", [
    ({"beta": 1.0}, "beta must be in"),
    ({"beta": -0.1}, "beta must be in"),
    ({"lam": -1.0}, "lambda must be >= 0"),
])
def test_elr_rejects_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ELRMemory(3, 2, **kwargs)


# ====================================================================== cleansing
def planted_losses(seed: int = 0):
    """3 classes × (60 clean, 40 noisy) with clean/noisy losses on very different per-class scales."""
    rng = np.random.default_rng(seed)
    scales = [(0.05, 0.01, 0.5, 0.05), (1.0, 0.1, 4.0, 0.3), (6.0, 0.4, 14.0, 1.0)]
    losses, labels, clean = [], [], []
    for c, (clean_mean, clean_sd, noisy_mean, noisy_sd) in enumerate(scales):
        losses += [np.abs(rng.normal(clean_mean, clean_sd, 60)), np.abs(rng.normal(noisy_mean, noisy_sd, 40))]
        labels.append(np.full(100, c))
        clean.append(np.r_[np.ones(60, bool), np.zeros(40, bool)])
    order = rng.permutation(300)
    return np.concatenate(losses)[order], np.concatenate(labels)[order], np.concatenate(clean)[order]


def test_gmm_per_class_separates_planted_losses():
    losses, labels, clean = planted_losses()
    prob = gmm_clean_probability(losses, labels)
    assert prob.shape == (300,) and prob.dtype == np.float64
    assert np.all((prob >= 0) & (prob <= 1))
    for c in range(3):
        assert prob[(labels == c) & clean].min() > 0.9, c
        assert prob[(labels == c) & ~clean].max() < 0.1, c
    # deterministic for a seed; the min-max normalisation makes it scale-free
    assert np.array_equal(prob, gmm_clean_probability(losses, labels))
    assert np.allclose(gmm_clean_probability(7.0 * losses, labels), prob, atol=1e-6)


def test_gmm_global_fails_where_per_class_is_right():
    losses, labels, clean = planted_losses()
    per_class = gmm_clean_probability(losses, labels) > 0.5
    pooled = gmm_clean_probability(losses) > 0.5
    assert np.array_equal(per_class, clean)
    # one mixture over all classes: the noisy samples of the two low-loss classes look clean
    assert np.mean(pooled == clean) < 0.8
    assert pooled[(labels < 2) & ~clean].all()
    assert np.array_equal(pooled[labels == 2], clean[labels == 2])


def test_gmm_degenerate_groups_are_clean():
    assert np.array_equal(gmm_clean_probability(np.full(7, 0.3)), np.ones(7))
    assert np.array_equal(gmm_clean_probability(np.array([2.5])), [1.0])
    assert gmm_clean_probability(np.zeros(0)).shape == (0,)
    losses, labels, _ = planted_losses()
    # class 3: a single sample; class 4: identical losses
    losses = np.r_[losses, 9.0, 1.0, 1.0, 1.0]
    labels = np.r_[labels, 3, 4, 4, 4]
    prob = gmm_clean_probability(losses, labels)
    assert np.array_equal(prob[-4:], np.ones(4))
    assert prob[:300].min() < 0.1  # the other classes still have noisy samples


def test_gmm_rejects_bad_input():
    with pytest.raises(ValueError, match="finite"):
        gmm_clean_probability(np.array([0.1, np.nan, 0.3]))
    with pytest.raises(ValueError, match="finite"):
        gmm_clean_probability(np.array([0.1, np.inf, 0.3]), np.array([0, 1, 0]))
    with pytest.raises(ValueError, match="does not match"):
        gmm_clean_probability(np.array([0.1, 0.2, 0.3]), np.array([0, 1]))


def test_class_balanced_subset_by_hand():
    labels = np.r_[np.zeros(10, int), np.ones(6, int), np.full(8, 2)]
    mask = np.zeros(24, bool)
    mask[[0, 1, 2, 3, 5, 7, 9]] = True  # 7 of class 0
    mask[[10, 12, 15]] = True  # 3 of class 1
    mask[[16, 17, 18, 20, 23]] = True  # 5 of class 2
    subset = class_balanced_subset(mask, labels, np.random.default_rng(0))
    assert subset.dtype == np.int64 and len(subset) == 9
    assert np.array_equal(subset, np.unique(subset))  # sorted and unique
    assert mask[subset].all()
    assert np.array_equal(np.bincount(labels[subset]), [3, 3, 3])
    assert set(subset[labels[subset] == 1]) == {10, 12, 15}  # the smallest class is taken whole
    again = class_balanced_subset(mask, labels, np.random.default_rng(0))
    assert np.array_equal(subset, again)
    draws = {tuple(class_balanced_subset(mask, labels, np.random.default_rng(s))) for s in range(10)}
    assert len(draws) > 1  # the larger classes are subsampled at random
    assert class_balanced_subset(mask, labels, np.random.default_rng(0), n_classes=3).tolist() == subset.tolist()


def test_class_balanced_subset_empty_class_falls_back(caplog):
    labels = np.r_[np.zeros(5, int), np.ones(5, int), np.full(5, 2)]
    mask = np.r_[np.ones(5, bool), np.zeros(5, bool), [True, True, False, True, False]]
    with caplog.at_level(logging.WARNING, logger="nml.estimators.noisy_labels.cleansing"):
        subset = class_balanced_subset(mask, labels, np.random.default_rng(0))
    assert np.array_equal(np.bincount(labels[subset], minlength=3), [3, 0, 3])
    assert mask[subset].all()
    assert "no clean sample selected in classes [1]" in caplog.text and "at 3 each" in caplog.text
    # n_classes also counts a class absent from the labels
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="nml.estimators.noisy_labels.cleansing"):
        subset = class_balanced_subset(np.ones(15, bool), labels, np.random.default_rng(0), n_classes=4)
    assert np.array_equal(np.bincount(labels[subset], minlength=4), [5, 5, 5, 0])
    assert "classes [3]" in caplog.text


def test_class_balanced_subset_empty_and_bad_input():
    labels = np.array([0, 1, 1, 2])
    empty = class_balanced_subset(np.zeros(4, bool), labels, np.random.default_rng(0))
    assert empty.dtype == np.int64 and empty.shape == (0,)
    with pytest.raises(ValueError, match="does not match"):
        class_balanced_subset(np.ones(3, bool), labels, np.random.default_rng(0))


@st.composite
def masked_labels(draw):
    n_classes = draw(st.integers(1, 6))
    n = draw(st.integers(0, 80))
    labels = np.array(draw(st.lists(st.integers(0, n_classes - 1), min_size=n, max_size=n)), dtype=np.int64)
    mask = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    return mask, labels, draw(st.integers(0, 2**32 - 1))


@FAST
@given(problem=masked_labels())
def test_class_balanced_subset_properties(problem):
    mask, labels, seed = problem
    subset = class_balanced_subset(mask, labels, np.random.default_rng(seed))
    assert subset.dtype == np.int64
    assert np.array_equal(subset, np.unique(subset))
    assert mask[subset].all()
    selected = np.bincount(labels[mask], minlength=7) if len(labels) else np.zeros(7, int)
    counts = np.bincount(labels[subset], minlength=7) if len(subset) else np.zeros(7, int)
    if selected.any():
        n = selected[selected > 0].min()
        # every class with a selected sample gives exactly n, the others nothing
        assert np.array_equal(counts, np.where(selected > 0, n, 0))
    else:
        assert len(subset) == 0
    assert np.array_equal(subset, class_balanced_subset(mask, labels, np.random.default_rng(seed)))


def test_detection_scores_by_hand():
    flagged = np.array([1, 1, 1, 0, 0, 0, 0, 0], bool)
    noisy = np.array([1, 0, 0, 1, 1, 1, 0, 0], bool)
    scores = detection_scores(flagged, noisy)
    assert scores["precision"] == pytest.approx(1 / 3)
    assert scores["recall"] == pytest.approx(1 / 4)
    assert scores["f1"] == pytest.approx(2 * (1 / 3) * (1 / 4) / (1 / 3 + 1 / 4))
    assert (scores["n_flagged"], scores["n_noisy"]) == (3, 4)
    perfect = detection_scores(noisy, noisy)
    assert perfect["precision"] == perfect["recall"] == perfect["f1"] == 1.0
    nothing = detection_scores(np.zeros(8, bool), noisy)
    assert np.isnan(nothing["precision"]) and np.isnan(nothing["f1"]) and nothing["recall"] == 0.0
    assert np.isnan(detection_scores(flagged, np.zeros(8, bool))["recall"])
    with pytest.raises(ValueError, match="does not match"):
        detection_scores(flagged, noisy[:-1])


# ====================================================================== common estimator behaviour
ESTIMATOR_NAMES = [name for name in list_methods() if method_input(name) in ("features", "images")]


def fast_kwargs(name: str) -> dict:
    """Small, fast settings of method ``name`` (a fresh tiny backbone for image methods)."""
    cls = type(create_method(name))
    if cls is NoisyLinearProbe:
        return {"epochs": 5, "batch_size": 32, "lr": 1e-2}
    if cls is FullFineTune:
        return {"backbone": tiny_backbone(), "epochs": 2, "batch_size": 32, "lr": 1e-2}
    if cls is TURN:
        return {"backbone": tiny_backbone(), "epochs_lp": 3, "lp_batch_size": 32, "lp_lr": 1e-2,
                "epochs_fft": 2, "batch_size": 32, "lr": 1e-2}
    raise AssertionError(f"no fast settings for {name} ({cls.__name__}): add them here")


def n_epochs(est) -> int:
    return est.epochs_lp * est.lp_step + est.epochs_fft if isinstance(est, TURN) else est.epochs


@pytest.fixture(scope="module")
def image_problem():
    X, y = band_images(120, 3, seed=0)
    X_test, y_test = band_images(90, 3, seed=1)
    return X, y, X_test, y_test


@pytest.fixture(scope="module")
def feature_problem():
    X, y = make_blobs(n_samples=260, centers=3, n_features=8, random_state=0, cluster_std=1.5)
    X = X.astype(np.float32)
    return X[:200], y[:200], X[200:], y[200:]


@pytest.fixture(params=ESTIMATOR_NAMES)
def method(request, image_problem, feature_problem):
    """(make(**overrides) -> fresh estimator, (X, y, X_test, y_test) of the input it reads, kind)."""
    name = request.param
    kind = method_input(name)
    problem = image_problem if kind == "images" else feature_problem
    return (lambda **kw: create_method(name, **{**fast_kwargs(name), **kw})), problem, kind


def test_registry():
    assert set(ESTIMATOR_NAMES) == {"ce-fft", "gce-fft", "elr-fft", "ce-lp", "gce-lp", "elr-lp", "turn"}
    assert create_method("gce-lp").loss == "gce" and create_method("elr-fft", epochs=2).epochs == 2
    assert method_input("turn") == "images" and method_input("ce-lp") == "features"
    with pytest.raises(KeyError, match="unknown noisy-label method 'coteaching': expected one of .*'turn'"):
        create_method("coteaching")
    with pytest.raises(KeyError, match="unknown noisy-label method 'coteaching'"):
        method_input("coteaching")


def test_fit_predict_shapes_and_consistency(method):
    make, (X, y, X_test, y_test), _ = method
    est = make()
    assert est.fit(X, y, eval_set=(X_test, y_test)) is est
    assert np.array_equal(est.classes_, [0, 1, 2])
    logits, proba = est.decision_function(X_test), est.predict_proba(X_test)
    assert logits.shape == proba.shape == (len(X_test), 3)
    assert np.all(np.isfinite(logits)) and np.all(proba >= 0)
    assert np.allclose(proba.sum(1), 1)
    assert np.array_equal(est.predict(X_test), est.classes_[proba.argmax(1)])
    assert np.array_equal(est.predict(X_test), est.classes_[logits.argmax(1)])
    assert est.score(X, y) > 0.6  # learned something (chance is 1/3)


def test_history_and_timing(method):
    make, (X, y, X_test, y_test), _ = method
    X_val, y_val = X[:40], y[:40]
    est = make().fit(X, y, eval_set=(X_test, y_test), val_set=(X_val, y_val))
    assert len(est.history_) == len(est.test_predictions_) == n_epochs(est)
    if isinstance(est, TURN):
        phases = ["lp"] * est.epochs_lp + ["fft"] * est.epochs_fft
        epochs = list(range(est.epochs_lp)) + list(range(est.epochs_fft))
    else:
        phases = [("lp" if isinstance(est, NoisyLinearProbe) else "fft")] * est.epochs
        epochs = list(range(est.epochs))
    assert [h["phase"] for h in est.history_] == phases
    assert [h["epoch"] for h in est.history_] == epochs
    for h, pred in zip(est.history_, est.test_predictions_, strict=True):
        assert h["test_acc"] == pytest.approx(np.mean(pred == y_test)) and 0 <= h["val_acc"] <= 1
    # best / oracle / last cover the fine-tuning phase only: TURN's LP epochs are not candidates
    tuning = [h for h in est.history_ if h["phase"] == ("fft" if isinstance(est, TURN) else phases[0])]
    vals = [h["val_acc"] for h in tuning]
    assert est.best_test_acc_ == tuning[vals.index(max(vals))]["test_acc"]
    assert est.oracle_test_acc_ == max(h["test_acc"] for h in tuning) >= est.best_test_acc_
    assert est.oracle_test_acc_ >= est.last_test_acc_ == tuning[-1]["test_acc"]
    assert est.last_test_acc_ == pytest.approx(est.score(X_test, y_test))
    if isinstance(est, TURN):
        lp = [h for h in est.history_ if h["phase"] == "lp"]
        assert est.lp_test_acc_ == lp[-1]["test_acc"]
        # the LP head's validation accuracy is scored on the same validation images
        assert lp[-1]["val_acc"] == pytest.approx(np.mean(
            est.classes_[(backbone_features(tiny_backbone(), X_val) @ est.lp_coef_.T + est.lp_intercept_).argmax(1)] == y_val))
    assert est.fit_seconds_ > 0
    # without val_set: no validation accuracy, so no best-by-validation (NaN); oracle and last stay
    no_val = make().fit(X, y, eval_set=(X_test, y_test))
    assert all("val_acc" not in h for h in no_val.history_) and np.isnan(no_val.best_test_acc_)
    assert no_val.oracle_test_acc_ == est.oracle_test_acc_ and no_val.last_test_acc_ == est.last_test_acc_
    # without eval_set: no history, NaN accuracies, same model
    quiet = make().fit(X, y)
    assert quiet.history_ == [] and quiet.test_predictions_ == []
    assert np.isnan(quiet.best_test_acc_) and np.isnan(quiet.last_test_acc_) and np.isnan(quiet.oracle_test_acc_)
    assert np.allclose(quiet.decision_function(X_test), est.decision_function(X_test), atol=1e-5)


def test_select_epochs_on_a_fixed_history():
    history = [
        {"phase": "lp", "epoch": 0, "val_acc": 0.9, "test_acc": 0.95},  # the LP step: never a candidate of TURN's best
        {"phase": "fft", "epoch": 0, "val_acc": 0.40, "test_acc": 0.50},
        {"phase": "fft", "epoch": 1, "val_acc": 0.60, "test_acc": 0.55},
        {"phase": "fft", "epoch": 2, "val_acc": 0.60, "test_acc": 0.70},  # tie on validation: the earlier epoch wins
        {"phase": "fft", "epoch": 3, "val_acc": 0.50, "test_acc": 0.80},  # the oracle, chosen on test labels
        {"phase": "fft", "epoch": 4, "val_acc": 0.45, "test_acc": 0.65},
    ]
    assert select_epochs(history, ("fft",)) == {"best": 2, "oracle": 4, "last": 5}
    assert select_epochs(history) == {"best": 0, "oracle": 0, "last": 5}  # all phases
    assert select_epochs(history, ("lp",)) == {"best": 0, "oracle": 0, "last": 0}
    no_val = [{k: v for k, v in h.items() if k != "val_acc"} for h in history]
    assert select_epochs(no_val, ("fft",)) == {"best": -1, "oracle": 4, "last": 5}
    with pytest.raises(ValueError, match="no evaluation point in phases"):
        select_epochs(history, ("warmup",))


def test_string_labels(method):
    make, (X, y, X_test, y_test), _ = method
    names = np.array(["eel", "cat", "dog"])
    est = make().fit(X, names[y], eval_set=(X_test, names[y_test]))
    assert list(est.classes_) == ["cat", "dog", "eel"]
    assert set(est.predict(X_test)) <= {"cat", "dog", "eel"}
    assert np.mean(est.predict(X_test) == names[y_test]) == pytest.approx(est.last_test_acc_)
    # column 0 is "cat": higher on the samples labelled cat than on the others
    proba = est.predict_proba(X)
    assert proba[names[y] == "cat", 0].mean() > proba[names[y] != "cat", 0].mean() + 0.05
    assert np.mean(est.classes_[proba.argmax(1)] == names[y]) > 0.6


def test_clone_params_and_pickle(method):
    make, (X, y, X_test, _), _ = method
    est = make()
    params = est.get_params()
    assert type(est)(**params).get_params() == params
    cloned = clone(est).get_params()
    assert cloned.keys() == params.keys()
    for key, value in params.items():
        if isinstance(value, nn.Module):  # clone deep-copies the backbone
            assert cloned[key] is not value and str(cloned[key]) == str(value)
        else:
            assert cloned[key] == value, key
    est.fit(X, y)
    assert est.get_params() == params
    loaded = pickle.loads(pickle.dumps(est))
    assert np.array_equal(loaded.decision_function(X_test), est.decision_function(X_test))
    assert np.array_equal(loaded.predict(X_test), est.predict(X_test))


def _coefficients(est) -> np.ndarray:
    if isinstance(est, NoisyLinearProbe):
        return est.coef_
    return est.model_.head.weight.detach().numpy()


def test_seeded(method):
    make, (X, y, X_test, y_test), _ = method
    a = make(seed=1).fit(X, y, eval_set=(X_test, y_test))
    b = clone(a).fit(X, y, eval_set=(X_test, y_test))
    assert a.history_ == b.history_
    assert np.array_equal(a.decision_function(X_test), b.decision_function(X_test))
    assert np.array_equal(_coefficients(a), _coefficients(b))
    c = make(seed=2).fit(X, y)
    assert not np.allclose(_coefficients(a), _coefficients(c))
    assert not np.allclose(a.decision_function(X_test), c.decision_function(X_test))


def test_fits_inside_no_grad(method):
    make, (X, y, X_test, _), _ = method
    reference = make().fit(X, y)
    with torch.no_grad():
        est = make().fit(X, y)
    assert np.allclose(est.decision_function(X_test), reference.decision_function(X_test), atol=1e-6)
    assert est.score(X, y) > 0.6


def test_inputs_are_not_modified(method):
    make, (X, y, X_test, y_test), kind = method
    X_before, y_before = copy.deepcopy(X), y.copy()
    est = make()
    if kind == "images":
        backbone = est.backbone
        backbone.train()
        state = {k: v.clone() for k, v in backbone.state_dict().items()}
    est.fit(X, y, eval_set=(X_test, y_test))
    assert np.array_equal(np.asarray(X), np.asarray(X_before)) and np.array_equal(y, y_before)
    if kind == "images":
        assert est.backbone is backbone and backbone.training
        assert all(torch.equal(state[k], v) for k, v in backbone.state_dict().items())
        # ... while the fitted model's own copy did move
        fitted = est.model_.backbone.state_dict()
        assert fitted.keys() == state.keys()
        assert not all(torch.equal(state[k], fitted[k]) for k in state)
        assert est.model_.backbone is not backbone
        assert all(p.device.type == "cpu" for p in est.model_.parameters()) and not est.model_.training


def test_bad_inputs(method):
    make, (X, y, _, _), kind = method
    bad = copy.deepcopy(X)
    bad[3] = np.nan if kind == "features" else float("nan")
    match = "Input X contains NaN" if kind == "features" else "finite floating-point pixels"
    with pytest.raises(ValueError, match=match):
        make().fit(bad, y)
    with pytest.raises(ValueError, match="need at least 2 classes"):
        make().fit(X, np.zeros(len(y), int))
    # scikit-learn's errors and warnings for the targets, whatever X is
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples: \[\d+, \d+\]"):
        make().fit(X, y[:-1])
    with pytest.raises(ValueError, match="requires y to be passed, but the target y is None"):
        make().fit(X, None)
    with pytest.warns(DataConversionWarning, match="A column-vector y was passed"):
        make().fit(X, y[:, None])
    if kind == "features":
        with pytest.raises(ValueError, match="Expected 2D array, got 1D array"):
            make().fit(X[:, 0], y)
        with pytest.raises(ValueError, match="Found array with dim 3"):
            make().fit(X[:, None, :], y)  # a view bank is not a feature matrix
    else:
        # a matrix is an input for a backbone that reads vectors, with nothing to crop
        flat = X.reshape(len(X), -1)
        for matrix in (flat.numpy(), flat):
            with pytest.raises(ValueError, match=r"augment=True crops .* feature matrix of shape \(120, 144\)"):
                make().fit(matrix, y)
        with pytest.raises(ValueError, match=r"image tensor N×C×H×W, got shape \(120, 1, 12\)"):
            make().fit(X[:, :, 0], y)
        with pytest.raises(ValueError, match="floating-point"):
            make().fit((X * 255).to(torch.uint8), y)
        for backbone in ("resnet18", None, lambda x: x):
            est = make(backbone=backbone)
            with pytest.raises(InvalidParameterError,
                               match="'backbone' parameter of .* must be an instance of 'torch.nn.modules.module.Module'"):
                est.fit(X, y)
            assert not hasattr(est, "history_")


# scikit-learn's InvalidParameterError (a ValueError) from the declared constraints, naming the parameter
BAD_PARAMS = [
    ("ce-lp", {"epochs": 0}, r"'epochs' parameter of NoisyLinearProbe must be an int in the range \[1, inf\)"),
    ("ce-fft", {"epochs": 0}, r"'epochs' parameter of FullFineTune must be an int in the range \[1, inf\)"),
    ("turn", {"epochs_fft": 0}, r"'epochs_fft' parameter of TURN must be an int in the range \[1, inf\)"),
    ("turn", {"epochs_lp": 0}, "'epochs_lp' parameter of TURN"),
    ("gce-lp", {"batch_size": 0}, "'batch_size' parameter of NoisyLinearProbe"),
    ("turn", {"lp_batch_size": 0}, "'lp_batch_size' parameter of TURN"),
    ("ce-lp", {"lr": -1}, r"'lr' parameter of NoisyLinearProbe must be a float in the range \(0.0, inf\)"),
    ("elr-fft", {"lr": -1}, "'lr' parameter of FullFineTune"),
    ("turn", {"lr": -1}, "'lr' parameter of TURN"),
    ("turn", {"lp_lr": 0.0}, "'lp_lr' parameter of TURN"),
    ("ce-fft", {"lr": float("nan")}, "'lr' parameter of FullFineTune"),
    ("ce-lp", {"weight_decay": -1e-5}, r"'weight_decay' parameter of NoisyLinearProbe must be a float in the range \[0.0, inf\)"),
    ("ce-lp", {"momentum": 1.0}, r"'momentum' parameter of NoisyLinearProbe must be a float in the range \[0.0, 1.0\)"),
    ("ce-lp", {"loss": "mse"}, "'loss' parameter of NoisyLinearProbe must be a str among"),
    ("ce-fft", {"loss": "mse"}, "'loss' parameter of FullFineTune must be a str among"),
    ("gce-lp", {"q": 0}, r"'q' parameter of NoisyLinearProbe must be a float in the range \(0.0, 1.0\]"),
    ("gce-fft", {"q": 1.5}, "'q' parameter of FullFineTune"),
    ("turn", {"q": 0}, "'q' parameter of TURN"),
    ("elr-lp", {"elr_beta": 1.0}, r"'elr_beta' parameter of NoisyLinearProbe must be a float in the range \[0.0, 1.0\)"),
    ("elr-fft", {"elr_lambda": -1.0}, "'elr_lambda' parameter of FullFineTune"),
    ("ce-lp", {"standardize": "yes"}, "'standardize' parameter of NoisyLinearProbe"),
    ("turn", {"tau": 1.0}, r"'tau' parameter of TURN must be a float in the range \[0.0, 1.0\)"),
    ("turn", {"tau": -0.1}, "'tau' parameter of TURN"),
    ("turn", {"cleansing": "sometimes"}, "'cleansing' parameter of TURN must be a str among"),
    ("turn", {"lp_optimizer": "adam"}, "'lp_optimizer' parameter of TURN must be a str among .* or None"),
    ("ce-lp", {"optimizer": "rmsprop"}, "'optimizer' parameter of NoisyLinearProbe must be a str among"),
    ("ce-fft", {"optimizer": "rmsprop"}, "'optimizer' parameter of FullFineTune"),
    ("turn", {"optimizer": "rmsprop"}, "'optimizer' parameter of TURN"),
    ("ce-fft", {"device": "tpu"}, "'device' parameter of FullFineTune must be a str among"),
    ("turn", {"seed": 0.5}, "'seed' parameter of TURN must be an instance of 'int'"),
    ("ce-fft", {"crop_pad": -1}, r"'crop_pad' parameter of FullFineTune must be an int in the range \[0, inf\) or None"),
    ("turn", {"eval_batch_size": 0}, "'eval_batch_size' parameter of TURN"),
    ("turn", {"augment": 1}, "'augment' parameter of TURN must be an instance of 'bool'"),
]


@pytest.mark.parametrize("name, kwargs, match", BAD_PARAMS)
def test_bad_hyper_parameters(name, kwargs, match, image_problem, feature_problem):
    X, y, _, _ = image_problem if method_input(name) == "images" else feature_problem
    est = create_method(name, **{**fast_kwargs(name), **kwargs})
    with pytest.raises(InvalidParameterError, match=match):
        est.fit(X, y)
    assert not hasattr(est, "history_")


# ====================================================================== TURN on a noisy, separable problem
@pytest.fixture(scope="module")
def noisy_problem():
    """5 band classes, 400 training images with 50 % planted symmetric noise, 300 clean test images."""
    X, y_clean = band_images(400, 5, seed=0, noise=1.0)
    X_test, y_test = band_images(300, 5, seed=10, noise=1.0)
    noisy = symmetric_noise(y_clean, 0.5, seed=0)
    return X, y_clean, noisy, X_test, y_test


TURN_NOISY = {"epochs_lp": 10, "lp_batch_size": 32, "lp_lr": 3e-3, "epochs_fft": 3, "batch_size": 32, "lr": 1e-2}


@pytest.fixture(scope="module")
def noisy_turn(noisy_problem):
    X, _, noisy, X_test, y_test = noisy_problem
    torch.set_num_threads(1)
    return TURN(backbone=tiny_backbone(), **TURN_NOISY).fit(X, noisy.labels, eval_set=(X_test, y_test))


def test_turn_cleansing_finds_planted_noise(noisy_problem, noisy_turn):
    _, _, noisy, _, _ = noisy_problem
    clean = ~noisy.is_noisy
    base_rate = clean.mean()
    assert base_rate == pytest.approx(0.5)  # a random selection is 50 % clean
    first = noisy_turn.cleansing_[0]
    assert first["epoch"] == 0
    mask, subset = first["clean_mask"], first["subset"]
    assert np.array_equal(mask, first["clean_probability"] > noisy_turn.tau)
    precision = clean[mask].mean()  # fraction clean among the selected
    recall = mask[clean].mean()  # fraction of the clean samples selected
    assert precision > 0.9 and precision > base_rate + 0.4, (precision, base_rate)
    assert recall > 0.7, recall
    purity = clean[subset].mean()
    assert purity > 0.9 and purity > base_rate + 0.4, (purity, base_rate)
    # the subset is the class-balanced draw from the clean set
    assert mask[subset].all()
    counts = np.bincount(noisy.labels[subset], minlength=5)
    assert np.all(counts == counts[0]) and counts[0] == np.bincount(noisy.labels[mask], minlength=5).min()
    # as noise detection: flagged = not selected
    scores = detection_scores(~mask, noisy.is_noisy)
    assert scores["precision"] > 0.7 and scores["recall"] > 0.9


def test_turn_beats_full_fine_tuning_under_noise(noisy_problem, noisy_turn):
    X, y_clean, noisy, X_test, y_test = noisy_problem
    fft = dict(epochs=TURN_NOISY["epochs_fft"], batch_size=32, lr=TURN_NOISY["lr"])
    ce = FullFineTune(backbone=tiny_backbone(), loss="ce", **fft).fit(X, noisy.labels, eval_set=(X_test, y_test))
    # the FFT budget is enough on clean labels: the gap below is the noise's doing
    ce_clean = FullFineTune(backbone=tiny_backbone(), loss="ce", **fft).fit(X, y_clean, eval_set=(X_test, y_test))
    assert ce_clean.last_test_acc_ > 0.85 and ce_clean.last_test_acc_ > ce.last_test_acc_ + 0.1
    assert noisy_turn.last_test_acc_ > 0.9
    assert noisy_turn.last_test_acc_ > ce.last_test_acc_ + 0.1, (noisy_turn.last_test_acc_, ce.history_)
    assert noisy_turn.last_test_acc_ > ce.oracle_test_acc_ + 0.1  # even CE's best test epoch


def _record_training(monkeypatch):
    """Wrap turn.train_epoch to record the indices each FFT epoch trains on."""
    seen = []
    original = turn_module.train_epoch

    def recording(model, X, y, indices, *args, **kwargs):
        seen.append(indices.numpy().copy())
        return original(model, X, y, indices, *args, **kwargs)

    monkeypatch.setattr(turn_module, "train_epoch", recording)
    return seen


def _count_gmm(monkeypatch):
    calls = []
    original = turn_module.gmm_clean_probability

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(turn_module, "gmm_clean_probability", counting)
    return calls


@pytest.fixture(scope="module")
def small_noisy_problem():
    X, y_clean = band_images(200, 4, seed=3, noise=1.0)
    return X, symmetric_noise(y_clean, 0.4, seed=1)


SMALL_TURN = {"epochs_lp": 3, "lp_batch_size": 32, "lp_lr": 1e-2, "epochs_fft": 3, "batch_size": 32, "lr": 1e-2}


def test_turn_cleansing_every_epoch(monkeypatch, small_noisy_problem):
    X, noisy = small_noisy_problem
    seen, gmm = _record_training(monkeypatch), _count_gmm(monkeypatch)
    est = TURN(backbone=tiny_backbone(), cleansing="every", **SMALL_TURN).fit(X, noisy.labels)
    assert len(gmm) == 3 and [c["epoch"] for c in est.cleansing_] == [0, 1, 2]
    for record, trained in zip(est.cleansing_, seen, strict=True):
        assert np.array_equal(trained, record["subset"])  # each epoch trains on its balanced subset
        assert len(trained) < len(X)
    probs = [c["clean_probability"] for c in est.cleansing_]
    assert not np.allclose(probs[0], probs[1]) and not np.allclose(probs[1], probs[2])


def test_turn_cleansing_once(monkeypatch, small_noisy_problem):
    X, noisy = small_noisy_problem
    seen, gmm = _record_training(monkeypatch), _count_gmm(monkeypatch)
    est = TURN(backbone=tiny_backbone(), cleansing="once", **SMALL_TURN).fit(X, noisy.labels)
    assert len(gmm) == 1 and len(est.cleansing_) == 3
    first = est.cleansing_[0]
    for record, trained in zip(est.cleansing_, seen, strict=True):
        assert record["clean_probability"] is first["clean_probability"]
        assert record["clean_mask"] is first["clean_mask"]
        assert np.array_equal(trained, record["subset"]) and first["clean_mask"][trained].all()
    # the clean set is kept but the balanced subset is re-drawn each epoch
    assert not all(np.array_equal(r["subset"], first["subset"]) for r in est.cleansing_[1:])


def test_turn_without_cleansing_trains_on_everything(monkeypatch, small_noisy_problem):
    X, noisy = small_noisy_problem
    seen, gmm = _record_training(monkeypatch), _count_gmm(monkeypatch)
    est = TURN(backbone=tiny_backbone(), cleansing="none", **SMALL_TURN).fit(X, noisy.labels)
    assert gmm == [] and est.cleansing_ == []
    assert len(seen) == 3 and all(np.array_equal(trained, np.arange(len(X))) for trained in seen)


def test_turn_first_cleansing_on_cached_features_matches_a_forward_pass(monkeypatch, small_noisy_problem):
    # with FFT a no-op, epoch 0 (losses from the cached features) and epoch 1 (losses from a
    # forward pass of the model) see the same model, so they must select the same samples
    X, noisy = small_noisy_problem
    monkeypatch.setattr(turn_module, "train_epoch", lambda *args, **kwargs: 0.0)
    est = TURN(backbone=tiny_backbone(), cleansing="every", **SMALL_TURN).fit(X, noisy.labels)
    first, second = est.cleansing_[0], est.cleansing_[1]
    assert np.allclose(first["clean_probability"], second["clean_probability"], atol=1e-3)
    assert np.array_equal(first["clean_mask"], second["clean_mask"])


def test_turn_without_lp_step(small_noisy_problem):
    X, noisy = small_noisy_problem
    X_test, y_test = X[:50], noisy.labels[:50]
    est = TURN(backbone=tiny_backbone(), lp_step=False, **SMALL_TURN).fit(X, noisy.labels, eval_set=(X_test, y_test))
    assert [h["phase"] for h in est.history_] == ["fft"] * 3
    with_lp = TURN(backbone=tiny_backbone(), **SMALL_TURN).fit(X, noisy.labels, eval_set=(X_test, y_test))
    assert [h["phase"] for h in with_lp.history_] == ["lp"] * 3 + ["fft"] * 3
    # the random head's first cleansing differs from the probed head's
    assert not np.allclose(est.cleansing_[0]["clean_probability"], with_lp.cleansing_[0]["clean_probability"])


def test_turn_lp_fold_is_exact(monkeypatch):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 150)
    # raw features far from standardised: offsets and scales differ per column
    feats = (rng.normal(size=(150, 6)) + np.eye(3, 6)[y] * 4) * rng.uniform(0.2, 5.0, 6) + rng.uniform(-3, 3, 6)
    feats = feats.astype(np.float32)
    layers = []
    original = turn_module.train_linear

    def capture(*args, **kwargs):
        layers.append(original(*args, **kwargs))
        return layers[-1]

    monkeypatch.setattr(turn_module, "train_linear", capture)
    raw = TURN(backbone=tiny_backbone(), epochs_lp=5, lp_batch_size=32, lp_lr=1e-2)  # the default: no scaling
    raw.classes_ = np.arange(3)
    raw_head = raw._linear_probe(feats, y, None, None, torch.device("cpu"))
    assert torch.equal(raw_head.weight, layers[0].weight) and torch.equal(raw_head.bias, layers[0].bias)
    layers.clear()
    est = TURN(backbone=tiny_backbone(), epochs_lp=5, lp_batch_size=32, lp_lr=1e-2, lp_standardize=True)
    est.classes_ = np.arange(3)
    head = est._linear_probe(feats, y, None, None, torch.device("cpu"))
    (layer,) = layers
    mean, scale = feats.mean(0), feats.std(0) + 1e-6
    held_out = (rng.normal(size=(40, 6)) * 3).astype(np.float32)
    with torch.no_grad():
        for f in (feats, held_out):
            folded = head(torch.from_numpy(f)).numpy()
            standardised = layer(torch.from_numpy((f - mean) / scale)).numpy()
            assert np.allclose(folded, standardised, atol=1e-4)
        accuracy = np.mean(head(torch.from_numpy(feats)).argmax(1).numpy() == y)
    assert accuracy > 0.8  # the probe is a real classifier, not a trivial one


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_turn_step1_is_the_gce_lp_baseline_head(optimizer, image_problem):
    """TURN's step 1 and the GCE-LP estimator, on the same features, labels and seed, give the same
    head: equal weights (raw features, the default of both), equal logits when both standardise."""
    X, y, X_test, _ = image_problem
    feats = backbone_features(tiny_backbone(), X)
    lp = {"epochs": 4, "batch_size": 32, "lr": 5e-3, "weight_decay": 1e-4, "momentum": 0.8, "optimizer": optimizer}
    turn_lp = {f"{'epochs_lp' if k == 'epochs' else 'lp_' + k}": v for k, v in lp.items()}
    gce = NoisyLinearProbe(loss="gce", q=0.6, seed=4, **lp).fit(feats, y)
    turn = TURN(backbone=tiny_backbone(), q=0.6, seed=4, epochs_fft=1, optimizer="adamw", momentum=0.0,
                **turn_lp).fit(X, y, features=feats)
    assert np.array_equal(turn.lp_coef_, gce.coef_) and np.array_equal(turn.lp_intercept_, gce.intercept_)
    # the same without cached features (TURN extracts them itself)
    again = TURN(backbone=tiny_backbone(), q=0.6, seed=4, epochs_fft=1, **turn_lp).fit(X, y)
    assert np.array_equal(again.lp_coef_, gce.coef_)
    # one scaling for both: standardised features give the same classifier (TURN folds the scaling)
    gce_std = NoisyLinearProbe(loss="gce", q=0.6, seed=4, standardize=True, **lp).fit(feats, y)
    turn_std = TURN(backbone=tiny_backbone(), q=0.6, seed=4, epochs_fft=1, lp_standardize=True, **turn_lp).fit(
        X, y, features=feats)
    test_feats = backbone_features(tiny_backbone(), X_test)
    assert np.allclose(test_feats @ turn_std.lp_coef_.T + turn_std.lp_intercept_, gce_std.decision_function(test_feats),
                       atol=1e-4)
    # and a different seed gives a different head (the equality above is not vacuous)
    other = NoisyLinearProbe(loss="gce", q=0.6, seed=5, **lp).fit(feats, y)
    assert not np.allclose(other.coef_, gce.coef_)


def bn_backbone() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


@pytest.mark.parametrize("name", ["ce-fft", "gce-fft", "elr-fft", "turn"])
def test_one_bn_policy_for_every_fft_method(name):
    """The same ``bn_mode`` does the same to BatchNorm in TURN and in every FFT baseline."""
    from nml.estimators.noisy_labels.full import recalibrate_bn_statistics

    backbone = bn_backbone()
    X = torch.randn(40, 1, 8, 8) + 3.0  # far from the running statistics (mean 0, var 1)
    y = np.arange(40) % 2
    kw = {"epochs_lp": 1, "epochs_fft": 2} if name == "turn" else {"epochs": 2}
    fit = lambda mode, **extra: create_method(name, backbone=backbone, batch_size=8, augment=False, bn_mode=mode,  # noqa: E731
                                            **kw, **extra).fit(X, y)
    frozen = fit("frozen").model_.backbone[1]
    assert torch.equal(frozen.running_mean, backbone[1].running_mean) and torch.equal(frozen.running_var, backbone[1].running_var)
    assert not torch.equal(frozen.weight, backbone[1].weight)  # the affine weights still train
    assert fit("train").model_.backbone[1].running_mean.abs().mean() > 0.1  # statistics follow the batches
    expected = copy.deepcopy(backbone)
    recalibrate_bn_statistics(expected, X, batch_size=20, device=torch.device("cpu"))
    recal = fit("recalibrate", lr=1e-12, **({"lp_lr": 1e-12} if name == "turn" else {})).model_.backbone[1]
    assert torch.allclose(recal.running_mean, expected[1].running_mean, atol=0.1)
    assert torch.equal(backbone[1].running_mean, torch.zeros(4))  # the caller's backbone is untouched
    with pytest.raises(InvalidParameterError, match="'bn_mode' parameter of .* must be a str among"):
        create_method(name, backbone=backbone, bn_mode="yes", **kw).fit(X, y)


def test_turn_eval_features_give_the_same_lp_history(image_problem):
    X, y, X_test, y_test = image_problem
    kwargs = fast_kwargs("turn")
    a = TURN(**kwargs).fit(X, y, eval_set=(X_test, y_test))
    cached = backbone_features(tiny_backbone(), X_test)
    b = TURN(**kwargs).fit(X, y, eval_set=(X_test, y_test), eval_features=cached)
    assert a.history_ == b.history_ and len(a.history_) == 5


def test_turn_precomputed_features(image_problem):
    X, y, X_test, y_test = image_problem
    kwargs = fast_kwargs("turn")
    feats = backbone_features(tiny_backbone(), X)
    a = TURN(**kwargs).fit(X, y, eval_set=(X_test, y_test))
    b = TURN(**kwargs).fit(X, y, eval_set=(X_test, y_test), features=feats)
    assert a.history_ == b.history_
    assert np.allclose(a.decision_function(X_test), b.decision_function(X_test), atol=1e-5)
    for ca, cb in zip(a.cleansing_, b.cleansing_, strict=True):
        assert np.array_equal(ca["subset"], cb["subset"])
    for bad in (feats[:-1], feats[:, :-1], feats[:, :, None]):
        with pytest.raises(ValueError, match="features"):
            TURN(**kwargs).fit(X, y, features=bad)
    nan = feats.copy()
    nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="features contains NaN"):
        TURN(**kwargs).fit(X, y, features=nan)


# ====================================================================== FullFineTune
def test_full_fine_tune_transform(image_problem):
    X, y, X_test, _ = image_problem
    backbone = tiny_backbone()
    before = backbone_features(backbone, X_test)
    est = FullFineTune(backbone=backbone, epochs=2, batch_size=32, lr=1e-2).fit(X, y)
    Z = est.transform(X_test)
    assert Z.shape == before.shape == (len(X_test), 128) and Z.dtype == np.float32
    assert np.abs(Z - before).max() > 1e-2  # the backbone itself was fine-tuned
    assert np.allclose(backbone_features(backbone, X_test), before)  # ... a copy of it
    head = est.model_.head
    expected = Z @ head.weight.detach().numpy().T + head.bias.detach().numpy()
    assert np.allclose(est.decision_function(X_test), expected, atol=1e-4)


def test_bn_momentum_is_set_on_the_fine_tuned_copy_only():
    from nml.estimators.noisy_labels.full import set_bn_momentum

    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4, momentum=0.01), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten())
    set_bn_momentum(backbone, None)
    assert backbone[1].momentum == 0.01
    X = torch.randn(40, 1, 8, 8)
    y = np.arange(40) % 2
    est = FullFineTune(backbone=backbone, epochs=1, batch_size=8, bn_momentum=0.1).fit(X, y)
    assert est.model_.backbone[1].momentum == 0.1 and backbone[1].momentum == 0.01
    # with momentum 0.1 the running mean follows the data; with 0.01 it stays near its start (0)
    shifted = X + 3.0
    fast = FullFineTune(backbone=backbone, epochs=1, batch_size=8, bn_momentum=0.1, augment=False).fit(shifted, y)
    slow = FullFineTune(backbone=backbone, epochs=1, batch_size=8, bn_momentum=None, augment=False).fit(shifted, y)
    assert fast.model_.backbone[1].running_mean.abs().mean() > 3 * slow.model_.backbone[1].running_mean.abs().mean()
    with pytest.raises(ValueError, match="bn_momentum"):
        FullFineTune(backbone=backbone, bn_momentum=1.5).fit(X, y)
    with pytest.raises(ValueError, match="bn_momentum"):
        TURN(backbone=backbone, bn_momentum=-0.1).fit(X, y)


def test_turn_bn_modes():
    from nml.estimators.noisy_labels.full import recalibrate_bn_statistics

    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten())
    X = torch.randn(40, 1, 8, 8) + 3.0  # far from the running statistics (mean 0, var 1)
    y = np.arange(40) % 2
    common = dict(backbone=backbone, epochs_lp=1, epochs_fft=2, batch_size=8, augment=False)
    # frozen: running statistics untouched, affine weights fine-tuned
    frozen = TURN(**common, bn_mode="frozen").fit(X, y)
    bn = frozen.model_.backbone[1]
    assert torch.equal(bn.running_mean, backbone[1].running_mean)
    assert torch.equal(bn.running_var, backbone[1].running_var)
    assert not torch.equal(bn.weight, backbone[1].weight)
    # train: the running statistics follow the fine-tuning batches
    following = TURN(**common, bn_mode="train").fit(X, y)
    assert following.model_.backbone[1].running_mean.abs().mean() > 0.1
    # recalibrate: the statistics are those of X before step 1 (exactly, for a one-pass estimate)
    copy_ = copy.deepcopy(backbone)
    recalibrate_bn_statistics(copy_, X, batch_size=20, device=torch.device("cpu"))  # equal batches: exact mean
    conv_out = backbone[0](X).detach()
    assert torch.allclose(copy_[1].running_mean, conv_out.mean((0, 2, 3)), atol=1e-5)
    assert copy_[1].momentum == backbone[1].momentum  # restored after the cumulative pass
    assert torch.equal(backbone[1].running_mean, torch.zeros(4))  # the caller's backbone is untouched
    recal = TURN(**{**common, "epochs_fft": 1}, bn_mode="recalibrate", lr=1e-12).fit(X, y)  # lr ~0: statistics of X
    assert torch.allclose(recal.model_.backbone[1].running_mean, conv_out.mean((0, 2, 3)), atol=0.1)
    with pytest.raises(ValueError, match="recalibrate.*pass None"):
        TURN(**common, bn_mode="recalibrate").fit(X, y, features=np.zeros((40, 4), np.float32))
    with pytest.raises(ValueError, match="bn_mode"):
        TURN(backbone=backbone, bn_mode="yes").fit(X, y)
