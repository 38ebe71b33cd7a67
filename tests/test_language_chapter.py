"""Chapter 05: tuning rows, tables and claims, on tiny tasks with a called-only encoder."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from nml.chapters import language
from nml.data.text_tasks import TextSplit, TextTask
from nml.language_claims import language_claims
from nml.params import load_params


def _task(name: str, rng: np.random.Generator, n: int = 40) -> TextTask:
    def split(split_name: str, k: int) -> TextSplit:
        y = np.arange(k) % 2
        words = [("good great fine" if c else "bad awful poor").split() for c in y]
        texts = [" ".join(rng.choice(w, 4)) + f" filler{rng.integers(1000)}" for w in words]
        return TextSplit(split_name, texts, y)
    return TextTask(name, ["neg", "pos"], "accuracy", split(f"{name}/train", n), split(f"{name}/test", 20),
                    ood={"words": split(f"{name}-words", 10)})


@pytest.fixture
def bow_module(tmp_path, monkeypatch):
    """A module with an 'embedding API' that params can name as callable:<module>:<function>."""
    (tmp_path / "bow_api.py").write_text(textwrap.dedent('''
        import zlib
        import numpy as np
        CALLS = []
        def embed(texts):
            CALLS.append(len(texts))
            out = np.zeros((len(texts), 32), dtype=np.float32)
            for i, t in enumerate(texts):
                for w in t.split():
                    out[i, zlib.crc32(w.encode()) % 32] += 1.0
            return out
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "bow_api"
    sys.modules.pop("bow_api", None)


@pytest.fixture
def params(bow_module, tmp_path, monkeypatch):
    monkeypatch.setenv("NML_HOME", str(tmp_path / "home"))
    return load_params("smoke", overrides=[
        f'language.encoders=[{{"name": "callable:{bow_module}:embed", "label": "bow"}}]',
        "language.seeds=[0,1]", "language.probe={epochs: 30, batch_size: 8}",
        "language.tuner={preset: official, epochs: 20, batch_size: 8, hidden_mult: 1}"], require_data=False)


def test_tune_encoders_scores_every_task_method_seed_and_resumes_from_cache(params, bow_module):
    rng = np.random.default_rng(0)
    tasks = [_task("a", rng), _task("b", rng)]
    rows, spectra = language.tune_encoders(params, tasks)
    # 2 tasks x 3 methods x 2 seeds, each scored ID and on one OOD set
    assert len(rows) == 2 * 3 * 2 * 2
    assert set(rows["method"]) == {"LP", "MLP", "NMTune"} and set(rows["kind"]) == {"ID", "OOD"}
    assert rows["score"].between(0, 1).all() and (rows["score"] == rows["acc"]).all()
    assert rows[rows["kind"] == "ID"]["score"].mean() > 0.8  # the words decide the label
    assert set(spectra["split"]) == {"a/train", "a/test", "a-words", "b/train", "b/test", "b-words"}
    calls = list(sys.modules[bow_module].CALLS)
    again, _ = language.tune_encoders(params, tasks)
    pd.testing.assert_frame_equal(rows.drop(columns="fit_seconds"), again.drop(columns="fit_seconds"))
    assert sys.modules[bow_module].CALLS == calls  # features and fits came from the caches


def test_task_score_uses_the_tasks_metric():
    y = np.array([0, 1, 1, 0, 1])
    pred = np.array([0, 1, 0, 0, 1])
    assert language.task_score("accuracy", y, pred) == pytest.approx(0.8)
    assert language.task_score("mcc", y, pred) == pytest.approx(np.corrcoef(y, pred)[0, 1])
    gold = np.array([0.2, 4.1, 2.5, 1.0, 3.9])
    assert language.task_score("pearson", y, pred, gold) == pytest.approx(np.corrcoef(pred, gold)[0, 1])
    assert language.task_score("pearson", y, np.zeros(5, dtype=int), gold) == 0.0  # constant prediction
    with pytest.raises(ValueError, match="unknown metric"):
        language.task_score("f1", y, pred)


def _rows(nm_gain: float) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    out = []
    for seed in range(3):
        for kind, tests in (("ID", ["t1", "t2"]), ("OOD", ["o1"])):
            for test in tests:
                base = 0.7 + 0.01 * rng.standard_normal()
                for method, gain in (("LP", 0.0), ("MLP", 0.01), ("NMTune", nm_gain)):
                    out.append({"encoder": "e", "kind": kind, "task": test[:1], "test": test, "metric": "accuracy",
                                "method": method, "seed": seed, "score": base + gain})
    return pd.DataFrame(out)


def test_tables_average_over_tests_then_seeds():
    rows = _rows(0.05)
    avg = language.average_table(rows)
    id_nm = avg[(avg["kind"] == "ID") & (avg["method"] == "NMTune")].iloc[0]
    per_seed = rows[(rows["kind"] == "ID") & (rows["method"] == "NMTune")].groupby("seed")["score"].mean()
    assert id_nm["score_mean"] == pytest.approx(100 * per_seed.mean())
    assert id_nm["score_std"] == pytest.approx(100 * per_seed.std(ddof=1))
    per_task = language.per_task_table(rows)
    assert len(per_task) == 3 * 3 and (per_task["seeds"] == 3).all()
    both = language.side_by_side(avg)
    assert {"nml (this run)", "paper (GLUE / GLUE-X)"} == set(both["source"])
    assert both[both["source"].str.startswith("paper")]["model"].nunique() == 4


def test_claims_follow_the_numbers():
    good = language_claims(_rows(0.05))
    assert (good["verdict"] == "holds").all() and len(good) == 4
    bad = language_claims(_rows(-0.05))
    assert (bad["verdict"] == "does not hold").all()
    assert (bad["effect_pts"] < 0).all()
    missing = language_claims(_rows(0.05).query("method != 'MLP'"))
    assert set(missing[missing["claim"] == "L2"]["verdict"]) == {"not testable"}


def test_params_validate_the_language_section():
    from nml.params import ParamsError

    cpu = load_params("cpu", require_data=False)
    assert [e.name for e in cpu.language.encoders] == ["all-minilm-l6-v2", "smollm2-135m"]
    with pytest.raises(ParamsError, match="language.*tasks.*'nope'"):
        load_params("cpu", overrides=["language.tasks=[sentiment, nope]"], require_data=False)
    with pytest.raises(ParamsError, match="unpleasant_max"):
        load_params("cpu", overrides=["language.lexicon.pleasant_min=1.2"], require_data=False)
    with pytest.raises(ParamsError, match="language.encoders"):
        load_params("cpu", overrides=['language.encoders=[{"name": "no-such-encoder"}]'], require_data=False)
    paper = load_params("paper", require_data=False)
    assert paper.language.source == "glue" and "stsb" in paper.language.tasks
    with pytest.raises(ParamsError, match="'sentiment'"):
        load_params("paper", overrides=["language.tasks=[sentiment]"], require_data=False)
