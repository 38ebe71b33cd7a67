"""``nml bench nmtune --shape paper``: ResNet-50 + the official head, cached path vs the authors' loop."""

from __future__ import annotations

import pytest
import torch

from nml.chapters.ch03_nmtune.bench import (
    GOAL_PAPER_SPEEDUP,
    bench_nmtune_paper_shape,
    format_paper_shape_report,
    forward_gflop,
    paper_shape_encoder,
)
from nml.cli import main

COLUMNS = {"encoder", "n", "image_size", "feature_dim", "hidden", "epochs", "extract_s", "tune_cached_s",
           "cached_total_s", "authors_epoch_s", "authors_total_s", "measured_epochs", "speedup_cached",
           "encoder_gflop", "head_train_gflop", "arithmetic_limit", "authors_projected"}


@pytest.fixture(scope="module")
def tiny():
    threads = torch.get_num_threads()
    table = bench_nmtune_paper_shape(n=16, epochs=3, measured_epochs=1, image_size=32, batch_size=8)
    assert torch.get_num_threads() == threads  # restored after the run
    return table


def test_paper_shape_columns_and_projection(tiny):
    assert len(tiny) == 1 and COLUMNS <= set(tiny.columns)
    r = tiny.iloc[0]
    assert (r["encoder"], r["n"], r["image_size"], r["feature_dim"], r["hidden"]) == ("resnet50", 16, 32, 2048, 8192)
    assert (r["epochs"], r["measured_epochs"]) == (3, 1) and bool(r["authors_projected"])
    for col in ("extract_s", "tune_cached_s", "cached_total_s", "authors_epoch_s", "authors_total_s",
                "speedup_cached", "encoder_gflop", "head_train_gflop", "arithmetic_limit"):
        assert r[col] > 0, col
    assert r["cached_total_s"] == r["extract_s"] + r["tune_cached_s"]
    assert r["authors_total_s"] == r["authors_epoch_s"] * r["epochs"]
    assert r["speedup_cached"] == r["authors_total_s"] / r["cached_total_s"]
    enc, head = r["encoder_gflop"], r["head_train_gflop"]
    assert r["arithmetic_limit"] == pytest.approx((r["epochs"] * enc + head) / (enc + head), rel=1e-12)
    # the official residual head at D=2048: 2 * (2048*8192 + 8192*2048) FLOPs + the C-way classifier
    assert r["head_fwd_gflop"] == pytest.approx((4 * 2048 * 8192 + 2 * 2048 * r["n_classes"]) / 1e9, rel=1e-9)
    assert head == pytest.approx(3 * r["head_fwd_gflop"] * r["epochs"], rel=1e-12)


def test_paper_shape_report_reads_the_table(tiny):
    r = tiny.iloc[0]
    text = format_paper_shape_report(tiny)
    assert "projected from 1 measured epoch" in text
    assert ("meets" if r["speedup_cached"] >= GOAL_PAPER_SPEEDUP else "MISSES") in text
    assert (f"arithmetic limit: (3 x {r['encoder_gflop']:.1f} + {r['head_train_gflop']:.1f}) GFLOP / "
            f"({r['encoder_gflop']:.1f} + {r['head_train_gflop']:.1f}) GFLOP = {r['arithmetic_limit']:.1f}x") in text
    full = tiny.assign(measured_epochs=3, authors_projected=False)
    assert "full measurement of 3 epochs" in format_paper_shape_report(full)


def test_resnet50_at_224_is_about_8_gflop():
    gflop = forward_gflop(paper_shape_encoder(), torch.zeros(1, 3, 224, 224))
    assert 7.5 < gflop < 9.0  # 4.1 GMACs


def test_paper_shape_rejects_bad_arguments():
    with pytest.raises(ValueError, match="measured_epochs"):
        bench_nmtune_paper_shape(epochs=2, measured_epochs=3)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        bench_nmtune_paper_shape(n=0)


def test_cli_paper_shape_validates_before_compute(capsys, monkeypatch):
    import nml.chapters.ch03_nmtune.bench as bench

    def no_compute(**kwargs):
        raise AssertionError("computed despite invalid arguments")

    monkeypatch.setattr(bench, "bench_nmtune_paper_shape", no_compute)
    assert main(["bench", "nmtune", "--shape", "paper", "--n", "0"]) == 2
    assert "--n must be a positive integer, got 0" in capsys.readouterr().err
    assert main(["bench", "nmtune", "--shape", "paper", "--measured-epochs", "0"]) == 2
    assert "--measured-epochs must be a positive integer" in capsys.readouterr().err
    assert main(["bench", "nmtune", "--shape", "paper", "--measured-epochs", "31"]) == 2
    assert "--measured-epochs must be at most 30" in capsys.readouterr().err
    assert main(["bench", "nmtune", "--shape", "paper", "--encoder", "opennsfw"]) == 2
    assert "--encoder applies to --shape cpu only" in capsys.readouterr().err
    assert main(["bench", "nmtune", "--measured-epochs", "2"]) == 2
    assert "--measured-epochs applies to --shape paper only" in capsys.readouterr().err


def test_cli_paper_shape_defaults(capsys, monkeypatch, tmp_path):
    import nml.chapters.ch03_nmtune.bench as bench

    seen = {}

    def fake(**kwargs):
        seen.update(kwargs)
        return bench_nmtune_paper_shape(n=16, epochs=2, measured_epochs=2, image_size=32, batch_size=8)

    monkeypatch.setattr(bench, "bench_nmtune_paper_shape", fake)
    csv = tmp_path / "paper.csv"
    assert main(["bench", "nmtune", "--shape", "paper", "--csv", str(csv)]) == 0
    assert seen == {"n": 256, "epochs": 30, "measured_epochs": 2, "image_size": 224}
    out = capsys.readouterr().out
    assert "full measurement of 2 epochs" in out and "arithmetic limit: (2 x" in out and csv.exists()
