"""The display helpers every notebook, the README and the dry-runs share."""

import math

import pandas as pd

from nml.report.display import claims_markdown, effect_cell, mean_std, percent_set


def test_mean_std_rounds_and_prints_as_pandas_does():
    mean, std = pd.Series([85.2999, 0.5, 1.0]), pd.Series([1.25, float("nan"), 0.0])
    out = mean_std(mean, std)
    assert out.iloc[0] == "85.3 ± 1.25" and out.iloc[2] == "1.0 ± 0.0"
    assert pd.isna(out.iloc[1])  # one seed: no std, no text (an empty cell in a saved table)
    # the very text the notebooks built inline before (saved tables stay byte-identical)
    inline = mean.round(2).astype(str) + " ± " + std.round(2).astype(str)
    assert out.equals(inline)
    assert mean_std(0.123456, 0.01, 4) == "0.1235 ± 0.01"


def test_effect_cell():
    assert effect_cell(1.5, 0.5, 2.5, "pts") == "+1.50 [+0.50, +2.50] pts"
    assert effect_cell(1.5, float("nan"), float("nan"), "pts") == "+1.50 pts"
    assert effect_cell(float("nan"), math.nan, math.nan, "pts") == "–"
    assert effect_cell(-0.25, -0.5, 0.1, float("nan")) == "-0.25 [-0.50, +0.10]"  # no unit (empty in a CSV)


def _claims():
    return pd.DataFrame([
        {"claim": "C1", "statement": "s1", "scope": "supervised", "verdict": "holds", "effect": 1.5, "ci_low": 0.5,
         "ci_high": 2.5, "unit": "pts", "n_seeds": 3, "evidence": "e1"},
        {"claim": "C2", "statement": "s2", "scope": "supervised", "verdict": "not testable", "effect": float("nan"),
         "ci_low": float("nan"), "ci_high": float("nan"), "unit": "pts", "n_seeds": 0, "evidence": "why"},
    ])


def test_claims_markdown_full_and_compact():
    full = claims_markdown(_claims()).splitlines()
    assert full[0] == "| claim | scope | verdict | effect [95% interval] | seeds | evidence |"
    assert full[1] == "|---|---|---|---|---|---|"
    assert full[2] == "| **C1** s1 | supervised | **holds** | +1.50 [+0.50, +2.50] pts | 3 | e1 |"
    assert full[3] == "| **C2** s2 | supervised | not testable | – | 0 | why |"
    compact = claims_markdown(_claims(), compact=True).splitlines()
    assert compact[:2] == ["| claim | scope | verdict | effect [95% interval] | seeds |", "|---|---|---|---|---|"]
    assert compact[2] == "| C1 | supervised | **holds** | +1.50 [+0.50, +2.50] pts | 3 |"


def test_claims_markdown_reads_a_saved_claims_table(tmp_path):
    _claims().assign(unit=["pts", ""]).to_csv(tmp_path / "c.csv", index=False)
    text = claims_markdown(pd.read_csv(tmp_path / "c.csv"), compact=True)
    assert "| C2 | supervised | not testable | – | 0 |" in text


def test_percent_set():
    assert percent_set([0.0, 0.3]) == "{0%, 30%}"
