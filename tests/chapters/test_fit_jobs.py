"""The fit job chapters 03 and 05 share (``nml.chapters.fit_jobs``): its cache keys are pinned, so a
refactor that changes them (and so orphans every cached fit) fails here."""

import numpy as np
import pandas as pd
import pytest

from nml.chapters import fit_jobs
from nml.chapters.ch03_nmtune import run as nmtune
from nml.chapters.ch05_language import run as language


def _blobs(n, seed, d=8, k=3):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    centers = rng.normal(scale=3.0, size=(k, d))
    return (centers[y] + rng.normal(size=(n, d))).astype(np.float32), y


LP = nmtune.Method("LP", "lp", (("epochs", 3),))
TWO_VIEWS = nmtune.Method("NMTune", "nmtune", (("epochs", 2), ("n_views", 2), ("preset", "official")))


def _nmtune_jobs():
    x, y = _blobs(90, 0)
    xt, yt = _blobs(45, 1)
    tests = [("ID", "a", "a", xt, yt, "at"), ("OOD", "from-a", "b", xt[:20], yt[:20], "bt")]
    views = np.stack([x + 0.01 * k for k in range(4)], 1)
    meta = {"track": "supervised", "gamma": 0.0, "seed": 0, "train_domain": "a"}
    return [nmtune.Job(meta, LP, 0, x, y, tests),
            nmtune.Job(meta, LP, 1, x, y, tests, views, "raw"),  # LP reads no views: they stay out of the key
            nmtune.Job({"encoder": "e"}, TWO_VIEWS, 0, x, (y + 1) % 3, tests, views)]


def _language_jobs():
    x, y = _blobs(90, 0)
    xt, yt = _blobs(45, 1)
    tests = [language.TextTest("val", "t/val", "accuracy", xt[:10], yt[:10], None, "tv"),
             language.TextTest("ID", "t/test", "mcc", xt, yt, None, "tt"),
             language.TextTest("OOD", "o", "pearson", xt[:20], yt[:20], np.linspace(0, 1, 20), "o")]
    return [language.TextJob({"encoder": "enc", "task": "t"}, LP, 0, x, y, tests),
            language.TextJob({"encoder": "enc", "task": "t"}, TWO_VIEWS, 2, x, y, tests[1:])]


# Pinned at code version 3 of both chapters (fits trained as one model, issue 13); a key may change
# only with a deliberate code-version bump, never by a refactoring.
NMTUNE_KEYS = ["b990a3df8ccc8703b1c655f2", "92a777d4231ee48adc5c3009", "5645b9e31a1419974577ff88"]
LANGUAGE_KEYS = ["01898ad95f921d5531b17ae3", "ebc93909df9509ceeae39d02"]


def test_cache_keys_are_those_of_the_chapters_own_jobs():
    assert [j.key() for j in _nmtune_jobs()] == NMTUNE_KEYS
    assert [j.key() for j in _language_jobs()] == LANGUAGE_KEYS


def test_key_ignores_who_asked_and_the_label():
    job = _nmtune_jobs()[0]
    twin = nmtune.Job({"other": 1}, LP.with_kwargs("LP again"), job.seed, job.x_train, job.y_train, job.tests)
    assert twin.key() == job.key()


def test_rows_lead_with_the_chapters_columns_then_the_shared_scores(nml_home):
    shared = ["acc", "macro_f1", "sve", "lsvr", "fit_seconds", "n_train", "n_test", "pred"]
    rows = fit_jobs.fit_and_score(_nmtune_jobs()[0])
    assert list(rows[0]) == ["track", "gamma", "seed", "train_domain", "method", "tuner_seed", "kind", "task",
                             "test_domain", "test_id", *shared]
    assert [r["kind"] for r in rows] == ["ID", "OOD"] and rows[0]["pred"].dtype == np.int16
    text = fit_jobs.fit_and_score(_language_jobs()[0])
    assert list(text[0]) == ["kind", "test", "test_id", "metric", "score", *shared]
    assert [r["kind"] for r in text] == ["val", "ID", "OOD"] and text[0]["pred"].dtype == np.int64
    assert text[0]["score"] == text[0]["acc"]  # the val set's metric is accuracy


def test_one_run_holds_one_kind_of_job(nml_home):
    with pytest.raises(ValueError, match="several kinds"):
        fit_jobs.run_fit_jobs([*_nmtune_jobs()[:1], *_language_jobs()[:1]])
    assert fit_jobs.run_fit_jobs([]) == []
    rows = language.run_jobs(_language_jobs()[:1])
    assert isinstance(rows, pd.DataFrame) and (rows["seed"] == 0).all()
    assert (nml_home / "features" / "language").is_dir()


def test_one_method_order_for_both_chapters_figures():
    from nml.chapters.ch03_nmtune import plots as plots03
    from nml.chapters.ch05_language import plots as plots05

    assert plots03.METHOD_ORDER is nmtune.METHOD_ORDER and plots05.METHOD_ORDER is nmtune.METHOD_ORDER
