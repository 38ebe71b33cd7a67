from nml.assets import list_assets
from nml.cli import build_parser, main


def test_assets_list_names_every_asset(capsys):
    assert main(["assets", "list"]) == 0
    out = capsys.readouterr().out
    for asset in list_assets():
        assert asset.name in out


def test_assets_verify_and_unknown_names(capsys):
    assert main(["assets", "verify", "mnist-5k"]) == 0
    assert "mnist-5k: ok" in capsys.readouterr().out
    assert main(["assets", "verify", "mnist-6k"]) == 2
    assert "unknown asset 'mnist-6k'" in capsys.readouterr().err
    assert main(["assets", "fetch", "mnist-6k"]) == 2


def test_run_defaults_to_cpu_profile():
    args = build_parser().parse_args(["run"])
    assert args.profile is None and args.params is None and args.overrides == []


def test_dry_run_of_default_profile_runs_nothing(capsys, tmp_path):
    assert main(["run", "--dry-run", "--output-dir", str(tmp_path / "never")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("profile: cpu")
    assert "missing on this machine: nothing" in out
    assert not (tmp_path / "never").exists()


def test_params_file_and_profile_are_exclusive(capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["run", "--profile", "cpu", "--params", "x.yaml"])


def test_bench_nmtune_prints_both_ratios(capsys, tmp_path):
    csv = tmp_path / "bench.csv"
    assert main(["bench", "nmtune", "--encoder", "nml_resnet4_half", "--n", "64", "--online-epochs", "1",
                 "--csv", str(csv)]) == 0
    out = capsys.readouterr().out
    assert "ratio tuning / extraction" in out and "ratio encoder-every-batch / cached" in out
    import pandas as pd

    row = pd.read_csv(csv).iloc[0]
    assert row["tune_over_extract"] > 0 and row["speedup_cached"] > 0
    assert row["tune_over_extract"] == row["nmtune_full_s"] / row["extract_s"]


def test_bench_rejects_bad_sizes(capsys):
    assert main(["bench", "nmtune", "--n", "0"]) == 2
    assert "--n must be a positive integer" in capsys.readouterr().err


def test_bench_turn_prints_ratios_for_both_ways(capsys, tmp_path):
    csv = tmp_path / "turn.csv"
    assert main(["bench", "turn", "--n", "60", "--epochs", "2", "--image-size", "32", "--csv", str(csv)]) == 0
    out = capsys.readouterr().out
    assert "TURN / this" in out and "0.12x of UNICON" in out
    import pandas as pd

    table = pd.read_csv(csv)
    assert set(table["method"]) == {"turn", "dividemix-lp", "unicon-lp"} and len(table) == 5
    assert (table["seconds"] > 0).all()
    turn_s = table.loc[table["method"] == "turn", "seconds"].iloc[0]
    assert (table["turn_over_this"] - turn_s / table["seconds"]).abs().max() < 1e-12
    assert main(["bench", "turn", "--n", "5"]) == 2
    assert "--n must be at least 20" in capsys.readouterr().err
    assert main(["bench", "turn", "--epochs", "1"]) == 2
    assert "--epochs must be at least 2" in capsys.readouterr().err


def test_list_prints_names_and_descriptions(capsys):
    import pytest

    assert main(["list", "methods"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 9 and out[-1].split(None, 1) == ["unicon-lp", "UNICON with linear probing"]
    assert main(["list", "models"]) == 0
    out = capsys.readouterr().out
    assert "nml_resnet4_half" in out and "<timm model name>" in out
    assert main(["list", "encoders"]) == 0
    assert "efficientnet-lite0" in capsys.readouterr().out
    assert main(["list", "text-encoders"]) == 0
    assert "callable:<module>:<function>" in capsys.readouterr().out
    assert main(["list", "tuners"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == ["lp", "mlp", "nmtune"]
    assert main(["list", "datasets", "fashion-mnist*"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == [
        "fashion-mnist", "fashion-mnist-heldout", "fashion-mnist-c/<corruption>"]
    with pytest.raises(SystemExit):
        main(["list", "gpus"])
