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
