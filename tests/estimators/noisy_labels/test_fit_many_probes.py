"""The LP baselines trained as one (fit_many_probes): each probe equals the probe trained alone."""

from __future__ import annotations

import numpy as np
import pytest

from nml.estimators.noisy_labels import NoisyLinearProbe, fit_many_probes

N, D, C = 160, 10, 4


def _data(seed: int):
    rng = np.random.default_rng(seed)
    y = np.arange(N) % C
    x = (rng.normal(scale=2.0, size=(C, D))[y] + rng.normal(size=(N, D))).astype(np.float32)
    noisy = np.where(rng.random(N) < 0.3, rng.integers(0, C, N), y)  # 30% of the labels re-drawn
    x_test = (rng.normal(scale=2.0, size=(C, D))[y[:40]] + rng.normal(size=(40, D))).astype(np.float32)
    return x, noisy, (x_test, y[:40]), (x[:30], noisy[:30])


@pytest.mark.parametrize("loss", ["ce", "gce", "elr"])
@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_a_probe_trained_with_others_equals_the_probe_trained_alone(loss, optimizer):
    settings = {"loss": loss, "epochs": 4, "batch_size": 32, "optimizer": optimizer, "lr": 5e-3}
    data = [_data(s) for s in (1, 2, 3)]
    many = fit_many_probes([NoisyLinearProbe(seed=s, **settings) for s in (7, 8, 9)], [d[0] for d in data],
                           [d[1] for d in data], [d[2] for d in data], [d[3] for d in data])
    x, y, test, val = data[1]
    alone = NoisyLinearProbe(seed=8, **settings).fit(x, y, eval_set=test, val_set=val)
    assert np.allclose(many[1].coef_, alone.coef_, atol=1e-5) and np.allclose(many[1].intercept_, alone.intercept_, atol=1e-5)
    assert [h["phase"] for h in many[1].history_] == ["lp"] * 4
    assert np.allclose([h["test_acc"] for h in many[1].history_], [h["test_acc"] for h in alone.history_], atol=1 / 40)
    assert np.allclose([h["val_acc"] for h in many[1].history_], [h["val_acc"] for h in alone.history_], atol=1 / 30)
    assert many[1].fit_seconds_ > 0 and len(many[1].test_predictions_) == 4
    assert not np.allclose(many[0].coef_, many[1].coef_)  # each its own seed and data


def test_probes_of_other_recipes_or_shapes_are_refused():
    x, y, _, _ = _data(0)
    with pytest.raises(ValueError, match="probe 1 .* recipe"):
        fit_many_probes([NoisyLinearProbe(seed=0), NoisyLinearProbe(seed=1, loss="gce")], [x, x], [y, y])
    with pytest.raises(ValueError, match="one shape"):
        fit_many_probes([NoisyLinearProbe(seed=0), NoisyLinearProbe(seed=1)], [x, x[:100]], [y, y[:100]])
    assert fit_many_probes([], [], []) == []
