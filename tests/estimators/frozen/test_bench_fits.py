"""nml bench fits: the FLOP count, the measured table and its report (tiny shapes; no timing asserted)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from nml.estimators.frozen import LinearProbe, MLPTuner, NMTune, bench


@pytest.mark.parametrize("make", [lambda: LinearProbe(epochs=1, batch_size=20),
                                  lambda: MLPTuner(head="residual", n_views=2, epochs=1, batch_size=20),
                                  lambda: NMTune(preset="official", epochs=1, batch_size=20, svd_top_k=1)])
def test_training_gflop_counts_the_matrix_products_of_a_fit(make):
    # torch's own counter over a whole fit of one epoch (forward + backward of every step)
    rng = np.random.default_rng(0)
    n, d = 40, 8
    x, y = rng.normal(size=(n, d)).astype(np.float32), np.arange(n) % bench.N_CLASSES
    bank = np.repeat(x[:, None], 2, 1)
    tuner = make()
    with FlopCounterMode(display=False) as counter:
        tuner.fit(x, y, views=bank)
    counted = counter.get_total_flops() / 1e9
    expected = bench.training_gflop(tuner, n, d)
    # the counter also sees the SVD-free extras (e.g. a covariance's centring is not a product);
    # matrix products dominate: equal within 2%
    assert counted == pytest.approx(expected, rel=0.02)


def test_bench_table_and_report(monkeypatch):
    monkeypatch.setattr(bench, "SHAPES", {"cpu": bench.FitShape("cpu", 120, 16, 60),
                                          "paper": bench.FitShape("paper", 80, 32, 40)})
    monkeypatch.setattr(bench, "LP_EPOCHS", 2)
    monkeypatch.setattr(bench, "gemm_rate", lambda: 50.0)
    threads = torch.get_num_threads()
    table = bench.bench_fits(heads=3, epochs=1)
    assert torch.get_num_threads() == threads  # restored
    assert set(table["shape"]) == {"cpu", "paper"}
    heads = table[table["method"] != "scikit-learn LogisticRegression"]
    assert len(heads) == 2 * 3 * 2 and set(heads["mode"]) == {"alone", "3 as one"}
    assert (heads["seconds_per_fit"] > 0).all() and heads["test_acc"].between(0, 1).all()
    assert np.allclose(heads["fraction_of_gemm"], heads["gflop_per_fit"] / heads["seconds_per_fit"] / 50.0)
    report = bench.format_fits_report(table)
    assert "GEMM rate on one thread: 50.0" in report
    assert report.count("goal >= 30%") == 2 and report.count("goal >= 10%") == 2  # MLP, NMTune trained as one
    assert "LogisticRegression" in report and "LP (3 as one, per fit) / LogisticRegression time" in report


def test_cli_refuses_bad_counts_before_compute(monkeypatch, capsys):
    from nml import cli

    def boom(*args, **kwargs):
        raise AssertionError("compute started")

    monkeypatch.setattr(bench, "bench_fits", boom)
    assert cli.main(["bench", "fits", "--heads", "0"]) == 2
    assert "--heads" in capsys.readouterr().err
