"""The README's results and timings are generated from the tables, and a stale README fails here."""

import pandas as pd
import pytest

from nml._infra.paths import project_root
from nml.report.readme import render_results, render_timings, rendered_readme, update_readme
from nml.runner import record_timing


def test_committed_readme_matches_the_committed_cpu_tables():
    readme = (project_root() / "README.md").read_text()
    expected = rendered_readme(readme, project_root() / "figures" / "cpu")
    assert readme == expected, "README.md is stale: run `nml report --readme` after `nml run`"


def _claims(tmp_path):
    rows = [{"claim": "C1", "statement": "s", "scope": "supervised", "verdict": "holds", "effect": 1.5, "ci_low": 0.5,
             "ci_high": 2.5, "unit": "pts", "n_seeds": 3, "evidence": "e"},
            {"claim": "C2", "statement": "s", "scope": "supervised", "verdict": "not testable", "effect": float("nan"),
             "ci_low": float("nan"), "ci_high": float("nan"), "unit": "pts", "n_seeds": 0, "evidence": "why"}]
    pd.DataFrame(rows).to_csv(tmp_path / "02_claims_C1-C3.csv", index=False)


def test_results_block_is_rendered_from_the_csv(tmp_path):
    _claims(tmp_path)
    text = render_results(tmp_path)
    assert "| C1 | supervised | **holds** | +1.50 [+0.50, +2.50] pts | 3 |" in text
    assert "| C2 | supervised | not testable | – | 0 |" in text
    assert "2 rows: 1 holds, 1 not testable" in text


def test_timings_of_the_single_row_format_are_cold_runs(tmp_path):
    (tmp_path / "run_timings.csv").write_text("notebook,seconds,finished\n01_pretraining,120.0,2026-11-30 14:27\n")
    assert "| 01_pretraining | 2 min 00 s | 2026-11-30 14:27 |" in render_timings(tmp_path)
    record_timing(tmp_path, "02_spectral_analysis", 5.0, "warm")
    table = pd.read_csv(tmp_path / "run_timings.csv")
    assert list(table["run"]) == ["cold", "warm"]
    with pytest.raises(ValueError, match="kind"):
        record_timing(tmp_path, "01_pretraining", 1.0, "lukewarm")


def test_update_rewrites_only_the_blocks(tmp_path):
    _claims(tmp_path)
    record_timing(tmp_path, "01_pretraining", 61.0, "cold")
    record_timing(tmp_path, "01_pretraining", 75.0, "cold")  # a re-run of a kind replaces its row
    assert len(pd.read_csv(tmp_path / "run_timings.csv")) == 1
    assert "1 min 15 s" in render_timings(tmp_path)
    record_timing(tmp_path, "01_pretraining", 9.0, "warm")
    record_timing(tmp_path, "01_pretraining", 30.0, "partial")  # kept in the file, not in the block
    block = render_timings(tmp_path)
    assert block.splitlines()[0] == "| notebook | cold run | finished (UTC) | warm run | finished (UTC) |"
    assert "| 01_pretraining | 1 min 15 s |" in block and "| 0 min 09 s |" in block and "0 min 30 s" not in block
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:begin -->\nSTALE\n<!-- results:end -->\nmiddle\n"
                      "<!-- timings:begin -->\nSTALE\n<!-- timings:end -->\n"
                      "<!-- benchmarks:begin -->\nSTALE\n<!-- benchmarks:end -->\nend\n")
    assert update_readme(readme, tmp_path) is True
    text = readme.read_text()
    assert text.startswith("intro\n") and "\nmiddle\n" in text and text.endswith("end\n") and "STALE" not in text
    assert update_readme(readme, tmp_path) is False  # idempotent
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="results:begin"):
        update_readme(readme, tmp_path)


def test_benchmarks_block_reads_the_bench_tables_and_their_goals(tmp_path):
    from nml.report.readme import render_benchmarks

    assert "not measured yet" in render_benchmarks(tmp_path)
    pd.DataFrame([
        {"goal": float("nan"), "shape": "cpu", "n_train": 10, "n_features": 4, "method": "LP", "mode": "alone", "epochs": 30,
         "seconds_per_fit": 0.5, "gflop_per_fit": 1.0, "gflops": 2.0, "gemm_gflops": 80.0, "fraction_of_gemm": 0.025,
         "test_acc": 0.9},
        {"goal": 0.1, "shape": "cpu", "n_train": 10, "n_features": 4, "method": "NMTune", "mode": "8 as one", "epochs": 3,
         "seconds_per_fit": 0.1, "gflop_per_fit": 4.0, "gflops": 40.0, "gemm_gflops": 80.0, "fraction_of_gemm": 0.5,
         "test_acc": 0.9},
        {"goal": 0.3, "shape": "paper", "n_train": 10, "n_features": 8, "method": "MLP", "mode": "8 as one", "epochs": 3,
         "seconds_per_fit": 1.0, "gflop_per_fit": 16.0, "gflops": 16.0, "gemm_gflops": 80.0, "fraction_of_gemm": 0.2,
         "test_acc": 0.9},
        {"goal": float("nan"), "shape": "paper", "n_train": 10, "n_features": 8, "method": "scikit-learn LogisticRegression",
         "mode": "alone", "epochs": float("nan"), "seconds_per_fit": 0.2, "gflop_per_fit": float("nan"),
         "gflops": float("nan"), "gemm_gflops": 80.0, "fraction_of_gemm": float("nan"), "test_acc": 0.8},
    ]).to_csv(tmp_path / "bench_fits.csv", index=False)
    pd.DataFrame([{"encoder": "resnet50", "n": 8, "image_size": 224, "feature_dim": 2048, "hidden": 8192, "epochs": 30,
                   "batch_size": 64, "n_views": 1, "threads": 2, "extract_s": 2.0, "tune_cached_s": 1.0,
                   "cached_total_s": 3.0, "measured_epochs": 2, "authors_projected": True, "authors_total_s": 60.0,
                   "speedup_cached": 20.0, "encoder_gflop": 8.17, "head_fwd_gflop": 0.0671, "head_train_gflop": 6.04,
                   "arithmetic_limit": 17.7, "goal": 15.0}]).to_csv(tmp_path / "bench_nmtune_paper_shape.csv", index=False)
    block = render_benchmarks(tmp_path)
    assert "GEMM rate on one thread 80.0 GFLOP/s" in block
    assert "| cpu (10 × 4) | NMTune | 8 as one | 0.100 | 40.0 | 50.0% | ≥ 10%: **meets** |" in block
    assert "| paper (10 × 8) | MLP | 8 as one | 1.000 | 16.0 | 20.0% | ≥ 30%: **misses** |" in block
    assert "| cpu (10 × 4) | LP | alone | 0.500 | 2.0 | 2.5% |  |" in block
    assert "Ratio **20.0×** (goal ≥ 15×: **meets**)" in block and "projected from 2 measured epochs" in block
    assert "(30 × 8.17 + 6.04) / (8.17 + 6.04) = 17.7×" in block
