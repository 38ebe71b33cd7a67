"""Chapter 05: tuning rows, tables and claims, on tiny tasks with a called-only encoder."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from nml.chapters.ch05_language import run as language
from nml.config import load_params
from nml.data.text.tasks import TextSplit, TextTask
from nml.metrics import largest_singular_value_ratio, singular_value_entropy


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
    # 2 tasks x 3 methods x 2 seeds, each scored on its validation split, ID and one OOD set
    assert len(rows) == 2 * 3 * 2 * 3
    assert set(rows["method"]) == {"LP", "MLP", "NMTune"} and set(rows["kind"]) == {"val", "ID", "OOD"}
    assert rows["score"].between(0, 1).all() and (rows["score"] == rows["acc"]).all()
    assert rows[rows["kind"] == "ID"]["score"].mean() > 0.8  # the words decide the label
    assert (rows["family"] == rows["task"]).all()
    assert set(spectra["split"]) == {"a/train", "a/test", "a-words", "b/train", "b/test", "b-words"}
    calls = list(sys.modules[bow_module].CALLS)
    again, _ = language.tune_encoders(params, tasks)
    pd.testing.assert_frame_equal(rows.drop(columns=["fit_seconds", "pred"]), again.drop(columns=["fit_seconds", "pred"]))
    assert all(np.array_equal(a, b) for a, b in zip(rows["pred"], again["pred"], strict=True))
    assert sys.modules[bow_module].CALLS == calls  # features and fits came from the caches


def test_fits_learn_on_the_fit_part_and_keep_predictions_and_test_ids(params):
    rng = np.random.default_rng(0)
    tasks = [_task("a", rng)]
    plans = language.plan_tasks(params, tasks)
    plan = plans[0]
    fit, val = plan.fit_idx, plan.val_idx
    assert not set(fit) & set(val) and len(fit) + len(val) == len(tasks[0].train)
    assert len(val) == round(params.language.validation_fraction * len(tasks[0].train))
    rows, _ = language.tune_encoders(params, tasks)
    assert (rows["n_train"] == len(fit)).all()
    labels, gold = language.truth(plans)
    assert gold == {}
    by_kind = {k: d for k, d in rows.groupby("kind")}
    assert set(by_kind["val"]["test_id"]) == {plan.val.data_id} and (by_kind["val"]["n_test"] == len(val)).all()
    assert set(by_kind["ID"]["test_id"]) == {tasks[0].test.data_id}
    assert set(by_kind["OOD"]["test_id"]) == {tasks[0].ood["words"].data_id}
    assert np.array_equal(labels[plan.val.data_id], tasks[0].train.labels[val])
    for r in rows.itertuples():  # pred: int predictions, one per sample, scored as the row says
        assert r.pred.dtype == np.int64 and len(r.pred) == r.n_test
        assert np.mean(r.pred == labels[r.test_id]) == pytest.approx(r.acc)


def test_spectra_of_fit_rows_read_what_each_classifier_reads(params):
    rng = np.random.default_rng(0)
    tasks = [_task("a", rng)]
    rows, spectra = language.tune_encoders(params, tasks)
    frozen = spectra.set_index("split")
    test = rows[rows["kind"] == "ID"]
    lp = test[test["method"] == "LP"]
    # LP reads the frozen features: its SVE / LSVR equal the frozen features' (authors' variant)
    assert np.allclose(lp["sve"], frozen.loc["a/test", "sve"]) and np.allclose(lp["lsvr"], frozen.loc["a/test", "lsvr"])
    # NMTune reads its head's output: refit the same job, recompute on model.transform
    from nml.models.text_encoders import encode_split

    encoder = language.build_text_encoder(params.language.encoders[0])
    x = encode_split(encoder, tasks[0].train.texts)
    plan = language.plan_tasks(params, tasks)[0]
    nm = [m for m in language.methods(params) if m.label == "NMTune"][0]
    model = nm.build(0).fit(x[plan.fit_idx], tasks[0].train.labels[plan.fit_idx])
    z = model.transform(encode_split(encoder, tasks[0].test.texts))
    row = test[(test["method"] == "NMTune") & (test["seed"] == 0)].iloc[0]
    assert row["sve"] == pytest.approx(singular_value_entropy(z, variant="authors"), rel=1e-5)
    assert row["lsvr"] == pytest.approx(largest_singular_value_ratio(z, variant="authors"), rel=1e-5)
    assert row["sve"] != pytest.approx(frozen.loc["a/test", "sve"], rel=1e-3)


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
        for kind, task, tests in (("val", "t", ["t/val"]), ("ID", "t", ["t1"]), ("ID", "u", ["u1"]),
                                  ("OOD", "t", ["o1", "o2"]), ("OOD", "u", ["o3"])):
            for test in tests:
                base = 0.7 + 0.01 * rng.standard_normal()
                for method, gain in (("LP", 0.0), ("MLP", 0.01), ("NMTune", nm_gain)):
                    out.append({"encoder": "e", "kind": kind, "task": task, "family": task, "test": test,
                                "metric": "accuracy", "method": method, "seed": seed, "score": base + gain})
    return pd.DataFrame(out)


def test_tables_average_over_tests_then_seeds_with_each_ood_family_once():
    rows = _rows(0.05)
    avg = language.average_table(rows)
    assert set(avg["kind"]) == {"ID", "OOD"}  # validation rows are not in the Table 2 analog
    id_nm = avg[(avg["kind"] == "ID") & (avg["method"] == "NMTune")].iloc[0]
    per_seed = rows[(rows["kind"] == "ID") & (rows["method"] == "NMTune")].groupby("seed")["score"].mean()
    assert id_nm["score_mean"] == pytest.approx(100 * per_seed.mean())
    assert id_nm["score_std"] == pytest.approx(100 * per_seed.std(ddof=1))
    ood_nm = avg[(avg["kind"] == "OOD") & (avg["method"] == "NMTune")].iloc[0]
    d = rows[(rows["kind"] == "OOD") & (rows["method"] == "NMTune")]
    fam = d.groupby(["seed", "family"])["score"].mean().groupby("seed").mean()  # family t once, not twice
    assert ood_nm["score_mean"] == pytest.approx(100 * fam.mean())
    assert ood_nm["score_mean"] != pytest.approx(100 * d.groupby("seed")["score"].mean().mean(), abs=1e-6)
    per_task = language.per_task_table(rows)
    assert len(per_task) == 5 * 3 and (per_task["seeds"] == 3).all() and "t/val" not in set(per_task["test"])
    assert set(language.per_task_table(rows, kinds=("val",))["test"]) == {"t/val"}
    both = language.side_by_side(avg)
    assert {"nml (this run)", "paper (GLUE / GLUE-X)"} == set(both["source"])
    assert both[both["source"].str.startswith("paper")]["model"].nunique() == 4


def test_params_validate_the_language_section(tmp_path):
    from nml._infra.schema import ParamsError

    cpu = load_params("cpu", require_data=False)
    assert [e.name for e in cpu.language.encoders] == ["all-minilm-l6-v2", "smollm2-135m"]
    with pytest.raises(ParamsError, match="language.*tasks.*'nope'"):
        load_params("cpu", overrides=["language.tasks=[sentiment, nope]"], require_data=False)
    with pytest.raises(ParamsError, match="unpleasant_max"):
        load_params("cpu", overrides=["language.lexicon.pleasant_min=1.2"], require_data=False)
    with pytest.raises(ParamsError, match="language.encoders"):
        load_params("cpu", overrides=['language.encoders=[{"name": "no-such-encoder"}]'], require_data=False)
    with pytest.raises(ParamsError, match="validation_fraction"):
        load_params("cpu", overrides=["language.validation_fraction=1.0"], require_data=False)
    with pytest.raises(ParamsError, match="party_test_speakers"):  # the old debate split is gone
        load_params("cpu", overrides=["language.party_test_speakers=[KAINE]"], require_data=False)
    assert len(cpu.language.seeds) >= 3 and not cpu.language.probe.standardize and not cpu.language.tuner.standardize
    assert (cpu.language.probe.lr, cpu.language.probe.weight_decay, cpu.language.probe.epochs,
            cpu.language.probe.batch_size) == (0.01, 1e-4, 30, 64)  # the authors' LP command line
    assert (cpu.language.tuner.preset, cpu.language.tuner.epochs, cpu.language.tuner.batch_size) == ("official", 30, 64)
    here = f"data_root={tmp_path}"  # paper's /datasets may not exist on this machine
    paper = load_params("paper", overrides=[here], require_data=False)
    assert paper.language.source == "glue" and "stsb" in paper.language.tasks
    with pytest.raises(ParamsError, match="'sentiment'"):
        load_params("paper", overrides=[here, "language.tasks=[sentiment]"], require_data=False)


def test_party_min_words_sweep_scores_candidates_on_validation(params, tmp_path, monkeypatch):
    from nml.data.text import corpora as text_corpora
    from nml.selection import SWEEPS

    assert SWEEPS["05_party_min_words"] == "nml.chapters.ch05_language.selection:sweep_party_min_words"
    rows = []
    for k in range(8):  # 8 speakers per party, paragraphs of 6 and 20 words
        for party, words in (("democrat", "fair families care"), ("republican", "taxes business freedom")):
            paragraphs = [" ".join([words] * 2) + f" speaker {k} short", " ".join([words] * 6) + f" speaker {k} long text"]
            rows.append({"party": party, "speaker": f"{party} {k}", "text": "\n".join(paragraphs)})
    pd.DataFrame(rows).to_csv(tmp_path / "political_data.csv", index=False)
    pd.DataFrame([{"speaker": s, "statement": f"{s.lower()} says words about the economy today " * 3, "debate": "1st",
                   "party": p} for s, p in (("CLINTON", "Democratic"), ("TRUMP", "Republican")) for _ in range(3)]
                 ).to_csv(tmp_path / "presidential_debates_2016.csv.gz", index=False, compression="gzip")
    monkeypatch.setattr(text_corpora, "corpus_dir", lambda root=None: tmp_path)
    from nml.chapters.ch05_language.selection import sweep_party_min_words

    table = sweep_party_min_words(params, candidates=(5, 15))
    assert table["candidate"].tolist() == ["min_words=5", "min_words=15"]
    assert table["val_score"].between(0, 1).all() and table["chosen"].sum() == 1
    per_text = table["words"] / (table["n_train"] + table["n_val"])
    assert per_text[1] > per_text[0] and per_text[1] >= 15  # min_words=15 keeps only the long paragraphs
    # 6 training speakers a party (2 of 8 to test); cap 8 a class: 8 + 8 short-and-long, 6 + 6 long only
    assert (table["n_train"] + table["n_val"]).tolist() == [16, 12]
