"""nml bench arithmetic: chapter 03's fits counted from its tables, each distinct fit once."""

import pandas as pd
import pytest

from nml.chapters.ch03_nmtune.arithmetic import fit_arithmetic, format_arithmetic_report
from nml.chapters.ch03_nmtune.run import ablation_methods, main_methods
from nml.config import load_params
from nml.estimators.frozen import create_tuner
from nml.estimators.frozen.bench import training_gflop
from nml.report.readme import render_benchmarks


def _rows(methods, n_train=500, **extra):
    return pd.DataFrame([{"track": "supervised", "gamma": 0.0, "seed": 0, "train_domain": "mnist-5k", "method": m,
                          "tuner_seed": 0, "kind": "ID", "fit_seconds": 2.0, "n_train": n_train, **extra} for m in methods])


def _gflop(method, n=500, d=256):
    return training_gflop(create_tuner(method.tuner, **dict(method.kwargs)), n, d)


def test_fits_are_counted_once_across_sections(tmp_path):
    params = load_params("cpu")
    main = {m.label: m for m in main_methods(params)}
    abl = {m.label: m for m in ablation_methods(params)}
    # main grid: LP, MLP, NMTune, each on two test rows (one fit each)
    pd.concat([_rows(main), _rows(main)]).to_csv(tmp_path / "03_results.csv", index=False)
    # the ablation repeats the official NMTune (two labels, one recipe, cached once) and adds a deeper head
    same = [label for label, m in abl.items() if m.kwargs == main["NMTune"].kwargs]
    deeper = "head depth 3, relu"
    assert same and deeper in abl
    _rows([*same, deeper]).to_csv(tmp_path / "03_ablation_rows.csv", index=False)

    table = fit_arithmetic(params, tmp_path, cores=2, rate=100.0)
    by = table.set_index("section")
    assert by.loc["main grid (Fig. 5)", "fits"] == 3
    assert by.loc["ablation (Tables 15-16)", "fits"] == 1  # only the deeper head is new
    assert by.loc["main grid (Fig. 5)", "gflop"] == pytest.approx(sum(_gflop(m) for m in main.values()))
    assert by.loc["ablation (Tables 15-16)", "gflop"] == pytest.approx(_gflop(abl[deeper]))
    assert by.loc["all", "measured_cpu_s"] == pytest.approx(2.0 * 4)
    assert by.loc["all", "floor_wall_s"] == pytest.approx(by.loc["all", "gflop"] / 100.0 / 2)
    assert "all" in format_arithmetic_report(table)

    # the README block reads the table and the other chapters' cold timings
    table.to_csv(tmp_path / "bench_fit_arithmetic.csv", index=False)
    pd.DataFrame({"notebook": ["01_pretraining", "03_nmtune"], "run": ["cold", "cold"], "seconds": [3000.0, 10.0],
                  "finished": ["x", "x"]}).to_csv(tmp_path / "run_timings.csv", index=False)
    block = render_benchmarks(tmp_path)
    assert "nml bench arithmetic" in block and "out of reach" in block  # 50 min of chapter 01 alone


def test_unknown_methods_and_missing_tables_are_named(tmp_path):
    params = load_params("cpu")
    with pytest.raises(FileNotFoundError, match="no chapter 03 table"):
        fit_arithmetic(params, tmp_path, rate=100.0)
    _rows(["LP", "SomethingElse"]).to_csv(tmp_path / "03_results.csv", index=False)
    with pytest.raises(ValueError, match="03_results.csv.*SomethingElse"):
        fit_arithmetic(params, tmp_path, rate=100.0)
