"""Many heads trained as one (fit_many / StackedHeads): each head equals the same head trained alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nml.estimators.frozen import LinearProbe, MLPTuner, NMTune, fit_many, stack_signature
from nml.estimators.frozen.base import _view_draws
from nml.estimators.frozen.stacked import NotStackable, StackedHeads

N, D, C, V = 150, 12, 3, 4


def _data(seed: int):
    rng = np.random.default_rng(seed)
    y = np.arange(N) % C
    centers = rng.normal(scale=2.0, size=(C, D))
    x = (centers[y] + rng.normal(size=(N, D))).astype(np.float32)
    bank = (x[:, None, :] + 0.3 * rng.normal(size=(N, V, D))).astype(np.float32)
    return x, rng.permutation(y), bank


# (factory, reads a view bank, decision-function tolerance). The official head's first Linear feeds a
# BatchNorm: its bias has a zero gradient in exact arithmetic, and AdamW rescales the rounding noise
# of that gradient to lr-sized steps, so two float orderings drift apart in that bias (and in the
# running mean that follows it) by ~1e-3; everything else agrees to rounding.
RECIPES = {
    "lp": (lambda s: LinearProbe(epochs=3, batch_size=32, seed=s), False, 1e-4),
    "mlp": (lambda s: MLPTuner(epochs=3, batch_size=32, seed=s), False, 1e-4),
    "nmtune-paper": (lambda s: NMTune(preset="paper", epochs=3, batch_size=32, seed=s), False, 1e-4),
    "nmtune-official": (lambda s: NMTune(preset="official", epochs=3, batch_size=32, seed=s), True, 1e-2),
    "mlp-official": (lambda s: MLPTuner(head="residual", n_views=2, epochs=3, batch_size=32, seed=s), True, 1e-2),
}


def _fit_group(name, seeds, data_seeds):
    make, two, _ = RECIPES[name]
    data = [_data(s) for s in data_seeds]
    return fit_many([make(s) for s in seeds], [d[0] for d in data], [d[1] for d in data],
                    [d[2] if two else None for d in data])


def _module_loop(name, seed, x, y, bank):
    """The reference: the plain one-head module loop (what fit_encoder runs), fed the rows or two
    bank views of each batch as the stacked engine draws them."""
    make, two, _ = RECIPES[name]
    tuner = make(seed)
    y_idx = tuner._encode_labels(y)
    xt, bt = torch.from_numpy(x), torch.from_numpy(bank)
    hp = tuner._resolved_hyper_params()

    def source(idx, gen):
        if hp["n_views"] == 1:
            return [xt[idx]]
        first, second = _view_draws(bt.shape[1], len(idx), gen)
        return [bt[idx, first], bt[idx, second]]

    tuner._train(source, y_idx, D, torch.device("cpu"), hp)
    tuner.n_features_in_ = D
    tuner.mean_, tuner.scale_ = np.zeros(D, np.float32), np.ones(D, np.float32)
    return tuner


@pytest.mark.parametrize("name", list(RECIPES))
def test_a_head_trained_in_a_batch_equals_the_head_trained_alone(name):
    make, two, tol = RECIPES[name]
    group = _fit_group(name, seeds=[3, 4, 5], data_seeds=[10, 11, 12])
    x, y, bank = _data(11)
    alone = make(4).fit(x, y, views=bank if two else None)
    reference = _module_loop(name, 4, x, y, bank)
    for other in (alone, reference):
        assert np.allclose(group[1].decision_function(x), other.decision_function(x), atol=tol)
        assert np.allclose(group[1].loss_curve_, other.loss_curve_, atol=1e-5)
        assert np.mean(group[1].predict(x) == other.predict(x)) >= 0.98
        assert np.allclose(group[1].coef_, other.coef_, atol=tol)
    if hasattr(alone, "loss_parts_"):
        for mine, theirs in zip(group[1].loss_parts_, alone.loss_parts_, strict=True):
            assert mine.keys() == theirs.keys() and np.allclose(list(mine.values()), list(theirs.values()), atol=1e-5)
    assert type(group[1].head_) is type(alone.head_)


@pytest.mark.parametrize("name", list(RECIPES))
def test_the_same_heads_trained_together_give_the_same_numbers(name):
    a = _fit_group(name, seeds=[0, 1, 2], data_seeds=[20, 21, 22])
    b = _fit_group(name, seeds=[0, 1, 2], data_seeds=[20, 21, 22])
    x = _data(21)[0]
    for mine, again in zip(a, b, strict=True):
        assert np.array_equal(mine.decision_function(x), again.decision_function(x))
        assert mine.loss_curve_ == again.loss_curve_


@pytest.mark.parametrize("name", list(RECIPES))
def test_other_companions_change_a_head_by_rounding_only(name):
    _, _, tol = RECIPES[name]
    a = _fit_group(name, seeds=[0, 1], data_seeds=[20, 21])[1]
    b = _fit_group(name, seeds=[7, 1, 9, 3, 4], data_seeds=[30, 21, 31, 32, 33])[1]
    x = _data(21)[0]
    assert np.allclose(a.decision_function(x), b.decision_function(x), atol=tol)
    assert np.allclose(a.loss_curve_, b.loss_curve_, atol=1e-5)


def test_each_head_keeps_its_own_seed():
    same_data = _fit_group("mlp", seeds=[0, 1], data_seeds=[5, 5])
    x = _data(5)[0]
    assert not np.allclose(same_data[0].decision_function(x), same_data[1].decision_function(x))
    twin = _fit_group("mlp", seeds=[1, 1], data_seeds=[5, 5])
    assert np.array_equal(twin[0].decision_function(x), twin[1].decision_function(x))


def test_fitted_heads_are_plain_modules_that_pickle():
    import pickle

    tuner = _fit_group("nmtune-official", seeds=[0, 1], data_seeds=[0, 1])[0]
    again = pickle.loads(pickle.dumps(tuner))
    x = _data(0)[0]
    assert np.array_equal(again.predict_proba(x), tuner.predict_proba(x))
    assert not tuner.head_.training and tuner.head_.mlp[1].num_batches_tracked.item() == 3 * 5


def test_recipes_that_differ_are_refused_by_position():
    x, y, _ = _data(0)
    with pytest.raises(ValueError, match="tuner 1 .* recipe"):
        fit_many([MLPTuner(seed=0), MLPTuner(seed=1, lr=0.1)], [x, x], [y, y])
    with pytest.raises(ValueError, match="fit 1 has"):
        fit_many([LinearProbe(seed=0), LinearProbe(seed=1)], [x, x[:100]], [y, y[:100]])
    with pytest.raises(ValueError, match="one X, y and views per tuner"):
        fit_many([LinearProbe()], [x, x], [y, y])
    assert stack_signature(MLPTuner(seed=0)) == stack_signature(MLPTuner(seed=5))
    assert stack_signature(MLPTuner()) != stack_signature(NMTune(preset="paper", w_consistency=0, w_covariance=0,
                                                                     w_dominant_sv=0))


def test_invalid_hyper_parameters_are_named_before_training():
    from sklearn.utils._param_validation import InvalidParameterError

    x, y, _ = _data(0)
    with pytest.raises(InvalidParameterError, match="epochs"):
        fit_many([LinearProbe(epochs=0)], [x], [y])


def test_heads_of_other_layers_are_not_stackable():
    head = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.1))
    with pytest.raises(NotStackable, match="Dropout"):
        StackedHeads([head], [torch.nn.Linear(4, 2)])
