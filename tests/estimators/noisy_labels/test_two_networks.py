"""DivideMix-LP and UNICON-LP: API, determinism, inputs, and the mechanisms each method relies on."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import make_blobs
from torch import nn

import nml.estimators.noisy_labels.dividemix as dividemix_module
import nml.estimators.noisy_labels.two_networks as tn
from nml.estimators.noisy_labels import EncoderViews, NoisyLinearProbe, create_method, method_input
from nml.estimators.noisy_labels.dividemix import DivideMixLP
from nml.estimators.noisy_labels.two_networks import (
    TwoNetworkLP,
    co_guess,
    linear_rampup,
    mixup,
    refine_labels,
    sharpen,
    uniform_prior_penalty,
)
from nml.estimators.noisy_labels.unicon import (
    UniconLP,
    jensen_shannon,
    nt_xent,
    selection_cutoff,
    uniform_selection,
)
from nml.noise import symmetric_noise

CLASSES = [DivideMixLP, UniconLP]
FAST = {"epochs": 3, "warmup_epochs": 1, "batch_size": 32, "lr": 5e-2}


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models: one intra-op thread is fastest and avoids contention with other processes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=150, centers=3, n_features=6, random_state=0, cluster_std=1.5)
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def noisy_blobs():
    """4 Gaussian blobs in 64-D, 400 training samples with 40% symmetric noise, a 3-view bank.

    Few samples in many dimensions: a plain CE probe trained long enough memorises the wrong
    labels (its last test accuracy drops to ~0.75), which is the failure these methods address.
    """
    X, y = make_blobs(n_samples=1400, centers=4, n_features=64, random_state=0, cluster_std=4.0)
    X = X.astype(np.float32)
    X_train, y_train, X_test, y_test = X[:400], y[:400], X[400:], y[400:]
    noisy = symmetric_noise(y_train, 0.4, seed=0)
    rng = np.random.default_rng(0)
    views = [X_train + 1.2 * rng.standard_normal(X_train.shape).astype(np.float32) for _ in range(3)]
    bank = np.stack([X_train, *views], 1)
    return {"bank": bank, "X": X_train, "y": noisy.labels, "is_noisy": noisy.is_noisy,
            "test": (X_test, y_test)}


NOISY_SETTING = {"epochs": 16, "warmup_epochs": 4, "batch_size": 32, "lr": 2e-2}


@pytest.fixture(scope="module")
def dividemix_fit(noisy_blobs):
    d = noisy_blobs
    return DivideMixLP(**NOISY_SETTING).fit(d["bank"], d["y"], eval_set=d["test"])


@pytest.fixture(scope="module")
def unicon_fit(noisy_blobs):
    d = noisy_blobs
    return UniconLP(**NOISY_SETTING).fit(d["bank"], d["y"], eval_set=d["test"])


# ------------------------------------------------------------------------------------- API
def test_registered_by_name():
    assert type(create_method("dividemix-lp")) is DivideMixLP and type(create_method("unicon-lp")) is UniconLP
    assert method_input("dividemix-lp") == method_input("unicon-lp") == "views"
    assert isinstance(create_method("unicon-lp", epochs=4), UniconLP)


@pytest.mark.parametrize("cls", CLASSES)
def test_fit_predict_shapes(cls, blobs):
    X, y = blobs
    est = cls(**FAST).fit(X, y, eval_set=(X, y))
    assert est.predict(X).shape == (150,)
    assert set(est.predict(X)) <= {0, 1, 2}
    proba = est.predict_proba(X)
    assert proba.shape == (150, 3) and np.allclose(proba.sum(1), 1.0)
    assert est.decision_function(X).shape == (150, 3)
    assert est.coef_.shape == (2, 3, 6) and est.intercept_.shape == (2, 3)
    assert est.n_features_in_ == 6 and est.fit_seconds_ > 0
    assert [h["phase"] for h in est.history_] == ["warmup", "train", "train"]
    assert [h["epoch"] for h in est.history_] == [0, 1, 2]
    assert len(est.division_) == 2 and [d["epoch"] for d in est.division_] == [1, 2]
    assert est.score(X, y) > 0.9
    # transform: the raw features by default (as every linear probe here), standardised on request
    z = est.transform(X)
    assert est.standardize is False and np.allclose(z, X)
    std = cls(**FAST, standardize=True).fit(X, y)
    zs = std.transform(X)
    assert np.allclose(zs.mean(0), 0, atol=1e-4) and np.allclose(zs.std(0), 1, atol=1e-3)
    # predict_proba is the average of the two heads' softmaxes (DivideMix's test-time rule)
    heads = [_softmax(z @ est.coef_[k].T + est.intercept_[k]) for k in range(2)]
    assert np.allclose(proba, (heads[0] + heads[1]) / 2, atol=1e-5)
    assert not np.allclose(est.coef_[0], est.coef_[1])  # two differently initialised heads
    with pytest.raises(ValueError, match=f"X has 4 features, but {cls.__name__} is expecting 6 features as input"):
        est.predict(X[:, :4])


@pytest.mark.parametrize("cls", CLASSES)
def test_validation_history_covers_the_whole_training(cls, blobs):
    """An LP baseline's whole training is its tuning phase: warm-up epochs count for best and last."""
    X, y = blobs
    est = cls(**FAST).fit(X[:120], y[:120], eval_set=(X[120:], y[120:]), val_set=(X[:30], y[:30]))
    assert est.TUNING_PHASES == ("warmup", "train")
    assert all("val_acc" in h and "test_acc" in h for h in est.history_)
    assert len(est.test_predictions_) == len(est.history_) == FAST["epochs"]
    vals = [h["val_acc"] for h in est.history_]
    assert est.best_test_acc_ == est.history_[vals.index(max(vals))]["test_acc"]
    assert est.last_test_acc_ == est.history_[-1]["test_acc"] <= est.oracle_test_acc_


@pytest.mark.parametrize("cls", CLASSES)
def test_clone_get_params_and_pickle(cls, blobs):
    X, y = blobs
    est = cls(**FAST, seed=3, alpha=2.0)
    params = est.get_params()
    assert params["seed"] == 3 and params["alpha"] == 2.0 and params["epochs"] == 3
    twin = clone(est)
    assert twin.get_params() == params and twin is not est
    assert clone(est.set_params(lambda_u=5.0)).get_params()["lambda_u"] == 5.0
    est.fit(X, y)
    restored = pickle.loads(pickle.dumps(est))
    assert np.array_equal(restored.predict_proba(X), est.predict_proba(X))
    assert restored.division_[0]["epoch"] == est.division_[0]["epoch"]


@pytest.mark.parametrize("cls", CLASSES)
def test_seeded(cls, blobs):
    X, y = blobs
    rng = np.random.default_rng(1)
    y = np.where(rng.random(len(y)) < 0.3, rng.integers(0, 3, len(y)), y)  # some noise
    a = cls(**FAST, seed=1).fit(X, y, eval_set=(X, y))
    b = cls(**FAST, seed=1).fit(X, y, eval_set=(X, y))
    assert np.array_equal(a.coef_, b.coef_) and np.array_equal(a.intercept_, b.intercept_)
    assert a.history_ == b.history_
    c = cls(**FAST, seed=2).fit(X, y)
    assert not np.allclose(a.coef_, c.coef_)


@pytest.mark.parametrize("cls", CLASSES)
def test_string_labels(cls, blobs):
    X, y = blobs
    labels = np.array(["zebra", "ant", "moth"])[y]
    est = cls(**FAST).fit(X, labels)
    assert list(est.classes_) == ["ant", "moth", "zebra"]
    assert set(est.predict(X)) <= {"ant", "moth", "zebra"}
    assert np.mean(est.predict(X) == labels) > 0.9
    # logits columns follow classes_: the column of "ant" is highest on the samples labelled "ant"
    assert est.predict_proba(X)[labels == "ant"].argmax(1).tolist().count(0) > 0.9 * np.sum(labels == "ant")


@pytest.mark.parametrize("cls", CLASSES)
def test_accepts_matrix_bank_and_encoder_views(cls, blobs):
    X, y = blobs
    FAST_STD = {**FAST, "standardize": True}  # so that the standardisation statistics are compared too
    rng = np.random.default_rng(0)
    bank = np.stack([X, X + 0.1 * rng.standard_normal(X.shape), X + 0.1 * rng.standard_normal(X.shape)], 1)
    from_bank = cls(**FAST_STD).fit(bank, y)
    assert from_bank.n_features_in_ == 6 and from_bank.score(X, y) > 0.9
    # view 0 of the bank is the un-augmented feature: same standardisation as the matrix
    from_matrix = cls(**FAST_STD).fit(X, y)
    assert np.allclose(from_bank.mean_, from_matrix.mean_) and np.allclose(from_bank.scale_, from_matrix.scale_)
    # a single-view bank (N, 1, D) behaves as the matrix (N, D)
    single = cls(**FAST_STD).fit(X[:, None, :], y)
    assert np.array_equal(single.coef_, from_matrix.coef_)
    # the paper's costly way: a frozen encoder re-run on freshly augmented images
    torch.manual_seed(0)
    images = torch.randn(60, 1, 4, 4)
    labels = (images.mean((1, 2, 3)) > 0).long().numpy()
    images[labels == 1] += 0.8
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(16, 8))
    augmented = []

    def augment(batch: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        augmented.append(len(batch))
        return batch + 0.05 * torch.randn(batch.shape, generator=gen)

    views = EncoderViews(encoder, images, augment)
    est = cls(**FAST_STD).fit(views, labels)
    assert est.n_features_in_ == 8 and est.coef_.shape == (2, 2, 8)
    assert sum(augmented) >= 2 * 60  # warm-up alone reads one augmented view per sample and head
    with torch.no_grad():
        feats = encoder(images).numpy()
    assert est.score(feats, labels) > 0.8
    again = cls(**FAST_STD).fit(EncoderViews(encoder, images, augment), labels)
    assert np.array_equal(again.coef_, est.coef_)  # augmentations are seeded by the fit


# ------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize("cls", CLASSES)
def test_bad_inputs(cls, blobs):
    X, y = blobs
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        cls(**FAST).fit(bad, y)
    with pytest.raises(ValueError, match="at least 2 classes"):
        cls(**FAST).fit(X, np.zeros(len(X), int))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        cls(**FAST).fit(X, y[:-1])
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        cls(**FAST).fit(np.stack([X, X], 1), y[:-1])  # a view bank
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array"):
        cls(**FAST).fit(X[0], y[:1])
    with pytest.raises(TypeError, match="float\\(\\) argument must be"):  # scikit-learn's error for non-numbers
        cls(**FAST).fit(object(), y)


COMMON_BAD = [
    ({"epochs": 0}, "epochs"),
    ({"epochs": 1, "warmup_epochs": 1}, r"'epochs' parameter of \w+ must be an int in the range \[2, inf\)"),
    ({"epochs": 3, "warmup_epochs": 3}, "warmup_epochs"),
    ({"epochs": 3, "warmup_epochs": 5}, "warmup_epochs"),
    ({"warmup_epochs": 0}, "warmup_epochs"),
    ({"alpha": 0.0}, "alpha"),
    ({"alpha": -1.0}, "alpha"),
    ({"temperature": 0.0}, "temperature"),
    ({"lambda_u": -1.0}, "lambda_u"),
    ({"batch_size": 0}, "batch_size"),
    ({"lr": 0.0}, "lr"),
    ({"optimizer": "adam"}, "optimizer"),
    ({"momentum": 1.0}, "momentum"),
    ({"device": "tpu"}, "device"),
    ({"seed": 1.5}, "seed"),
    ({"standardize": "yes"}, "standardize"),
]


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("kwargs, match", COMMON_BAD)
def test_bad_common_hyper_parameters(cls, blobs, kwargs, match):
    params = {**FAST, **kwargs}
    est = cls(**params)  # stored verbatim, validated at fit
    assert est.get_params()[next(iter(kwargs))] == kwargs[next(iter(kwargs))]
    with pytest.raises(ValueError, match=match):
        est.fit(*blobs)


@pytest.mark.parametrize("cls, kwargs, match", [
    (DivideMixLP, {"p_threshold": 1.5}, "p_threshold"),
    (DivideMixLP, {"p_threshold": 1.0}, "p_threshold"),
    (UniconLP, {"d_mu": 1.5}, "d_mu"),
    (UniconLP, {"tau": 0.5}, "tau"),
    (UniconLP, {"lambda_c": -0.1}, "lambda_c"),
    (UniconLP, {"proj_dim": 0}, "proj_dim"),
    (UniconLP, {"contrastive_temperature": 0.0}, "contrastive_temperature"),
])
def test_bad_method_hyper_parameters(blobs, cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**FAST, **kwargs).fit(*blobs)


# ------------------------------------------------------------------------------------- MixMatch pieces
def test_mixup_makes_convex_combinations():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(10, 5, generator=gen)
    t = torch.softmax(torch.randn(10, 3, generator=gen), 1)
    perm = torch.randperm(10, generator=gen)
    for lam in (0.3, 0.7):  # λ' = max(λ, 1 − λ) = 0.7 both times
        mx, mt = mixup(x, t, lam, perm)
        assert torch.allclose(mx, 0.7 * x + 0.3 * x[perm])
        assert torch.allclose(mt, 0.7 * t + 0.3 * t[perm])
        assert torch.allclose(mt.sum(1), torch.ones(10))
        lo, hi = torch.minimum(x, x[perm]), torch.maximum(x, x[perm])
        assert bool(((mx >= lo - 1e-6) & (mx <= hi + 1e-6)).all())  # between its two sources
    mx, mt = mixup(x, t, 1.0, perm)
    assert torch.equal(mx, x) and torch.equal(mt, t)
    with pytest.raises(ValueError, match="lam"):
        mixup(x, t, 1.5, perm)


def test_sharpen_refine_and_co_guess():
    p = torch.tensor([[0.6, 0.3, 0.1]])
    sharp = sharpen(p, 0.5)
    assert torch.allclose(sharp, p**2 / (p**2).sum()) and sharp[0, 0] > p[0, 0]
    assert torch.allclose(sharpen(p, 1.0), p)
    torch.manual_seed(0)
    head, other = nn.Linear(4, 3), nn.Linear(4, 3)
    views = [torch.randn(5, 4), torch.randn(5, 4)]
    onehot = torch.eye(3)[torch.tensor([0, 1, 2, 0, 1])]
    # w = 1: the given label, unchanged by sharpening; w = 0: the head's own sharpened guess
    assert torch.allclose(refine_labels(head, views, onehot, torch.ones(5), 0.5), onehot)
    mean_p = torch.stack([torch.softmax(head(v), 1) for v in views]).mean(0)
    assert torch.allclose(refine_labels(head, views, onehot, torch.zeros(5), 0.5), sharpen(mean_p, 0.5))
    guess = co_guess([head, other], views, 0.5)
    mean_both = torch.stack([torch.softmax(h(v), 1) for h in (head, other) for v in views]).mean(0)
    assert torch.allclose(guess, sharpen(mean_both, 0.5)) and not guess.requires_grad
    assert float(uniform_prior_penalty(torch.zeros(4, 3))) == pytest.approx(0.0, abs=1e-7)
    assert float(uniform_prior_penalty(torch.tensor([[9.0, 0.0, 0.0]] * 4))) > 0.5


def test_lambda_u_ramp_starts_at_zero(blobs, monkeypatch):
    assert linear_rampup(5.0, 5, 10) == 0.0
    assert linear_rampup(10.0, 5, 10) == pytest.approx(0.5)
    assert linear_rampup(15.0, 5, 10) == 1.0 and linear_rampup(3.0, 5, 10) == 0.0
    seen: dict[int, list[float]] = {}
    real = tn.mixmatch_loss

    def spy(head, *args, **kwargs):
        seen.setdefault(id(head), []).append(kwargs["lambda_u"])
        return real(head, *args, **kwargs)

    monkeypatch.setattr(tn, "mixmatch_loss", spy)
    X, y = blobs
    DivideMixLP(**FAST, lambda_u=25.0).fit(X, y)
    assert len(seen) == 2
    for values in seen.values():
        assert values[0] == 0.0  # the first semi-supervised step of each head
        assert values[1] > 0.0 and 12.5 < values[-1] < 25.0  # ramps up over epochs 1..2
        assert values == sorted(values)


# ------------------------------------------------------------------------------------- DivideMix
def test_dividemix_division_is_pure_and_beats_ce(noisy_blobs, dividemix_fit):
    d, est = noisy_blobs, dividemix_fit
    clean = ~d["is_noisy"]
    assert len(est.division_) == NOISY_SETTING["epochs"] - NOISY_SETTING["warmup_epochs"]
    last = est.division_[-1]
    for k in range(2):
        labeled = last["labeled_mask"][k]
        assert last["clean_probability"][k].shape == labeled.shape == (400,)
        precision = (labeled & clean).sum() / labeled.sum()
        recall = (labeled & clean).sum() / clean.sum()
        assert precision > 0.9 and recall > 0.7, (k, precision, recall)
    # chance precision is the clean fraction, 0.6
    assert clean.mean() == pytest.approx(0.6)
    ce = NoisyLinearProbe(loss="ce", epochs=NOISY_SETTING["epochs"], batch_size=NOISY_SETTING["batch_size"],
                          lr=NOISY_SETTING["lr"]).fit(d["X"], d["y"], eval_set=d["test"])
    assert ce.last_test_acc_ < 0.85  # CE memorises the noisy labels...
    assert est.last_test_acc_ > 0.95  # ... DivideMix does not
    assert est.last_test_acc_ > ce.last_test_acc_ + 0.1


def test_dividemix_heads_train_on_each_others_division(blobs, monkeypatch):
    X, y = blobs
    rng = np.random.default_rng(0)
    y = np.where(rng.random(len(y)) < 0.3, (y + 1) % 3, y)
    calls = []
    real = TwoNetworkLP._train_head

    def spy(self, k, heads, extras, opt, source, yt, division, epoch, device):
        calls.append((k, epoch, division.labeled.copy(), division.weights.copy(), division.unlabeled.copy()))
        return real(self, k, heads, extras, opt, source, yt, division, epoch, device)

    monkeypatch.setattr(TwoNetworkLP, "_train_head", spy)
    est = DivideMixLP(**FAST).fit(X, y)
    assert len(calls) == 2 * len(est.division_)
    for k, epoch, labeled, weights, unlabeled in calls:
        division = next(d for d in est.division_ if d["epoch"] == epoch)
        other = 1 - k
        assert np.array_equal(labeled, np.flatnonzero(division["labeled_mask"][other]))
        assert np.array_equal(unlabeled, np.flatnonzero(~division["labeled_mask"][other]))
        assert np.allclose(weights, division["clean_probability"][other][labeled])
        # ... not on its own: the two heads' GMM posteriors differ
        assert not np.allclose(weights, division["clean_probability"][k][labeled])


def test_dividemix_degenerate_divisions(blobs, monkeypatch):
    X, y = blobs
    snapshots = []
    real_store = TwoNetworkLP._store_heads

    def store(self, heads):
        real_store(self, heads)
        snapshots.append(self.coef_.copy())

    monkeypatch.setattr(TwoNetworkLP, "_store_heads", store)
    two = {**FAST, "epochs": 2}
    DivideMixLP(**two).fit(X, y)
    assert not np.array_equal(snapshots[0], snapshots[1])  # normally the post-warm-up epoch trains
    # nobody clean: both heads skip their semi-supervised epoch, the weights stay where warm-up left them
    snapshots.clear()
    monkeypatch.setattr(dividemix_module, "gmm_clean_probability", lambda losses, labels, seed: np.zeros(len(losses)))
    none = DivideMixLP(**two).fit(X, y, eval_set=(X, y))
    assert not none.division_[0]["labeled_mask"][0].any() and not none.division_[0]["labeled_mask"][1].any()
    assert np.array_equal(snapshots[0], snapshots[1]) and len(none.history_) == 2
    # everybody clean: no unlabeled set, the heads train on labeled samples only
    monkeypatch.setattr(dividemix_module, "gmm_clean_probability", lambda losses, labels, seed: np.ones(len(losses)))
    everybody = DivideMixLP(**FAST).fit(X, y)
    assert everybody.division_[-1]["labeled_mask"][1].all()
    assert np.all(np.isfinite(everybody.coef_)) and everybody.score(X, y) > 0.9


# ------------------------------------------------------------------------------------- UNICON
def test_jensen_shannon_in_bits():
    onehot = np.eye(3)[[0, 1]]
    confident_right = np.eye(3)[[0, 1]]
    confident_wrong = np.eye(3)[[2, 0]]
    assert np.allclose(jensen_shannon(confident_right, onehot), 0.0)
    assert np.allclose(jensen_shannon(confident_wrong, onehot), 1.0)
    unsure = np.full((2, 3), 1 / 3)
    d = jensen_shannon(unsure, onehot)
    assert np.all((d > 0) & (d < 1)) and np.allclose(d, jensen_shannon(onehot, unsure))
    with pytest.raises(ValueError, match="same shape"):
        jensen_shannon(unsure, np.eye(2))


def test_uniform_selection_rule():
    # d_avg <= d_mu: the cut-off is the average; above d_mu it moves 1/tau of the way to d_min
    assert selection_cutoff(np.array([0.1, 0.2, 0.6]), d_mu=0.7, tau=5.0) == pytest.approx(0.3)
    assert selection_cutoff(np.array([0.5, 0.8, 0.9]), d_mu=0.7, tau=5.0) == pytest.approx(
        0.7333333 - (0.7333333 - 0.5) / 5, abs=1e-6)
    labels = np.array([0] * 6 + [1] * 6 + [2] * 2)
    d = np.array([0.1, 0.9, 0.2, 0.8, 0.05, 0.3, 0.3, 0.1, 0.9, 0.95, 0.2, 0.25, 0.5, 0.4])
    selected, ratio, cutoff = uniform_selection(d, labels, 3, d_mu=0.7, tau=5.0)
    assert cutoff == pytest.approx(d.mean()) and ratio == pytest.approx(np.mean(d <= d.mean()))
    quota = round(ratio * 14 / 3)
    assert quota == 3
    assert sorted(np.flatnonzero(selected[:6])) == [0, 2, 4]  # the 3 smallest d of class 0
    assert sorted(np.flatnonzero(selected[6:12]) + 6) == [7, 10, 11]
    assert selected[12:].all()  # class 2 has fewer than the quota: all of it


def test_unicon_selection_is_balanced_and_pure(noisy_blobs, unicon_fit):
    d, est = noisy_blobs, unicon_fit
    clean = ~d["is_noisy"]
    assert len(est.division_) == NOISY_SETTING["epochs"] - NOISY_SETTING["warmup_epochs"]
    for division in est.division_:
        selected = division["selected"]
        counts = np.bincount(d["y"][selected], minlength=4)
        available = np.bincount(d["y"], minlength=4)
        quota = round(division["ratio"] * 400 / 4)
        assert np.array_equal(counts, np.minimum(quota, available))
        assert division["jsd"].shape == (400,) and np.all((division["jsd"] >= 0) & (division["jsd"] <= 1))
    last = est.division_[-1]["selected"]
    assert (last & clean).sum() / last.sum() > 0.9  # chance: 0.6
    assert (last & clean).sum() / clean.sum() > 0.7
    assert est.last_test_acc_ > 0.95


def test_unicon_contrastive_loss_decreases(unicon_fit):
    curve = np.asarray(unicon_fit.contrastive_curve_)
    assert len(curve) == NOISY_SETTING["epochs"] - NOISY_SETTING["warmup_epochs"]
    assert np.all(np.isfinite(curve)) and curve[-1] < curve[0] - 0.1


def test_nt_xent():
    z = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    other = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
    # identical views are easier to match than unrelated ones
    assert float(nt_xent(z, z, 0.5)) < float(nt_xent(z, other, 0.5))
    assert float(nt_xent(z, z, 0.05)) < 0.05


def test_unicon_contrastive_term_leaves_the_classifier_unchanged(noisy_blobs):
    d = noisy_blobs
    setting = {**NOISY_SETTING, "epochs": 6, "warmup_epochs": 2}
    with_c = UniconLP(**setting, lambda_c=0.025).fit(d["bank"], d["y"], eval_set=d["test"])
    without_c = UniconLP(**setting, lambda_c=0.0).fit(d["bank"], d["y"], eval_set=d["test"])
    assert np.array_equal(with_c.coef_, without_c.coef_)
    assert np.array_equal(with_c.intercept_, without_c.intercept_)
    assert with_c.history_ == without_c.history_
    # the projection heads did train differently (the term is not a no-op for them) ...
    assert with_c.contrastive_curve_ != without_c.contrastive_curve_
    # ... and the comparison is sensitive: a change that reaches the classifier shows up
    other = UniconLP(**setting, lambda_u=5.0).fit(d["bank"], d["y"])
    assert not np.array_equal(other.coef_, with_c.coef_)
