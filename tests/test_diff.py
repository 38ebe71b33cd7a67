"""`nml diff A B`: claims side by side, changed verdicts first, effects that moved beyond the spread."""

import pandas as pd

from nml.cli import main
from nml.report.diff import compare_claims, compare_tables, resolve
from nml.report.verdict import COLUMNS


def _row(claim, scope, verdict, effect, half, n=3):
    return {"claim": claim, "statement": "s", "scope": scope, "verdict": verdict, "effect": effect,
            "ci_low": effect - half, "ci_high": effect + half, "unit": "pts", "n_seeds": n, "evidence": ""}


def _run(folder, rows, summary):
    folder.mkdir()
    pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(folder / "02_claims_C1-C3.csv", index=False)
    summary.to_csv(folder / "03_fig5_summary.csv", index=False)
    return folder


def _two_runs(tmp_path):
    summary = pd.DataFrame({"track": ["s", "s"], "gamma": [0.0, 0.1], "acc_mean": [0.80, 0.70], "acc_std": [0.01, 0.02],
                            "seeds": [3, 3]})
    a = _run(tmp_path / "a", [_row("C1", "supervised", "inconclusive", 0.2, 1.0),
                              _row("C2", "supervised", "inconclusive", 0.1, 0.5),
                              _row("C3a", "supervised", "holds", 2.0, 0.5)], summary)
    moved = summary.assign(acc_mean=[0.80, 0.75])  # +0.05 > the larger std 0.02
    b = _run(tmp_path / "b", [_row("C1", "supervised", "inconclusive", 0.3, 1.0),
                              _row("C2", "supervised", "inconclusive", 0.9, 0.5),   # moved 0.8 > 0.5
                              _row("C3a", "supervised", "inconclusive", 0.4, 0.5)], moved)  # verdict changed
    return a, b


def test_changed_verdicts_first_then_moved_effects(tmp_path):
    a, b = _two_runs(tmp_path)
    claims = compare_claims(resolve(str(a)), resolve(str(b)))
    assert list(claims["claim"]) == ["C3a", "C2", "C1"]
    assert list(claims["changed"]) == [True, False, False]
    assert list(claims["moved"]) == [True, True, False]  # C3a moved 1.6 > 0.5 too
    first = claims.iloc[0]
    assert (first["verdict_a"], first["verdict_b"]) == ("holds", "inconclusive")
    assert first["spread_a"] == 0.5 and first["n_seeds_b"] == 3
    tables = compare_tables(resolve(str(a)), resolve(str(b)))
    assert list(tables["row"]) == ["track=s, gamma=0.1"] and tables["delta"].round(3).tolist() == [0.05]


def test_cli_diff_prints_the_table_and_writes_csv(tmp_path, capsys):
    a, b = _two_runs(tmp_path)
    out = tmp_path / "diff.csv"
    assert main(["diff", str(a), str(b), "--csv", str(out)]) == 0
    text = capsys.readouterr().out
    assert "3 claims; 1 verdicts changed; 2 effects moved beyond the spread" in text
    lines = [line for line in text.splitlines() if "supervised" in line]
    assert lines[0].startswith("VM") and "holds" in lines[0] and "+2 ±0.5 (3)" in lines[0]
    assert "03_fig5_summary.csv  track=s, gamma=0.1  acc_mean: 0.7 -> 0.75" in text
    assert pd.read_csv(out)["claim"].tolist() == ["C3a", "C2", "C1"]


def test_claims_on_one_side_only_count_as_changed(tmp_path):
    summary = pd.DataFrame({"x": [1]})
    a = _run(tmp_path / "a", [_row("C1", "s", "holds", 1.0, 0.5)], summary)
    b = _run(tmp_path / "b", [_row("C1", "s", "holds", 1.0, 0.5), _row("C9", "s", "holds", 1.0, 0.5)], summary)
    claims = compare_claims(resolve(str(a)), resolve(str(b)))
    assert claims.iloc[0]["claim"] == "C9" and claims.iloc[0]["verdict_a"] == "absent"
    assert claims.iloc[0]["moved"] is pd.NA


def test_diff_reads_a_profile_and_a_git_commit(capsys):
    # the committed cpu tables at HEAD against the working tree's figures/cpu
    assert main(["diff", "HEAD", "cpu"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("A: HEAD (") and "B: figures/cpu" in text and "claims;" in text


def test_unknown_side_is_an_error(capsys):
    assert main(["diff", "no-such-run-or-commit", "cpu"]) == 2
    assert "neither a folder" in capsys.readouterr().err
