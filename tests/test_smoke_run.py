"""End to end: `nml run --profile smoke --output-dir DIR` executes every notebook headlessly."""

import json

import pandas as pd
import pytest

from nml.cli import main
from nml.runner import discover_notebooks


@pytest.mark.slow
def test_smoke_profile_runs_every_notebook(tmp_path):
    out = tmp_path / "smoke"
    assert main(["run", "--profile", "smoke", "--output-dir", str(out)]) == 0
    for nb in discover_notebooks():
        executed = json.loads((out / nb.path.name).read_text())
        errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{nb.path.name}: {errors[:1]}"
    for name in ["01_training_curves.png", "01_table3_pretrain_accuracy.csv", "02_fig1_id_ood_vs_gamma.png",
                 "02_fig3_sve_lsvr.png", "02_spectra_id.png", "02_per_task_id.png", "params.resolved.yaml",
                 "03_fig5_tuners_vs_gamma.png", "03_table2_real_models.csv", "03_tables15_16_ablation.png",
                 "03_fig15_16_noisy_downstream.png", "03_table14_runtime.csv"]:
        assert (out / name).is_file(), name
    results = pd.read_csv(out / "02_results.csv")
    assert set(results["kind"]) == {"ID", "OOD"} and results["acc"].between(0, 1).all()
    claims = pd.read_csv(out / "02_claims_C1-C3.csv")
    assert {"C1", "C2", "C3a", "C3b", "C3c"} <= set(claims["claim"])
    tuned = pd.read_csv(out / "03_results.csv")
    assert set(tuned["method"]) == {"LP", "MLP", "NMTune"} and tuned["acc"].between(0, 1).all()
    assert set(pd.read_csv(out / "03_table2_real_models.csv")["encoder"]) == {"efficientnet-lite0", "opennsfw"}
    assert {"C4a", "C4b", "C4c", "C5a", "C5b"} <= set(pd.read_csv(out / "03_claims_C4-C5.csv")["claim"])
    for name in ["04_table2_best_last.png", "04_fig3_time_vs_accuracy.png", "04_fig3_sensitivity.png",
                 "04_table9_purity.png", "04_fig2_tsne.png", "04_noise_transitions.png", "04_table1_cost.csv",
                 "04_table4_components.csv", "04_table9_detection.csv"]:
        assert (out / name).is_file(), name
    runs = pd.read_csv(out / "04_runs.csv")
    assert set(runs["method"]) == {"ce-fft", "gce-fft", "elr-fft", "ce-lp", "gce-lp", "elr-lp", "dividemix-lp",
                                   "unicon-lp", "turn"}
    # best = test accuracy at the best-validation epoch; the oracle (best test epoch) bounds best and last
    assert runs["best"].between(0, 1).all() and (runs["best_oracle"] >= runs[["best", "last"]].max(axis=1) - 1e-12).all()
    assert {"T1", "T2", "T4", "T5"} <= set(pd.read_csv(out / "04_claims_TURN.csv")["claim"])
    for name in ["05_per_task_scores.png", "05_feature_spectra.png", "05_table2_language_vs_paper.csv",
                 "05_table12_13_per_task.csv", "05_task_sizes.csv"]:
        assert (out / name).is_file(), name
    language = pd.read_csv(out / "05_results.csv")
    assert set(language["encoder"]) == {"all-MiniLM-L6-v2", "SmolLM2-135M"}
    assert set(language["task"]) == {"sentiment", "subjectivity", "party"} and language["score"].between(0, 1).all()
    assert set(language[language["kind"] == "OOD"]["test"]) == {"whissell", "mfd", "debates"}
    assert set(language["kind"]) == {"val", "ID", "OOD"} and (language["test_id"].str.len() > 0).all()
    assert set(pd.read_csv(out / "05_claims_language.csv")["claim"]) == {"L1", "L2"}
    assert (out / "05_chance_check.csv").is_file()
    # same seed, same numbers: a second run reuses every cache and reproduces the table exactly
    again = tmp_path / "again"
    assert main(["run", "--profile", "smoke", "--only", "02,03,04,05", "--output-dir", str(again)]) == 0
    pd.testing.assert_frame_equal(results, pd.read_csv(again / "02_results.csv"))
    # fit_seconds is a timing: an entry computed twice at once (the browser test runs the same smoke
    # notebooks on the same cache in parallel) keeps the last writer's time, the same scores
    pd.testing.assert_frame_equal(tuned.drop(columns="fit_seconds"),
                                  pd.read_csv(again / "03_results.csv").drop(columns="fit_seconds"))
    timing = [c for c in runs.columns if c.endswith("_seconds")]
    pd.testing.assert_frame_equal(runs.drop(columns=timing), pd.read_csv(again / "04_runs.csv").drop(columns=timing))
    pd.testing.assert_frame_equal(language.drop(columns="fit_seconds"),
                                  pd.read_csv(again / "05_results.csv").drop(columns="fit_seconds"))
