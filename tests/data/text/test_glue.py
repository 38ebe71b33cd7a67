"""GLUE / GLUE-X loaders on tiny files in the real on-disk formats (no network).

The column names, label encodings and file layouts below are written out independently of the
registry in ``nml.data.text.glue`` (as they are on the hub / in the GLUE-X release), so the tests check
the registry against the formats rather than against itself.
"""

from __future__ import annotations

import json

import datasets
import numpy as np
import pandas as pd
import pytest

from nml.data.text.glue import (
    GLUE_TASKS,
    GLUE_X_OOD,
    load_glue_task,
    load_glue_tasks,
    stratified_cap,
    stsb_bins,
    validate_glue_tasks,
)
from nml.data.text.tasks import METRICS

# nyu-mll/glue: text columns and ClassLabel names per config.
GLUE_COLUMNS = {
    "cola": ("sentence",), "sst2": ("sentence",), "mrpc": ("sentence1", "sentence2"),
    "stsb": ("sentence1", "sentence2"), "qqp": ("question1", "question2"),
    "mnli": ("premise", "hypothesis"), "qnli": ("question", "sentence"), "rte": ("sentence1", "sentence2"),
}
GLUE_LABELS = {
    "cola": ["unacceptable", "acceptable"], "sst2": ["negative", "positive"],
    "mrpc": ["not_equivalent", "equivalent"], "qqp": ["not_duplicate", "duplicate"],
    "mnli": ["entailment", "neutral", "contradiction"], "qnli": ["entailment", "not_entailment"],
    "rte": ["entailment", "not_entailment"],
}
GLUE_SPLITS = {"mnli": ("train", "validation_matched", "validation_mismatched")}
STSB_SCORES = [0.0, 0.4, 1.0, 2.5, 3.99, 4.0, 4.6, 5.0]
N_ROWS = 6


def _write(root, folder, split, frame):
    path = root / folder / f"{split}-00000-of-00001.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


def _glue_frame(task, split, n=N_ROWS):
    frame = {c: [f"{task} {split} {c} {i}" for i in range(n)] for c in GLUE_COLUMNS[task]}
    if task == "stsb":
        frame["label"] = STSB_SCORES[:n] if n <= len(STSB_SCORES) else [i % 6 * 0.9 for i in range(n)]
    else:
        frame["label"] = [i % len(GLUE_LABELS[task]) for i in range(n)]
    frame["idx"] = list(range(n))
    return pd.DataFrame(frame)


# GLUE-X OOD sets with a hub source: (folder, split) -> rows, in each dataset's own columns.
OOD_FILES = {
    ("imdb/plain_text", "train"): {"text": ["a dull film", "a fine film"], "label": [0, 1]},
    ("imdb/plain_text", "test"): {"text": ["loved it", "hated it", "so-so, bad"], "label": [1, 0, 0]},
    ("snli/plain_text", "train"): {"premise": ["p0", "p1", "p2"], "hypothesis": ["h0", "h1", "h2"], "label": [0, -1, 2]},
    ("snli/plain_text", "validation"): {"premise": ["p3"], "hypothesis": ["h3"], "label": [1]},
    ("snli/plain_text", "test"): {"premise": ["p4", "p5"], "hypothesis": ["h4", "h5"], "label": [-1, 0]},
    ("sick/data", "train"): {"id": ["1", "2"], "sentence_A": ["A man runs", "A dog sleeps"],
                             "sentence_B": ["A man moves", "A dog runs"], "label": [0, 2],
                             "relatedness_score": [4.5, 2.0], "entailment_AB": ["A_entails_B", "A_contradicts_B"]},
    ("sick/data", "validation"): {"id": ["3"], "sentence_A": ["Kids play"], "sentence_B": ["Kids eat"], "label": [1],
                                  "relatedness_score": [3.0], "entailment_AB": ["A_neutral_B"]},
    ("sick/data", "test"): {"id": ["4"], "sentence_A": ["A cat sits"], "sentence_B": ["A cat is sitting"], "label": [0],
                            "relatedness_score": [4.9], "entailment_AB": ["A_entails_B"]},
    ("scitail/tsv_format", "train"): {"premise": ["s0", "s1"], "hypothesis": ["t0", "t1"], "label": ["entails", "neutral"]},
    ("scitail/tsv_format", "validation"): {"premise": ["s2"], "hypothesis": ["t2"], "label": ["neutral"]},
    ("scitail/tsv_format", "test"): {"premise": ["s3"], "hypothesis": ["t3"], "label": ["entails"]},
    ("hans/plain_text", "train"): {"premise": ["The doctor saw the lawyer", "The judge ran"],
                                   "hypothesis": ["The lawyer saw the doctor", "The judge ran"], "label": [1, 0],
                                   "parse_premise": ["(S ..)", "(S ..)"], "heuristic": ["lexical_overlap", "subsequence"],
                                   "subcase": ["ln_subject/object_swap", "se_PP_on_obj"], "template": ["temp1", "temp2"]},
    ("hans/plain_text", "validation"): {"premise": ["The actor slept"], "hypothesis": ["The actor slept"], "label": [0],
                                        "parse_premise": ["(S ..)"], "heuristic": ["constituent"],
                                        "subcase": ["ce_adverb"], "template": ["temp3"]},
}
GRAMMAR_TEST = pd.DataFrame({"sentence": ['He said "hi" .', "Him went home .", "She reads books ."],
                             "label": [1, 0, 1]})
NEWSQA = [{"question": "Who won?", "sentence": "The home team won.", "label": "entailment"},
          {"question": "Where is it?", "sentence": "It rained.", "label": "not_entailment"}]


@pytest.fixture(autouse=True)
def no_hub(monkeypatch):
    """Every load must be a local parquet read unless a test replaces this guard."""
    real = datasets.load_dataset

    def guarded(path, *args, **kwargs):
        if path != "parquet":
            raise AssertionError(f"hub reached: load_dataset({path!r}, {args}, {kwargs})")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", guarded)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A data_root holding every ID task and OOD set in its on-disk layout."""
    root = tmp_path_factory.mktemp("data_root")
    for task in GLUE_COLUMNS:
        for split in GLUE_SPLITS.get(task, ("train", "validation")):
            _write(root, f"glue/{task}", split, _glue_frame(task, split))
    for (folder, split), rows in OOD_FILES.items():
        _write(root, folder, split, pd.DataFrame(rows))
    (root / "glue_x").mkdir()
    # GLUE-style TSV: tab-separated, unquoted (a sentence may hold a bare '"')
    lines = ["sentence\tlabel", *(f"{s}\t{y}" for s, y in zip(GRAMMAR_TEST.sentence, GRAMMAR_TEST.label, strict=True))]
    (root / "glue_x" / "grammar_test.tsv").write_text("\n".join(lines) + "\n")
    (root / "glue_x" / "newsqa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in NEWSQA))
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("hf_cache")


def test_registry_matches_the_paper():
    assert list(GLUE_TASKS) == ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte"]
    assert {t: s.ood for t, s in GLUE_TASKS.items()} == {
        "cola": ("grammar_test",), "sst2": ("imdb",), "mrpc": ("qqp",), "stsb": (), "qqp": (),
        "mnli": ("mnli_mismatched", "snli", "sick"), "qnli": ("newsqa",), "rte": ("scitail", "hans")}
    assert {t: s.metric for t, s in GLUE_TASKS.items()} == {
        "cola": "mcc", "sst2": "accuracy", "mrpc": "accuracy", "stsb": "pearson", "qqp": "accuracy",
        "mnli": "accuracy", "qnli": "accuracy", "rte": "accuracy"}
    for name, spec in GLUE_TASKS.items():
        assert (spec.hub_name, spec.hub_config, spec.text_columns) == ("nyu-mll/glue", name, GLUE_COLUMNS[name])
        assert spec.test_split == ("validation_matched" if name == "mnli" else "validation")
        if name != "stsb":
            assert list(spec.classes) == GLUE_LABELS[name]
    for name, ood in GLUE_X_OOD.items():
        task = GLUE_TASKS[ood.task]
        assert name in task.ood and ood.metric == task.metric and ood.metric in METRICS
        assert set(ood.label_map.values()) <= set(task.classes)


def test_unknown_task_is_rejected_before_loading(tmp_path):
    with pytest.raises(ValueError, match=r"'nope'.*'cola'.*'rte'"):
        validate_glue_tasks(["cola", "nope"])
    with pytest.raises(ValueError, match="nope"):
        load_glue_tasks(["cola", "nope"], tmp_path)  # validated first: cola is never read (no_hub would fail)
    with pytest.raises(ValueError, match="nope"):
        load_glue_task("nope", tmp_path)
    assert validate_glue_tasks("rte") == ["rte"]


@pytest.mark.parametrize("task", [t for t in GLUE_COLUMNS if t != "stsb"])
def test_id_task_texts_and_labels(root, cache, task):
    t = load_glue_task(task, root, ood=(), cache_dir=cache)
    test_split = "validation_matched" if task == "mnli" else "validation"
    assert t.name == task and t.classes == GLUE_LABELS[task] and t.ood == {}
    for split, source in ((t.train, "train"), (t.test, test_split)):
        expected = _glue_frame(task, source)
        cols = GLUE_COLUMNS[task]
        want = list(expected[cols[0]]) if len(cols) == 1 else list(zip(expected[cols[0]], expected[cols[1]], strict=True))
        assert split.texts == want
        assert split.is_pair == (len(cols) == 2)
        np.testing.assert_array_equal(split.labels, expected["label"].to_numpy())
        assert split.scores is None
    assert (t.train.name, t.test.name) == (f"{task}/train", f"{task}/test")


def test_stsb_is_binned_into_five_classes_with_raw_scores_kept(root, cache):
    t = load_glue_task("stsb", root, cache_dir=cache)
    assert t.metric == "pearson" and len(t.classes) == 5 and t.ood == {} and t.ood_metric == {}
    np.testing.assert_array_equal(t.train.labels, [0, 0, 1, 2, 3, 4])
    np.testing.assert_allclose(t.train.scores, STSB_SCORES[:N_ROWS])
    assert t.train.texts[0] == ("stsb train sentence1 0", "stsb train sentence2 0")
    np.testing.assert_array_equal(stsb_bins(np.array([0.0, 0.99, 1.0, 4.0, 4.99, 5.0])), [0, 0, 1, 4, 4, 4])


def test_metrics_per_task_and_ood_set(root, cache):
    tasks = load_glue_tasks(list(GLUE_TASKS), root, cache_dir=cache)
    assert {n: t.metric for n, t in tasks.items()} == {n: s.metric for n, s in GLUE_TASKS.items()}
    assert tasks["cola"].metric_of("grammar_test") == "mcc"
    assert tasks["mnli"].ood_metric == {"mnli_mismatched": "accuracy", "snli": "accuracy", "sick": "accuracy"}
    assert {n: list(t.ood) for n, t in tasks.items()} == {n: list(s.ood) for n, s in GLUE_TASKS.items()}


def test_imdb_concatenates_train_and_test_for_sst2(root, cache):
    ood = load_glue_task("sst2", root, cache_dir=cache).ood["imdb"]
    assert ood.name == "sst2/imdb"
    assert ood.texts == ["a dull film", "a fine film", "loved it", "hated it", "so-so, bad"]
    np.testing.assert_array_equal(ood.labels, [0, 1, 1, 0, 0])  # neg/pos = SST-2's negative/positive


def test_qqp_maps_to_mrpc(root, cache):
    t = load_glue_task("mrpc", root, cache_dir=cache)
    ood = t.ood["qqp"]
    train, val = _glue_frame("qqp", "train"), _glue_frame("qqp", "validation")
    assert ood.texts == [*zip(train.question1, train.question2, strict=True), *zip(val.question1, val.question2, strict=True)]
    assert [t.classes[k] for k in ood.labels[:2]] == ["not_equivalent", "equivalent"]


def test_mnli_ood_sets(root, cache):
    t = load_glue_task("mnli", root, cache_dir=cache)
    mm = _glue_frame("mnli", "validation_mismatched")
    assert t.ood["mnli_mismatched"].texts == list(zip(mm.premise, mm.hypothesis, strict=True))
    assert t.test.texts[0][0] == "mnli validation_matched premise 0"
    snli = t.ood["snli"]  # -1 ("no gold label") dropped; splits train, validation, test in that order
    assert snli.texts == [("p0", "h0"), ("p2", "h2"), ("p3", "h3"), ("p5", "h5")]
    assert [t.classes[k] for k in snli.labels] == ["entailment", "contradiction", "neutral", "entailment"]
    sick = t.ood["sick"]
    assert sick.texts[0] == ("A man runs", "A man moves") and len(sick) == 4
    assert [t.classes[k] for k in sick.labels] == ["entailment", "contradiction", "neutral", "entailment"]


def test_rte_ood_sets(root, cache):
    t = load_glue_task("rte", root, cache_dir=cache)
    scitail = t.ood["scitail"]
    assert scitail.texts == [("s0", "t0"), ("s1", "t1"), ("s2", "t2"), ("s3", "t3")]
    assert [t.classes[k] for k in scitail.labels] == ["entailment", "not_entailment", "not_entailment", "entailment"]
    hans = t.ood["hans"]
    assert hans.texts[0] == ("The doctor saw the lawyer", "The lawyer saw the doctor")
    assert [t.classes[k] for k in hans.labels] == ["not_entailment", "entailment", "entailment"]


def test_local_glue_x_files(root, cache):
    cola = load_glue_task("cola", root, cache_dir=cache)
    gt = cola.ood["grammar_test"]
    assert gt.texts == list(GRAMMAR_TEST.sentence) and gt.texts[0] == 'He said "hi" .'
    assert [cola.classes[k] for k in gt.labels] == ["acceptable", "unacceptable", "acceptable"]
    qnli = load_glue_task("qnli", root, cache_dir=cache)
    news = qnli.ood["newsqa"]
    assert news.texts == [("Who won?", "The home team won."), ("Where is it?", "It rained.")]
    assert [qnli.classes[k] for k in news.labels] == ["entailment", "not_entailment"]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".tsv"])
def test_grammar_test_file_formats_and_string_labels(tmp_path, cache, suffix):
    for split in ("train", "validation"):
        _write(tmp_path, "glue/cola", split, _glue_frame("cola", split))
    frame = pd.DataFrame({"sentence": ["Good , it is .", "Bad it"], "label": ["acceptable", "unacceptable"]})
    path = tmp_path / "glue_x" / f"grammar_test{suffix}"
    path.parent.mkdir()
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".tsv":
        frame.to_csv(path, sep="\t", index=False)
    else:
        frame.to_json(path, orient="records", lines=True)
    gt = load_glue_task("cola", tmp_path, cache_dir=cache).ood["grammar_test"]
    assert gt.texts == ["Good , it is .", "Bad it"]
    np.testing.assert_array_equal(gt.labels, [1, 0])


def test_missing_local_glue_x_file_names_the_path(tmp_path, cache):
    for split in ("train", "validation"):
        _write(tmp_path, "glue/qnli", split, _glue_frame("qnli", split))
    with pytest.raises(FileNotFoundError, match=r"glue_x/newsqa\.tsv") as err:
        load_glue_task("qnli", tmp_path, cache_dir=cache)
    assert str(tmp_path) in str(err.value) and "newsqa.jsonl" in str(err.value)
    assert load_glue_task("qnli", tmp_path, ood=(), cache_dir=cache).ood == {}  # skipping it works


def test_local_folder_without_split_is_an_error_not_a_download(tmp_path, cache):
    _write(tmp_path, "glue/rte", "train", _glue_frame("rte", "train"))
    with pytest.raises(FileNotFoundError, match=r"validation-\*\.parquet"):
        load_glue_task("rte", tmp_path, ood=(), cache_dir=cache)


def test_unmapped_ood_label_and_unknown_ood_name_raise(tmp_path, cache):
    for split in ("train", "validation"):
        _write(tmp_path, "glue/rte", split, _glue_frame("rte", split))
    for split in ("train", "validation", "test"):
        _write(tmp_path, "scitail/tsv_format", split,
               pd.DataFrame({"premise": ["p"], "hypothesis": ["h"], "label": ["contradicts"]}))
    with pytest.raises(ValueError, match="contradicts"):
        load_glue_task("rte", tmp_path, ood=("scitail",), cache_dir=cache)
    with pytest.raises(ValueError, match="snli"):
        load_glue_task("rte", tmp_path, ood=("snli",), cache_dir=cache)


def test_hub_parquet_with_classlabel_features(tmp_path, cache):
    """Files as ``datasets`` writes them (ClassLabel in the schema metadata) read as integer labels."""
    features = datasets.Features({"sentence": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=GLUE_LABELS["cola"]),
                                  "idx": datasets.Value("int32")})
    for split in ("train", "validation"):
        path = tmp_path / "glue" / "cola" / f"{split}-00000-of-00001.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        datasets.Dataset.from_pandas(_glue_frame("cola", split), features=features).to_parquet(str(path))
    t = load_glue_task("cola", tmp_path, ood=(), cache_dir=cache)
    np.testing.assert_array_equal(t.train.labels, [0, 1, 0, 1, 0, 1])


def test_stratified_cap_is_deterministic_and_proportional():
    labels = np.array([0] * 30 + [1] * 10 + [2] * 20)
    idx = stratified_cap(labels, 12, seed=3)
    np.testing.assert_array_equal(idx, stratified_cap(labels, 12, seed=3))
    assert np.all(np.diff(idx) > 0)
    assert np.bincount(labels[idx]).tolist() == [6, 2, 4]
    assert not np.array_equal(idx, stratified_cap(labels, 12, seed=4))
    assert np.bincount(labels[stratified_cap(labels, 7, seed=0)]).tolist() == [4, 1, 2]  # 3.5/1.17/2.33
    np.testing.assert_array_equal(stratified_cap(labels, None, 0), np.arange(60))
    np.testing.assert_array_equal(stratified_cap(labels, 100, 0), np.arange(60))


def test_capping_through_the_loader(tmp_path, cache):
    train = pd.DataFrame({"sentence": [f"s{i}" for i in range(40)], "label": [0] * 30 + [1] * 10, "idx": range(40)})
    _write(tmp_path, "glue/sst2", "train", train)
    _write(tmp_path, "glue/sst2", "validation", _glue_frame("sst2", "validation"))
    for split, rows in OOD_FILES.items():
        if split[0].startswith("imdb"):
            _write(tmp_path, *split, pd.DataFrame(rows))
    a = load_glue_task("sst2", tmp_path, max_train=8, max_test=2, max_ood=2, seed=1, cache_dir=cache)
    b = load_glue_task("sst2", tmp_path, max_train=8, max_test=2, max_ood=2, seed=1, cache_dir=cache)
    assert a.train.texts == b.train.texts and a.ood["imdb"].texts == b.ood["imdb"].texts
    assert np.bincount(a.train.labels).tolist() == [6, 2]
    assert len(a.test) == 2 and np.bincount(a.ood["imdb"].labels).tolist() == [1, 1]
    assert all(train.label[int(s[1:])] == y for s, y in zip(a.train.texts, a.train.labels, strict=True))


@pytest.mark.parametrize("task", ["rte", "mnli"])
def test_hub_fallback_uses_the_registry(monkeypatch, tmp_path, task):
    calls = []

    def fake_load_dataset(path, name=None, *, split=None, **kwargs):
        calls.append((path, name, split))
        cols = (GLUE_COLUMNS[name] if path == "nyu-mll/glue"
                else next(o.text_columns for o in GLUE_X_OOD.values() if o.hub_name == path))
        label = {"allenai/scitail": "entails"}.get(path, 0)
        return datasets.Dataset.from_dict({**{c: [f"{path} {split}"] for c in cols}, "label": [label]})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    data_root = None if task == "mnli" else tmp_path / "empty"  # no local folder: everything from the hub
    t = load_glue_task(task, data_root)
    expected = {
        "rte": [("nyu-mll/glue", "rte", "train"), ("nyu-mll/glue", "rte", "validation"),
                ("allenai/scitail", "tsv_format", "train"), ("allenai/scitail", "tsv_format", "validation"),
                ("allenai/scitail", "tsv_format", "test"),
                ("jhu-cogsci/hans", "plain_text", "train"), ("jhu-cogsci/hans", "plain_text", "validation")],
        "mnli": [("nyu-mll/glue", "mnli", "train"), ("nyu-mll/glue", "mnli", "validation_matched"),
                 ("nyu-mll/glue", "mnli", "validation_mismatched"),
                 ("stanfordnlp/snli", "plain_text", "train"), ("stanfordnlp/snli", "plain_text", "validation"),
                 ("stanfordnlp/snli", "plain_text", "test"),
                 ("RobZamp/sick", None, "train"), ("RobZamp/sick", None, "validation"), ("RobZamp/sick", None, "test")],
    }[task]
    assert calls == expected
    ood_rows = {o: len(GLUE_X_OOD[o].splits) for o in GLUE_TASKS[task].ood}
    assert {o: len(s) for o, s in t.ood.items()} == ood_rows
    assert t.train.texts[0][0] == "nyu-mll/glue train"


def test_chapter_05_runs_the_paper_profile_on_a_local_glue_tree(root, tmp_path, monkeypatch):
    """The paper profile's language section, end to end on tiny GLUE / GLUE-X files in their real
    layout, with a called-only encoder: each task is scored with its own metric."""
    import sys
    import textwrap

    from nml.chapters.ch05_language import run as language
    from nml.config import load_params

    (tmp_path / "hash_api.py").write_text(textwrap.dedent('''
        import zlib
        import numpy as np
        def embed(texts):
            out = np.zeros((len(texts), 16), dtype=np.float32)
            for i, t in enumerate(texts):
                for w in t.split():
                    out[i, zlib.crc32(w.encode()) % 16] += 1.0
            return out
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("NML_HOME", str(tmp_path / "home"))
    params = load_params("paper", overrides=[
        f"data_root={root}", "language.tasks=[cola, stsb, rte]", "language.seeds=[0]",
        'language.encoders=[{"name": "callable:hash_api:embed", "label": "api"}]',
        "language.probe={epochs: 2, batch_size: 4}", "language.tuner={preset: official, epochs: 2, batch_size: 4}",
        "device=cpu"], require_data=False)
    tasks = language.load_tasks(params)
    assert [t.name for t in tasks] == ["cola", "stsb", "rte"]
    rows, _ = language.tune_encoders(params, tasks)
    metrics = rows.drop_duplicates(["task", "test"]).set_index("test")["metric"].to_dict()
    assert metrics == {"cola/val": "mcc", "cola/test": "mcc", "grammar_test": "mcc", "stsb/val": "pearson",
                       "stsb/test": "pearson", "rte/val": "accuracy", "rte/test": "accuracy", "scitail": "accuracy",
                       "hans": "accuracy"}
    # the tiny STS-B train split leaves one sample for validation: no Pearson score there (NaN)
    assert set(rows.loc[rows["score"].isna(), "test"]) <= {"stsb/val"}
    assert rows["score"].dropna().between(-1, 1).all() and set(rows["method"]) == {"LP", "MLP", "NMTune"}
    sys.modules.pop("hash_api", None)
