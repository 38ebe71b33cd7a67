"""The Findings that close every notebook: generated from the claims tables and the paper's tables."""

import math

import pandas as pd
import pytest

from nml.chapters.ch02_spectral.claims import paper_numbers as paper_02
from nml.chapters.ch03_nmtune.claims import paper_numbers as paper_03
from nml.chapters.ch04_turn.claims import paper_numbers as paper_04
from nml.chapters.ch05_language.claims import paper_numbers as paper_05
from nml.report.findings import (
    FINDINGS_COLUMNS,
    findings,
    markdown_table,
    not_tabulated,
    paper_number,
    verdict_counts,
    versus_paper,
)
from nml.report.scores import Estimate
from nml.report.verdict import COLUMNS, claim_row, not_testable

NAN = float("nan")


def _claims() -> pd.DataFrame:
    rows = [
        claim_row("C1", "slight noise helps", "supervised", Estimate(1.5, 0.5, 2.5, 3, 0.1, 0.1)),
        claim_row("C2", "OOD falls", "supervised", Estimate(-0.4, -1.0, 0.2, 3, 0.1, 0.1), unit="pts per 10 pts of gamma"),
        claim_row("C3a", "SVE rises", "supervised", Estimate(-2.0, -3.0, -1.0, 5, 0.1, 0.1), unit="SVE"),
        not_testable("C4c", "clean best again", "supervised ID", "nothing to restore"),
    ]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def test_findings_rows_come_from_the_claims_table():
    claims = _claims()
    f = findings(claims, ["Fig. 1 (plotted, not tabulated)", "+0.52 pts (Table 2)", "", None])
    t = f.table
    assert tuple(t.columns) == FINDINGS_COLUMNS and len(t) == len(claims)
    assert t["claim"].tolist() == ["C1", "C2", "C3a", "C4c"]
    assert t["statement"].tolist() == claims["statement"].tolist()
    assert t["verdict"].tolist() == ["holds", "inconclusive", "does not hold", "not testable"]
    assert t.loc[0, "ours"] == "+1.50 [+0.50, +2.50] pts"
    assert t.loc[1, "ours"] == "-0.40 [-1.00, +0.20] pts per 10 pts of gamma"
    assert t.loc[3, "ours"] == "–"  # not testable: no effect
    assert t["seeds"].tolist() == [3, 3, 5, 0]
    # the paper's side as given; empty or missing -> "–"
    assert t["paper"].tolist() == ["Fig. 1 (plotted, not tabulated)", "+0.52 pts (Table 2)", "–", "–"]


def test_findings_without_paper_numbers_and_with_a_series():
    claims = _claims()
    assert findings(claims).table["paper"].eq("–").all()
    series = pd.Series(["a", "b", "c", "d"], index=[10, 11, 12, 13])  # aligned by position, like claims rows
    assert findings(claims, series).table["paper"].tolist() == ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="3 entries for 4 claims rows"):
        findings(claims, ["a", "b", "c"])


def test_findings_show_as_a_markdown_table_and_as_the_same_text_in_a_log():
    f = findings(_claims(), ["x | y", "", "", ""])
    text = f._repr_markdown_()
    assert repr(f) == text  # papermill logs text/plain: the same table
    summary, _, table = text.partition("\n\n")
    assert summary == "**4 claims rows at this scale:** 1 hold · 1 inconclusive · 1 does not hold · 1 not testable."
    lines = table.splitlines()
    assert lines[0] == "| claim | statement | scope | verdict | ours | seeds | paper |"
    assert lines[1] == "|---|---|---|---|---|---|---|"
    assert lines[2] == "| C1 | slight noise helps | supervised | **holds** | +1.50 [+0.50, +2.50] pts | 3 | x \\| y |"
    assert "| inconclusive |" in lines[3] and "| **does not hold** |" in lines[4]


def test_verdict_counts_and_markdown_cells():
    assert verdict_counts(_claims().iloc[:1]) == "1 hold"
    assert verdict_counts(_claims().iloc[0:0]) == "no claims"
    assert markdown_table(pd.DataFrame({"a": [1.0, NAN], "b": ["x\ny", None]})).splitlines()[2:] == [
        "| 1.0 | x y |", "| – | – |"]


def test_paper_number_and_not_tabulated():
    assert paper_number(0.5234, "pts", "Table 2") == "+0.52 pts (Table 2)"
    assert paper_number(-1.0, "", "Table 9") == "-1.00 (Table 9)"
    assert paper_number(NAN, "pts", "Table 2") == "–"
    assert not_tabulated("Fig. 1") == "Fig. 1 (plotted, not tabulated)"


def test_versus_paper_shows_each_change_from_the_clean_model():
    table = pd.DataFrame({
        "track": ["supervised", "supervised", "supervised", "contrastive"],
        "gamma_pct": [20, 0, 40, 0], "seeds": [2, 2, 2, 1],
        "acc_mean": [80.0, 82.5, 79.0, 10.0], "acc_std": [1.0, 0.5, 2.0, NAN],
        "paper": [76.27, 79.96, NAN, 32.64],
    })
    v = versus_paper(table, group="track", x="gamma_pct", mean="acc_mean", std="acc_std", paper="paper")
    assert v.columns.tolist() == ["track", "gamma_pct", "seeds", "ours", "ours_change", "paper", "paper_change"]
    assert v["track"].tolist() == ["contrastive", "supervised", "supervised", "supervised"]
    assert v["gamma_pct"].tolist() == [0, 0, 20, 40]
    assert v["ours"].tolist() == ["10.0", "82.5 ± 0.5", "80.0 ± 1.0", "79.0 ± 2.0"]  # one seed: no std
    assert v["ours_change"].tolist() == [0.0, 0.0, -2.5, -3.5]
    assert v["paper_change"].iloc[2] == pytest.approx(-3.69)
    assert math.isnan(v["paper"].iloc[3]) and math.isnan(v["paper_change"].iloc[3])  # a γ the paper lacks


def _rows(*pairs: tuple[str, str]) -> pd.DataFrame:
    return pd.DataFrame([{"claim": c, "scope": s} for c, s in pairs])


def test_chapter_02_names_the_figures():
    p = paper_02(_rows(("C1", "supervised"), ("C3b", "supervised; spectrum raw")))
    assert p.tolist() == ["Fig. 1 (plotted, not tabulated)", "Fig. 3 (plotted, not tabulated)"]


def test_chapter_03_reads_table_2_for_c4a_and_c4b():
    p = paper_03(_rows(("C4a", "supervised ID"), ("C4b", "opennsfw OOD"), ("C4c", "supervised ID"),
                       ("C5c", "supervised ID, downstream noise 50%")))
    # NMTune minus MLP macro-F1 over the five models of Table 2 (ID): 0.41, 1.36, 0.49, 0.40, 0.39 pts
    assert p[0] == "+0.61 pts (Table 2, ID: mean of 5 models, macro-F1)"
    assert p[1].startswith("+0.12 pts (Table 2, OOD:")
    assert p[2] == "Fig. 5 (plotted, not tabulated)" and p[3] == "Figs. 15-16 (plotted, not tabulated)"


def test_chapter_04_reads_tables_2_4_and_9_at_the_same_noise_setting():
    p = paper_04(_rows(("T1", "checkpoint, uniform 0.6"), ("T2", "checkpoint, uniform 0.9"),
                       ("T3", "checkpoint, uniform 0.1"), ("T4", "checkpoint, uniform 0.9, vs UNICON (LP)"),
                       ("T5", "checkpoint, uniform 0.9, vs LP no, cleansing every"),
                       ("T5", "checkpoint, uniform 0.9, vs LP yes, cleansing none"),
                       ("T6", "uniform 0.6"), ("T1", "checkpoint, symmetric 0.6")))
    assert p[0].startswith("+2.66 pts (Table 2, symmetric 0.6: TURN minus the strongest baseline, mean of 6 models")
    assert p[1].startswith("+11.73 pts (Table 2, symmetric 0.9: LP minus FFT last accuracy")
    assert p[2] == "no run at this noise setting in Table 2"  # the paper has no mild setting in a table
    assert p[3].startswith("+0.88 vs UNICON")  # 1 − 0.12, the text on Fig. 3a (turn_fig3a_time)
    assert p[4].startswith("+39.96 pts (Table 4, symmetric 0.9")  # (83.33 - 45.51 + 72.17 - 30.07) / 2
    assert p[5].startswith("+31.07 pts (Table 4")  # the CSV's "None" cleansing row, not a missing value
    assert p[6].startswith("+0.90 Spearman rho (Table 9, symmetric 0.6")
    assert p[7] == "no run at this noise setting in Table 2"  # our flip-to-another noise is not the paper's


def test_chapter_05_reads_table_2_language():
    p = paper_05(_rows(("L1", "all-MiniLM-L6-v2, ID"), ("L2", "SmolLM2-135M, OOD")))
    assert p[0] == "+2.94 pts (Table 2, ID: mean of 4 models)"
    assert p[1] == "+1.70 pts (Table 2, OOD: mean of 4 models)"
