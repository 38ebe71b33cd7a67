"""Validation splits and the selection rule: choices are made on held-out training data."""

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nml.chapters.ch02_spectral.run import Split, carve_validation
from nml.data.validation import validation_split
from nml.selection import SWEEPS, choose


@settings(max_examples=40, deadline=None)
@given(n_classes=st.integers(2, 6), per_class=st.integers(3, 40), fraction=st.floats(0.1, 0.5), seed=st.integers(0, 10**6))
def test_validation_split_is_a_stratified_partition(n_classes, per_class, fraction, seed):
    labels = np.repeat(np.arange(n_classes), per_class)
    fit, val = validation_split(labels, fraction, seed)
    assert np.array_equal(np.sort(np.concatenate([fit, val])), np.arange(len(labels)))
    assert set(np.unique(labels[val])) == set(range(n_classes))  # every class on both sides
    assert set(np.unique(labels[fit])) == set(range(n_classes))
    assert abs(len(val) - fraction * len(labels)) <= n_classes
    again = validation_split(labels, fraction, seed)
    assert np.array_equal(again[1], val)


def test_validation_split_keeps_groups_on_one_side():
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 20, 400)
    labels = rng.integers(0, 2, 400)
    fit, val = validation_split(labels, 0.25, 0, groups=groups)
    assert not set(groups[fit]) & set(groups[val])
    assert len(val) > 0 and len(fit) > 0


def test_validation_split_errors():
    with pytest.raises(ValueError, match="fraction must be in"):
        validation_split(np.zeros(10), 1.0, 0)
    with pytest.raises(ValueError, match="at least 2 samples per class"):
        validation_split(np.array([0, 0, 0, 1]), 0.5, 0)
    with pytest.raises(ValueError, match="at least 2 groups"):
        validation_split(np.array([0, 1, 0, 1]), 0.5, 0, groups=np.zeros(4))


def test_carve_validation_replaces_train_and_adds_val():
    x = torch.arange(40, dtype=torch.float32).reshape(40, 1, 1, 1)
    y = np.repeat(np.arange(4), 10)
    splits = {("d", "train"): Split("d", "train", x, y, "d-train"), ("d", "test"): Split("d", "test", x[:8], y[:8], "d-test")}
    out = carve_validation(splits, 0.2, seed=0)
    fit, val = out[("d", "train")], out[("d", "val")]
    assert len(fit.y) + len(val.y) == 40 and len(val.y) == 8
    assert not set(fit.x.flatten().tolist()) & set(val.x.flatten().tolist())  # disjoint samples
    assert out[("d", "test")] is splits[("d", "test")]  # the test split is untouched
    assert fit.data_id != "d-train" and val.data_id != fit.data_id  # new content, new cache keys


def test_choose_takes_the_cheapest_within_tolerance():
    table = pd.DataFrame({"candidate": ["a", "b", "c"], "val_score": [0.80, 0.797, 0.70], "seconds": [10.0, 2.0, 1.0]})
    chosen = choose(table, tolerance=0.005)
    assert chosen.loc[chosen["chosen"], "candidate"].tolist() == ["b"]
    strict = choose(table, tolerance=0.0)
    assert strict.loc[strict["chosen"], "candidate"].tolist() == ["a"]
    assert "within 0.005" in chosen["rule"].iloc[0]


def test_every_registered_sweep_resolves():
    from nml.selection import sweep_function

    for name in SWEEPS:
        assert callable(sweep_function(name))
    with pytest.raises(KeyError, match="unknown sweep"):
        sweep_function("nope")
