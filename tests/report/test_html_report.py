"""Provenance on saved results, the HTML report of a figures folder, and a failed run's status."""

import json
import re

import matplotlib.pyplot as plt
import nbformat
import pandas as pd
import pytest
from PIL import Image

from nml._infra.cache import record_cache_use
from nml.report import figures
from nml.report.html import build_report, write_report
from nml.report.provenance import PNG_KEY, read_provenance, sidecar_path
from nml.report.status import FAILED, NOT_RUN, OK, failure_entry, read_run_status, update_run_status
from nml.report.verdict import COLUMNS


def _figure():
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    return fig


def test_provenance_round_trip_png_text_and_csv_sidecar(tmp_path):
    figures.set_provenance({"seed": 1}, profile="cpu", notebook="02_x")
    record_cache_use("features/aaa", reused=True)
    record_cache_use("evaluations/bbb", reused=False)
    png = figures.save_figure(_figure(), tmp_path, "02_fig")
    table = pd.DataFrame({"a": [1, 2], "b": [0.5, 0.25]})
    csv = figures.save_table(table, tmp_path, "02_table")
    record_cache_use("features/aaa", reused=True)
    record_cache_use("evaluations/ccc", reused=True)
    csv2 = figures.save_table(table, tmp_path, "02_table_b")

    with Image.open(png) as img:  # plain PNG text chunks, readable by any tool
        text = dict(img.text)
    first = json.loads(text[PNG_KEY])
    assert text["nml:profile"] == "cpu" and text["nml:params_hash"] == first["params_hash"]
    assert first["cache_keys"] == {"evaluations/bbb": "computed", "features/aaa": "reused"}
    assert first["save_index"] == 1 and first["notebook"] == "02_x"
    assert first["git_commit"] and {"torch", "numpy", "pandas"} <= set(first["packages"])
    assert read_provenance(png) == first

    # the CSV is the plain table (no header lines); its provenance is in the sidecar
    assert csv.read_text() == table.to_csv(index=False)
    assert pd.read_csv(csv).equals(table)
    side = json.loads(sidecar_path(csv).read_text())
    assert sidecar_path(csv).name == "02_table.csv.provenance.json"
    assert side["cache_keys"] == {} and side["save_index"] == 2  # nothing touched since the figure
    assert side == read_provenance(csv)
    later = read_provenance(csv2)
    assert later["cache_keys"] == {"evaluations/ccc": "reused", "features/aaa": "reused"}
    assert later["cache_totals"] == {"reused": 2, "computed": 1}  # distinct entries since set_provenance
    assert later["params_hash"] == first["params_hash"]
    figures.set_provenance({"seed": 2}, profile="cpu")  # a new notebook starts from zero
    assert read_provenance(figures.save_table(table, tmp_path, "03_t"))["cache_totals"] == {"reused": 0, "computed": 0}


def _claims(verdict="holds"):
    row = {"claim": "C1", "statement": "slight noise helps", "scope": "supervised", "verdict": verdict,
           "effect": 1.5, "ci_low": 0.5, "ci_high": 2.5, "unit": "pts", "n_seeds": 3, "evidence": "ID acc up"}
    return pd.DataFrame([row], columns=list(COLUMNS))


def _executed_notebook(path, *, error=False):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# 02 — Spectral things\n\nSynthetic."),
        nbformat.v4.new_code_cell("from nml.chapters.ch02_spectral import plots\nfrom nml.report import figures",
                                  execution_count=1),
        nbformat.v4.new_code_cell('fig = plots.id_ood_vs_gamma(results)\nfigures.save_figure(fig, out, "02_fig1_id_ood")',
                                  execution_count=2),
        nbformat.v4.new_code_cell('figures.save_table(claims, out, "02_claims_C1-C3")', execution_count=3),
    ]
    if error:
        nb.cells[3].outputs = [nbformat.v4.new_output("error", ename="ValueError", evalue="boom", traceback=["ValueError: boom"])]
    nbformat.write(nb, path)


def _folder(tmp_path, profile="smoke"):
    out, executed = tmp_path / "figs", tmp_path / "runs"
    executed.mkdir()
    figures.set_provenance({"x": 1}, profile=profile)
    record_cache_use("features/k1", reused=False)
    figures.save_figure(_figure(), out, "02_fig1_id_ood")
    figures.save_table(_claims(), out, "02_claims_C1-C3")
    figures.save_table(pd.DataFrame({"encoder": ["e"], "method": ["LP"], "acc_mean": [0.8], "acc_std": [0.01]}),
                       out, "03_table2_real_models")
    pd.DataFrame({"notebook": ["02_spectral_x"], "seconds": [75.0], "finished": ["2026-01-01 10:00"]}).to_csv(
        out / "run_timings.csv", index=False)
    _executed_notebook(executed / "02_spectral_x.ipynb")
    return out, executed


def test_report_embeds_images_prints_provenance_pairs_paper_tables_and_flags_smoke(tmp_path):
    out, executed = _folder(tmp_path)
    path = write_report(out, executed, notebooks_dir=tmp_path / "none")
    page = path.read_text()
    assert path == out / "report.html"
    assert page.count("data:image/png;base64,") == 1 and "<img src=\"http" not in page and "<script src" not in page
    record = read_provenance(out / "02_fig1_id_ood.png")
    assert record["params_hash"] in page and record["git_commit"][:10] in page
    assert "computed from 1 cache entries (0 reused, 1 computed)" in page and "features/k1" in page
    # the cell and the function that made the figure, linked into the rendered notebook
    assert "nml.chapters.ch02_spectral.plots.id_ood_vs_gamma" in page
    assert re.search(r'href="notebooks/02_spectral_x.html#cell-id=[^"]+">notebook 02, cell In \[2\]', page)
    assert (out / "notebooks" / "02_spectral_x.html").is_file()
    # ours beside the paper's; the claims with their verdicts
    assert "Paper: NMTune Table 2, vision" in page and "nmtune_table2_vision.csv" in page
    assert "class='v-holds'>holds<" in page and "+1.50 [+0.50, +2.50] pts" in page
    # smoke: a banner, and every result labelled
    assert "Not evidence" in page and page.count("smoke profile: not evidence") == 3
    assert "1 min 15 s" in page  # wall time from run_timings.csv
    assert "Spectral things" in page  # the notebook's title


def test_report_of_cpu_results_has_no_smoke_label_and_says_when_provenance_is_missing(tmp_path):
    out, executed = _folder(tmp_path, profile="cpu")
    _claims().to_csv(out / "04_claims_TURN.csv", index=False)  # saved without nml: no provenance
    page = build_report(out, executed, notebooks_dir=tmp_path / "none")
    assert "not evidence" not in page.lower()
    assert "no provenance recorded" in page
    assert "Rendered notebooks missing" in page  # build_report renders nothing itself


def test_failed_run_marks_the_chapter_failed_not_stale(tmp_path):
    from papermill.exceptions import PapermillExecutionError

    out, executed = _folder(tmp_path, profile="cpu")
    _executed_notebook(executed / "02_spectral_x.ipynb", error=True)
    err = PapermillExecutionError(3, 3, 'figures.save_table(claims, out, "02_claims_C1-C3")', "ValueError", "boom", [])
    entry = failure_entry(err, started="2999-01-01T00:00:00+00:00", seconds=4.2, executed="02_spectral_x.ipynb")
    update_run_status(out, {"02_spectral_x": entry, "03_next": {"status": NOT_RUN, "reason": "02_spectral_x failed"}})
    page = write_report(out, executed, notebooks_dir=tmp_path / "none").read_text()
    assert "<b>FAILED</b> in the last run" in page
    assert "02_spectral_x failed at cell In [3]: ValueError: boom" in page
    assert "#papermill-error-cell" in page  # a link to the partially executed notebook at the failing cell
    assert "stale: saved by an earlier run" in page  # written before this (future-dated) failed run started
    assert "Not run in the last run (02_spectral_x failed)" in page
    assert read_run_status(out)["notebooks"]["02_spectral_x"]["status"] == FAILED


def _write_nb(path, source):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "cpu"\nparams_path = None\noutput_dir = None')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}"), params, nbformat.v4.new_code_cell(source)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_a_failing_notebook_says_where_keeps_the_partial_notebook_and_still_writes_the_report(tmp_path, capsys):
    from nml.cli import main

    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _write_nb(nbs / "01_ok.ipynb", "x = 1")
    _write_nb(nbs / "02_boom.ipynb", "y = 2\nraise ValueError('no such data')")
    _write_nb(nbs / "03_after.ipynb", "z = 3")
    out = tmp_path / "out"
    assert main(["run", "--profile", "smoke", "--output-dir", str(out), "--notebooks-dir", str(nbs)]) == 1
    err = capsys.readouterr().err
    assert "02_boom failed at cell In [" in err and "ValueError: no such data" in err
    assert str(out / "02_boom.ipynb") in err
    assert f"report in {out / 'report.html'}" in err
    status = read_run_status(out)["notebooks"]
    assert status["01_ok"]["status"] == OK
    assert status["02_boom"]["status"] == FAILED and status["02_boom"]["ename"] == "ValueError"
    assert "raise ValueError" in status["02_boom"]["source"]
    assert status["03_after"] == {"status": NOT_RUN, "reason": "02_boom failed"}
    assert (out / "02_boom.ipynb").is_file() and not (out / "03_after.ipynb").exists()
    page = (out / "report.html").read_text()
    assert "<b>FAILED</b>" in page and "no such data" in page
    assert (out / "notebooks" / "02_boom.html").is_file()


def test_cli_report_writes_the_page_for_a_folder(tmp_path, capsys):
    from nml.cli import main

    out, executed = _folder(tmp_path, profile="cpu")
    assert main(["report", "--figures-dir", str(out), "--executed-dir", str(executed)]) == 0
    assert "report.html" in capsys.readouterr().out and (out / "report.html").is_file()
    assert main(["report", "--figures-dir", str(tmp_path / "missing")]) == 2


@pytest.mark.parametrize("name", ["02_fig1_id_ood.png", "02_claims_C1-C3.csv"])
def test_results_saved_without_set_provenance_still_carry_the_commit(tmp_path, name, monkeypatch):
    import nml.report.provenance as prov

    monkeypatch.setattr(prov, "_RUN", None)
    if name.endswith(".png"):
        path = figures.save_figure(_figure(), tmp_path, name[:-4])
    else:
        path = figures.save_table(_claims(), tmp_path, name[:-4])
    record = read_provenance(path)
    assert record["profile"] is None and record["params_hash"] is None and record["git_commit"]


def test_find_producer_follows_variables_helpers_and_kinds():
    from nml.report.cells import find_producer

    code = nbformat.v4.new_code_cell
    cells = [
        code("from nml.chapters.ch04_turn import plots\nfrom nml.chapters.ch04_turn import run as turn\n"
             "from nml.notebook import show_figure", execution_count=1),
        code("pur, det = turn.purity(ctx) if ok else (None, None)\ntable = pur.merge(det)", execution_count=2),
        code('figures.save_table(table[keep], out, "04_t9")\nshow_figure(plots.purity(pur, det), out, "04_t9")',
             execution_count=3),
        code("%matplotlib inline\nx = 1", execution_count=4),
    ]
    table = find_producer(cells, "04_t9", "table")
    figure = find_producer(cells, "04_t9", "figure")
    assert (table.cell_index, table.execution_count, table.function) == (2, 3, "nml.chapters.ch04_turn.run.purity")
    assert figure.function == "nml.chapters.ch04_turn.plots.purity" and figure.cell_label() == "In [3]"
    assert find_producer(cells, "nowhere") is None
