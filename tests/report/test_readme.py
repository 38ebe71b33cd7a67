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


def test_update_rewrites_only_the_blocks(tmp_path):
    _claims(tmp_path)
    record_timing(tmp_path, "01_pretraining", 61.0)
    record_timing(tmp_path, "01_pretraining", 75.0)  # a re-run replaces the row
    assert len(pd.read_csv(tmp_path / "run_timings.csv")) == 1
    assert "1 min 15 s" in render_timings(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:begin -->\nSTALE\n<!-- results:end -->\nmiddle\n"
                      "<!-- timings:begin -->\nSTALE\n<!-- timings:end -->\nend\n")
    assert update_readme(readme, tmp_path) is True
    text = readme.read_text()
    assert text.startswith("intro\n") and "\nmiddle\n" in text and text.endswith("end\n") and "STALE" not in text
    assert update_readme(readme, tmp_path) is False  # idempotent
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="results:begin"):
        update_readme(readme, tmp_path)
