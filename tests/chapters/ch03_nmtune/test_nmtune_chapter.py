"""Chapter 03's machinery: methods from params, task grouping, cached and parallel fits, runtime."""

import numpy as np
import pandas as pd
import pytest
import torch

from nml.chapters import fit_jobs
from nml.chapters.ch02_spectral.run import DownstreamData, Split
from nml.chapters.ch03_nmtune import run as nmtune
from nml.chapters.ch03_nmtune.config import TunerConfig
from nml.config import load_params
from nml.estimators.frozen import NMTUNE_PRESETS


@pytest.fixture(scope="module")
def cpu_params():
    return load_params("cpu", require_data=False)


def test_methods_follow_the_params(cpu_params):
    methods = nmtune.main_methods(cpu_params)
    assert [m.label for m in methods] == ["LP", "MLP", "NMTune"] == nmtune.METHOD_ORDER
    lp, mlp, nm = (dict(m.kwargs) for m in methods)
    assert lp["lr"] == cpu_params.spectral.probe.lr and lp["batch_size"] == cpu_params.spectral.probe.batch_size
    # MLP tuning shares the NMTune preset's head and optimiser, overridden like NMTune's
    preset = NMTUNE_PRESETS[cpu_params.nmtune.tuner.preset]
    assert mlp["head"] == preset["head"] and mlp["hidden_mult"] == preset["hidden_mult"]
    assert nm["preset"] == "official"
    built = methods[2].build(seed=3)
    assert (methods[1].build(seed=3).get_params()["epochs"] == built.resolved_params()["epochs"]
            == cpu_params.nmtune.tuner.epochs)
    assert built.seed == 3 and built.resolved_params()["w_covariance"] == preset["w_covariance"]
    with pytest.raises(KeyError, match="unknown method"):
        nmtune.method_by_name(cpu_params, "svm")


def test_ablation_covers_both_tables_and_the_other_preset(cpu_params):
    a = cpu_params.nmtune.ablation
    methods = nmtune.ablation_methods(cpu_params)
    assert len(methods) == len(a.heads) + len(a.loss_weights) + 1
    # rows that repeat the main configuration share its cache key: computed once
    main = nmtune.main_methods(cpu_params)[2]
    repeats = [m for m in methods if m.kwargs == main.kwargs]
    assert [m.label for m in repeats] == ["head depth 2, relu", "weights 1/0.04/0.001"]
    assert methods[-1].label == "paper preset" and dict(methods[-1].kwargs)["preset"] == "paper"
    off = [m for m in methods if m.label == "weights 0/0/0"][0]
    assert dict(off.kwargs)["w_consistency"] == 0 and dict(off.kwargs)["w_dominant_sv"] == 0


def test_tasks_group_id_and_ood_by_training_domain(cpu_params):
    tasks = nmtune.tasks(cpu_params)
    by_train = {t.train: t.tests for t in tasks}
    assert ("ID", "mnist-5k", "mnist-5k") in by_train["mnist-5k"]
    assert ("OOD", "from-mnist-5k", "uci-digits") in by_train["mnist-5k"]
    assert all(k == "OOD" for k, _, _ in by_train["fashion-mnist-heldout"])
    limited = {t.train: t.tests for t in nmtune.tasks(cpu_params, ood_tests_per_pairing=1)}
    assert len(limited["fashion-mnist-heldout"]) == 1
    assert all(k == "ID" for t in nmtune.tasks(cpu_params, id_only=True) for k, _, _ in t.tests)


def _split(domain, split, n, d=6, seed=0, n_classes=3):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    x = torch.from_numpy(rng.normal(size=(n, 1, 4, 4)).astype(np.float32))
    return Split(domain, split, x, y, f"{domain}-{split}-{seed}")


def test_subsample_caps_each_class_and_renames_the_data():
    data = DownstreamData({("a", "train"): _split("a", "train", 30), ("a", "test"): _split("a", "test", 12)}, "t")
    small = nmtune.subsample(data, 4, None, seed=0)
    tr = small.get("a", "train")
    assert np.bincount(tr.y).tolist() == [4, 4, 4] and len(tr.x) == 12
    assert tr.data_id != data.get("a", "train").data_id
    assert small.get("a", "test") is data.get("a", "test")


def _blobs(n, seed, d=8, n_classes=3):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    centers = rng.normal(scale=3.0, size=(n_classes, d))
    return (centers[y] + rng.normal(size=(n, d))).astype(np.float32), y


def _jobs(methods, seeds=(0,)):
    x, y = _blobs(90, 0)
    xt, yt = _blobs(45, 1)
    feats = {("a", "train"): x, ("a", "test"): xt, ("b", "test"): xt[:20]}
    data = DownstreamData({("a", "train"): Split("a", "train", None, y, "a"), ("a", "test"): Split("a", "test", None, yt, "at"),
                           ("b", "test"): Split("b", "test", None, yt[:20], "bt")}, "t")
    tasks = [nmtune.Task("a", [("ID", "a", "a"), ("OOD", "from-a", "b")])]
    return nmtune.jobs_for(feats, data, tasks, methods, seeds, {"track": "supervised", "gamma": 0.0, "seed": 0})


def _fast_methods():
    return [nmtune.Method("LP", "lp", (("epochs", 3),)),
            nmtune.nmtune_method(TunerConfig(preset="official", epochs=2, batch_size=32))]


def test_fit_results_are_cached_and_parallel_matches_serial(nml_home, monkeypatch):
    jobs = _jobs(_fast_methods(), seeds=(0, 1))
    serial = nmtune.run_jobs(jobs, n_jobs=1)
    assert len(serial) == 2 * 2 * 2  # methods × seeds × tests
    assert set(serial["kind"]) == {"ID", "OOD"} and serial["acc"].between(0, 1).all()
    assert {"sve", "lsvr", "macro_f1", "fit_seconds", "tuner_seed", "train_domain"} <= set(serial.columns)

    def no_refit(job):
        raise AssertionError("a cached fit was recomputed")

    monkeypatch.setattr(fit_jobs, "fit_and_score", no_refit)
    monkeypatch.setattr(fit_jobs, "fit_many_and_score", no_refit)
    warm = nmtune.run_jobs(jobs, n_jobs=1)
    pd.testing.assert_frame_equal(serial, warm)
    monkeypatch.undo()
    # a fresh cache, fitted by two worker processes: the same numbers (fit_seconds aside)
    monkeypatch.setenv("NML_HOME", str(nml_home.parent / "other_home"))
    parallel = nmtune.run_jobs(jobs, n_jobs=2)
    cols = [c for c in serial.columns if c != "fit_seconds"]
    pd.testing.assert_frame_equal(serial[cols], parallel[cols])


def test_job_key_depends_on_data_method_and_seed():
    a, b = _jobs(_fast_methods()[:1], seeds=(0, 1))
    assert a.key() != b.key()  # seed
    assert a.key() == _jobs(_fast_methods()[:1], seeds=(0,))[0].key()  # stable
    c = nmtune.Job(a.meta, a.method, a.seed, a.x_train + 1, a.y_train, a.tests)
    assert c.key() != a.key()  # feature content
    d = nmtune.Job(a.meta, a.method.with_kwargs(epochs=4), a.seed, a.x_train, a.y_train, a.tests)
    assert d.key() != a.key()  # method settings


def test_noisy_labels_reach_the_training_split_only():
    x, y = _blobs(60, 0)
    feats = {("a", "train"): x, ("a", "test"): x}
    data = DownstreamData({("a", "train"): Split("a", "train", None, y, "a"), ("a", "test"): Split("a", "test", None, y, "a")}, "t")

    def flip_all(labels, seed):
        return (labels + 1) % 3

    (job,) = nmtune.jobs_for(feats, data, [nmtune.Task("a", [("ID", "a", "a")])], _fast_methods()[:1], [0], {}, flip_all)
    assert (job.y_train != y).all()
    assert (job.tests[0][4] == y).all()


def test_measure_runtime_times_both_ways_on_the_same_data():
    torch.manual_seed(0)
    encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8))
    images = torch.rand(40, 1, 4, 4)
    y = np.arange(40) % 2
    table = nmtune.measure_runtime(encoder, images, y, _fast_methods(), epochs=2, augment=True, label="toy")
    assert list(table["method"]) == ["LP", "NMTune"]
    assert (table[["extract_s", "tune_cached_s", "encoder_per_batch_s"]] > 0).all().all()
    # the two-view tuner's cached path also pays for extracting its bank of augmented views
    assert list(table["views"]) == [1, 2] and table["view_bank_s"].iloc[0] == 0 and table["view_bank_s"].iloc[1] > 0
    np.testing.assert_allclose(table["cached_total_s"],
                               table["extract_s"] + table["view_bank_s"] + table["tune_cached_s"])
    np.testing.assert_allclose(table["speedup_cached"], table["encoder_per_batch_s"] / table["cached_total_s"])


def test_runtime_table_is_measured_once_per_machine_then_read(nml_home_with_assets, monkeypatch):
    from types import SimpleNamespace

    from nml._infra import machine

    params = load_params("smoke")
    task = params.nmtune.runtime.task
    x = torch.rand(30, 1, 8, 8)
    data = DownstreamData({(task, "train"): Split(task, "train", x, np.arange(30) % 3, "t")}, "t")
    torch.manual_seed(0)
    backbone = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 8))
    ck = SimpleNamespace(spec=SimpleNamespace(track="supervised", noise_ratio=0.0), backbone=backbone)
    monkeypatch.setattr(params.nmtune.runtime, "encoders", ["checkpoint"])
    measured = []

    def fake_measure(encoder, images, y, methods, **options):
        measured.append(options["label"])
        return pd.DataFrame([{"encoder": options["label"], "speedup_cached": 3.0}])

    monkeypatch.setattr(nmtune, "measure_runtime", fake_measure)
    first = nmtune.runtime([ck], data, params)
    assert nmtune.runtime([ck], data, params).equals(first) and len(measured) == 1  # read back, not measured
    monkeypatch.setattr(machine, "cpu_model", lambda: "another CPU")
    nmtune.runtime([ck], data, params)
    assert len(measured) == 2  # another machine measures its own


def test_summary_means_over_tasks_then_seeds():
    rows = pd.DataFrame({
        "method": ["LP"] * 4, "kind": ["ID"] * 4, "seed": [0, 0, 1, 1],
        "acc": [0.5, 0.7, 0.8, 1.0], "macro_f1": [0.5] * 4, "sve": [1.0] * 4, "lsvr": [2.0] * 4,
    })
    s = nmtune.summary(rows, ["method"]).iloc[0]
    assert s["acc_mean"] == pytest.approx(0.75) and s["acc_std"] == pytest.approx(np.std([0.6, 0.9], ddof=1))
    assert s["seeds"] == 2


def test_one_fit_serves_two_sections_with_their_own_labels(nml_home):
    (job,) = _jobs(_fast_methods()[:1])
    twin = nmtune.Job({**job.meta, "downstream_noise": 0.0}, job.method.with_kwargs("LP again"), job.seed,
                      job.x_train, job.y_train, job.tests)
    assert twin.key() == job.key()
    rows = nmtune.run_jobs([job, twin])
    assert list(rows["method"]) == ["LP", "LP", "LP again", "LP again"]
    assert rows["downstream_noise"].isna().tolist() == [True, True, False, False]
    assert rows.loc[0, "acc"] == rows.loc[2, "acc"]


def test_lp_spectrum_in_03_equals_chapter_02(nml_home, cpu_params):
    """The Fig. 5 analog reads one representation family with one variant: LP's SVE / LSVR at a
    checkpoint are chapter 02's numbers for the same features."""
    from types import SimpleNamespace

    from nml.chapters.ch02_spectral import run as spectral
    from nml.chapters.ch02_spectral.config import OODPairing

    torch.manual_seed(0)
    backbone = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 12), torch.nn.ReLU()).eval()
    ck = SimpleNamespace(spec=SimpleNamespace(track="supervised", noise_ratio=0.0, seed=0, key=lambda: "toy-ck"),
                         backbone=backbone)
    rng = np.random.default_rng(0)

    def split(domain, name, n):
        x = torch.from_numpy(rng.normal(size=(n, 1, 4, 4)).astype(np.float32))
        return Split(domain, name, x, rng.integers(0, 3, n), f"{domain}-{name}")

    data = DownstreamData({("a", "train"): split("a", "train", 60), ("a", "test"): split("a", "test", 30),
                           ("b", "test"): split("b", "test", 30)}, "toy")
    s = cpu_params.spectral.model_copy(update={"id_tasks": ["a"], "ood": [OODPairing(name="p", train="a", test=["b"])],
                                               "probe": cpu_params.spectral.probe.model_copy(update={"epochs": 2})})
    n = cpu_params.nmtune.model_copy(update={"methods": ["lp"], "n_jobs": 1})
    params = cpu_params.model_copy(update={"spectral": s, "nmtune": n})
    rows02, _ = spectral._evaluate_checkpoint(ck, data, params)
    rows03 = nmtune.tune_checkpoints([ck], data, params)
    ours = rows03[rows03["method"] == "LP"].set_index("test_domain")
    for r in rows02:
        assert ours.loc[r["test_domain"], "sve"] == pytest.approx(r["sve"], rel=1e-9)
        assert ours.loc[r["test_domain"], "lsvr"] == pytest.approx(r["lsvr"], rel=1e-9)
        assert ours.loc[r["test_domain"], "acc"] == pytest.approx(r["acc"])  # the same probe, too
