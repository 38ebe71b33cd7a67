"""Chapter 03 on the smoke profile: fits trained as one model give the results of fits trained one by one.

The main grid of notebook 03 (every method on every task of every smoke checkpoint) runs twice on
the same checkpoints and features: with the grid cells' seeds trained as one model (the default),
then with units of one fit (``MAX_HEADS = 1``: every fit alone, as ``tuner.fit`` trains it). The two
differ by float rounding only, so every score agrees within a few test samples.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from nml._infra.paths import features_dir
from nml.chapters import fit_jobs
from nml.chapters.ch01_pretraining import run as pretraining
from nml.chapters.ch02_spectral import run as spectral
from nml.chapters.ch03_nmtune import run as nmtune
from nml.config import load_params

KEYS = ["track", "gamma", "seed", "method", "train_domain", "test_domain"]


@pytest.mark.slow
def test_chapter_03_batched_equals_one_by_one_on_smoke(nml_home_with_assets, monkeypatch):
    params = load_params("smoke")
    data = pretraining.load_pretrain_data(params)
    checkpoints = pretraining.pretrain_all(params, data)
    downstream = spectral.load_downstream_data(params, data.heldout_train_indices, validation=True)
    calls: list[int] = []
    many = fit_jobs.fit_many_and_score

    def spy(jobs):
        calls.append(len(jobs))
        return many(jobs)

    monkeypatch.setattr(fit_jobs, "fit_many_and_score", spy)
    batched = nmtune.tune_checkpoints(checkpoints, downstream, params)
    assert max(calls) > 1  # the grid cells' seeds were trained together
    shutil.rmtree(features_dir() / "tuning")  # fit results only; features and view banks stay
    calls.clear()
    monkeypatch.setattr(fit_jobs, "MAX_HEADS", 1)
    alone = nmtune.tune_checkpoints(checkpoints, downstream, params)
    assert set(calls) == {1}

    both = batched.merge(alone, on=KEYS, suffixes=("_batched", "_alone"))
    assert len(both) == len(batched) == len(alone)
    for score in ("acc", "macro_f1"):
        diff = np.abs(both[f"{score}_batched"] - both[f"{score}_alone"])
        one_sample = 1.0 / both["n_test_alone"]
        assert (diff <= 3 * one_sample + 1e-9).all(), both.loc[diff.idxmax(), KEYS]
        assert diff.mean() <= 0.01
    lp = both[both["method"] == "LP"]
    assert np.allclose(lp["acc_batched"], lp["acc_alone"], atol=1e-9)  # no BatchNorm bias to drift
