"""Chapter 04's logic: the turn params, the noise it injects, the validation split, method settings,
job keys, what a run reports."""

import numpy as np
import pandas as pd
import pytest
import torch

from nml._infra.schema import ParamsError
from nml.chapters.ch02_spectral.run import Split
from nml.chapters.ch04_turn import run as turn_chapter
from nml.chapters.ch04_turn.config import LabelNoise
from nml.config import load_params, load_raw, validate_params
from nml.noise import superclass_mapping


@pytest.fixture(scope="module")
def cpu_params():
    return load_params("cpu", require_data=False)


def _turn_error(edit) -> str:
    raw, _ = load_raw("cpu")
    edit(raw["turn"])
    with pytest.raises(ParamsError) as info:
        validate_params(raw, "test.yaml")
    return str(info.value)


def test_turn_params_are_checked_before_anything_runs():
    assert "turn.methods" in _turn_error(lambda t: t.update(methods=["ce-fft", "mixup"]))
    assert "turn.noise.0.kind" in _turn_error(lambda t: t["noise"][0].update(kind="pairflip")).replace("[0]", ".0")
    msg = _turn_error(lambda t: t["components"].update(backbones=["resnet-x"]))
    assert "turn.components.backbones" in msg and "resnet-x" in msg
    msg = _turn_error(lambda t: t["backbones"].append({"name": "opennsfw"}))
    assert "opennsfw" in msg and "torch module" in msg
    assert "unknown encoder 'no-such-net'" in _turn_error(lambda t: t["backbones"].append({"name": "no-such-net"}))
    assert "checkpoint_seed=7" in _turn_error(lambda t: t.update(checkpoint_seed=7))
    assert "warmup_epochs" in _turn_error(lambda t: t["two_networks"].update(warmup_epochs=20))
    assert "turn.turn.tau" in _turn_error(lambda t: t["turn"].update(tau=1.0))
    assert "turn.dataset" in _turn_error(lambda t: t.update(dataset="cifar-1000"))
    assert "turn.validation_fraction" in _turn_error(lambda t: t.update(validation_fraction=1.0))
    assert "turn.bn_mode" in _turn_error(lambda t: t.update(bn_mode="sometimes"))
    assert "turn.timing.backbone" in _turn_error(lambda t: t["timing"].update(backbone="resnet-x"))
    assert "turn.timing.warmup_epochs" in _turn_error(lambda t: t["timing"].update(warmup_epochs=5, epochs=5))
    msg = _turn_error(lambda t: t["regime"]["candidates"].append({"dataset": "mnist-5k", "backbone": "no-such-net"}))
    assert "turn.regime.candidates[" in msg and "no-such-net" in msg
    assert "turn.regime.candidates" in _turn_error(lambda t: t["regime"]["candidates"].append(
        {"dataset": "cifar-1000", "backbone": "checkpoint"}))
    # TURN's step 1 is the GCE-LP baseline: it has no LP settings of its own to drift apart
    assert "turn.turn.epochs_lp" in _turn_error(lambda t: t["turn"].update(epochs_lp=5))


def _train_split(n_per_class: int = 40, n_classes: int = 10) -> Split:
    y = np.repeat(np.arange(n_classes), n_per_class)
    x = torch.rand(len(y), 1, 8, 8) * 2 - 1
    return Split("fashion-mnist-heldout", "train", x, y, "tiny-train")


def test_noise_settings_follow_the_params(cpu_params):
    train = _train_split()
    y = train.y
    asym = turn_chapter.make_noisy_labels(LabelNoise(kind="asymmetric", ratio=0.4), train, cpu_params, seed=0)
    target = superclass_mapping(cpu_params.turn.asymmetric_groups, 10)
    moved = asym.is_noisy
    fixed = target == np.arange(10)  # a class alone in its group (the bag) is never flipped
    assert moved[np.isin(y, np.flatnonzero(fixed))].sum() == 0
    assert moved[~np.isin(y, np.flatnonzero(fixed))].mean() == pytest.approx(0.4)
    assert all(asym.labels[i] == target[y[i]] for i in np.flatnonzero(moved))
    uni = turn_chapter.make_noisy_labels(LabelNoise(kind="uniform", ratio=0.9), train, cpu_params, seed=0)
    assert 0.7 < uni.realized_ratio < 0.9  # re-drawn over all classes: 0.9 * 9/10 wrong on average
    inst = turn_chapter.make_noisy_labels(LabelNoise(kind="instance", ratio=0.4), train, cpu_params, seed=0)
    assert inst.kind == "instance" and 0.25 < inst.realized_ratio < 0.55
    again = turn_chapter.make_noisy_labels(LabelNoise(kind="instance", ratio=0.4), train, cpu_params, seed=0)
    assert np.array_equal(inst.labels, again.labels)
    other = turn_chapter.make_noisy_labels(LabelNoise(kind="instance", ratio=0.4), train, cpu_params, seed=1)
    assert not np.array_equal(inst.labels, other.labels)


def test_method_settings_come_from_the_params(cpu_params):
    t = cpu_params.turn
    ck = t.backbone("checkpoint")
    assert turn_chapter.method_kwargs("ce-fft", ck, cpu_params)["lr"] == t.fft.lr
    custom = ck.model_copy(update={"fft": t.fft.model_copy(update={"lr": 7e-4}), "turn_lr": 2e-4})
    assert turn_chapter.method_kwargs("gce-fft", custom, cpu_params)["lr"] == 7e-4
    assert turn_chapter.method_kwargs("turn", custom, cpu_params)["lr"] == 2e-4  # TURN's own FFT learning rate
    assert turn_chapter.method_kwargs("turn", ck, cpu_params)["lr"] == (ck.turn_lr or t.fft.lr)
    kw = turn_chapter.method_kwargs("turn", ck, cpu_params)
    assert (kw["epochs_fft"], kw["tau"]) == (t.turn.epochs_fft, t.turn.tau) == (4, 0.6)
    assert kw["flip"] is t.augment.flip and kw["crop_pad"] == t.augment.crop_pad
    assert turn_chapter.method_kwargs("elr-lp", ck, cpu_params)["elr_lambda"] == t.elr.lam
    assert turn_chapter.method_kwargs("dividemix-lp", ck, cpu_params)["warmup_epochs"] == t.two_networks.warmup_epochs
    with pytest.raises(KeyError):
        turn_chapter.method_kwargs("mixup", ck, cpu_params)


def test_turn_step1_takes_the_gce_lp_settings(cpu_params):
    """Every setting of the GCE-LP baseline reaches TURN's step 1 (and the scaling every LP head)."""
    ck = cpu_params.turn.backbone("checkpoint")
    turn = turn_chapter.method_kwargs("turn", ck, cpu_params)
    gce = turn_chapter.method_kwargs("gce-lp", ck, cpu_params)
    pairs = {"epochs": "epochs_lp", "batch_size": "lp_batch_size", "lr": "lp_lr", "weight_decay": "lp_weight_decay",
             "momentum": "lp_momentum", "optimizer": "lp_optimizer", "q": "q", "standardize": "lp_standardize"}
    assert {k: gce[k] for k in pairs} == {k: turn[v] for k, v in pairs.items()}
    assert gce["standardize"] is cpu_params.turn.lp_standardize is False  # raw features, as the authors' probes
    for m in ("ce-lp", "elr-lp", "dividemix-lp", "unicon-lp"):
        assert turn_chapter.method_kwargs(m, ck, cpu_params)["standardize"] is cpu_params.turn.lp_standardize


def test_turn_step1_equals_gce_lp_with_the_chapter_settings(cpu_params):
    """With the chapter's own keyword arguments, TURN's step-1 head and the GCE-LP head are equal."""
    from sklearn.datasets import make_blobs
    from torch import nn

    from nml.estimators.noisy_labels import create_method

    X_img = torch.randn(120, 1, 6, 6)
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(36, 16))
    feats, y = make_blobs(n_samples=120, centers=3, n_features=16, random_state=0)
    feats = feats.astype(np.float32)
    ck = cpu_params.turn.backbone("checkpoint")
    cpu = cpu_params.model_copy(update={"device": "cpu"})
    gce = create_method("gce-lp", seed=2, **turn_chapter.method_kwargs("gce-lp", ck, cpu)).fit(feats, y)
    kw = {**turn_chapter.method_kwargs("turn", ck, cpu), "epochs_fft": 1}
    turn = create_method("turn", backbone=backbone, seed=2, **kw).fit(X_img, y, features=feats)
    assert np.array_equal(turn.lp_coef_, gce.coef_) and np.array_equal(turn.lp_intercept_, gce.intercept_)


def test_one_bn_policy_from_one_key(cpu_params):
    ck = cpu_params.turn.backbone("checkpoint")
    for mode in ("train", "frozen", "recalibrate"):
        p = cpu_params.model_copy(update={"turn": cpu_params.turn.model_copy(update={"bn_mode": mode})})
        for m in ("ce-fft", "gce-fft", "elr-fft", "turn"):
            assert turn_chapter.method_kwargs(m, ck, p)["bn_mode"] == mode
    assert cpu_params.turn.bn_mode == "train"  # chosen on validation (figures/cpu/selection_turn_bn.csv)


# ---------------------------------------------------------------- a context on synthetic data
def _context(cpu_params, n_per_class=30, n_test=50):
    train = _train_split(n_per_class)
    rng = np.random.default_rng(0)
    test_y = rng.integers(0, 10, n_test)
    test = Split("fashion-mnist-heldout", "test", torch.rand(n_test, 1, 8, 8), test_y, "tiny-test")
    spec = turn_chapter.BackboneSpec("checkpoint", checkpoint_key="ck")
    # class-informative features so the probes learn something
    centers = rng.normal(size=(10, 12)).astype(np.float32) * 3
    f_train = centers[train.y] + rng.normal(size=(len(train.y), 12)).astype(np.float32)
    f_test = centers[test_y] + rng.normal(size=(n_test, 12)).astype(np.float32)
    views = np.stack([f_train, f_train + 0.1, f_train - 0.1], 1)
    feats = {"checkpoint": turn_chapter.BackboneFeatures(spec, f_train, f_test, views)}
    return turn_chapter.TurnContext(cpu_params, train, test, None, feats)


def test_validation_split_is_carved_from_the_noisy_training_split(cpu_params):
    ctx = _context(cpu_params)
    noise = LabelNoise(kind="uniform", ratio=0.6)
    labels = ctx.labels(noise, 0)
    fit, val = ctx.split(noise, 0)
    n = len(ctx.train.y)
    assert len(np.intersect1d(fit, val)) == 0 and len(fit) + len(val) == n
    assert len(val) == round(cpu_params.turn.validation_fraction * n)
    # stratified on the noisy labels: every noisy class keeps its share on both sides
    share = np.bincount(labels.labels[val], minlength=10) / np.bincount(labels.labels, minlength=10)
    assert np.all(np.abs(share - cpu_params.turn.validation_fraction) < 0.15)
    assert np.array_equal(fit, ctx.split(noise, 0)[0])  # seeded
    assert not np.array_equal(val, ctx.split(noise, 1)[1])  # per seed
    job = ctx.job("t", "checkpoint", noise, "gce-lp", 0)
    # the validation labels are as noisy as the training labels (a practitioner has no clean ones)
    assert np.array_equal(job.y_val, labels.labels[val]) and np.array_equal(job.y_fit, labels.labels[fit])
    assert labels.is_noisy[val].mean() > 0.3
    assert np.array_equal(job.f_fit, ctx.features["checkpoint"].train[fit])
    assert np.array_equal(job.f_val, ctx.features["checkpoint"].train[val])
    assert job.test_id == ctx.test_id == "tiny-test" and ctx.truth()["tiny-test"] is ctx.test.y
    images = ctx.job("t", "checkpoint", noise, "ce-fft", 0)
    assert torch.equal(images.x_fit, ctx.train.x[torch.from_numpy(fit)]) and len(images.x_val) == len(val)
    turn = ctx.job("t", "checkpoint", noise, "turn", 0)
    assert np.array_equal(turn.f_val, job.f_val)  # TURN's step 1 is scored on the same validation features
    enc = ctx.job("t", "checkpoint", noise, "unicon-lp", 0, views="encoder", epochs=3, warmup_epochs=1)
    assert enc.f_fit is None and enc.x_fit is not None and enc.views == "encoder"
    assert enc.key() != ctx.job("t", "checkpoint", noise, "unicon-lp", 0, epochs=3, warmup_epochs=1).key()


def test_job_key_depends_on_what_changes_the_result(cpu_params):
    ctx = _context(cpu_params)
    noise = LabelNoise(kind="uniform", ratio=0.6)
    base = ctx.job("a", "checkpoint", noise, "ce-lp", 0)
    assert base.key() == ctx.job("b", "checkpoint", noise, "ce-lp", 0, label="other").key()  # meta does not matter
    keys = {base.key(),
            ctx.job("a", "checkpoint", noise, "gce-lp", 0).key(),
            ctx.job("a", "checkpoint", noise, "ce-lp", 0, lr=0.5).key(),
            ctx.job("a", "checkpoint", noise, "ce-lp", 1).key(),
            ctx.job("a", "checkpoint", LabelNoise(kind="uniform", ratio=0.9), "ce-lp", 0).key()}
    other_split = cpu_params.model_copy(update={"turn": cpu_params.turn.model_copy(update={"validation_fraction": 0.3})})
    keys.add(_context(other_split).job("a", "checkpoint", noise, "ce-lp", 0).key())
    assert len(keys) == 6


def test_summarize_run_selects_on_validation_over_the_tuning_phase():
    history = [{"phase": "lp", "epoch": 0, "val_acc": 0.5, "test_acc": 0.6},
               {"phase": "lp", "epoch": 1, "val_acc": 0.7, "test_acc": 0.8},
               {"phase": "fft", "epoch": 0, "val_acc": 0.6, "test_acc": 0.5},
               {"phase": "fft", "epoch": 1, "val_acc": 0.6, "test_acc": 0.9},
               {"phase": "fft", "epoch": 2, "val_acc": 0.4, "test_acc": 0.7}]
    preds = [np.full(4, i) for i in range(5)]
    out = turn_chapter.summarize_run(history, preds, ("fft",))
    assert (out["best"], out["best_epoch"], out["best_val"]) == (0.5, 0, 0.6)  # tie: the earlier epoch
    assert (out["best_oracle"], out["best_oracle_epoch"]) == (0.9, 1)
    assert (out["last"], out["last_epoch"]) == (0.7, 2)
    assert (out["lp_acc"], out["lp_val"]) == (0.8, 0.7)  # TURN's step 1: its own column, never best or last
    assert np.array_equal(out["pred_best"], preds[2]) and np.array_equal(out["pred_last"], preds[4])
    assert np.array_equal(out["pred_lp"], preds[1]) and out["pred_best"].dtype == np.int32
    # an LP baseline: its whole training is the phase, no lp_acc column
    lp = turn_chapter.summarize_run(history[:2], preds[:2], ("lp",))
    assert (lp["best"], lp["last"]) == (0.8, 0.8) and np.isnan(lp["lp_acc"]) and lp["pred_lp"] is None


@pytest.mark.parametrize("method", ["gce-lp", "dividemix-lp"])
def test_run_job_reports_chosen_predictions(cpu_params, method):
    small = cpu_params.model_copy(update={"device": "cpu", "turn": cpu_params.turn.model_copy(update={
        "two_networks": cpu_params.turn.two_networks.model_copy(update={"warmup_epochs": 2}),
        "lp": cpu_params.turn.lp.model_copy(update={"epochs": 4, "batch_size": 32, "lr": 1e-2})})})
    ctx = _context(small)
    job = ctx.job("t", "checkpoint", LabelNoise(kind="uniform", ratio=0.4), method, 0)
    out = turn_chapter.run_job(job)
    assert out["test_id"] == ctx.test_id and out["n_train"] + out["n_val"] == len(ctx.train.y)
    for which in ("best", "last"):
        pred = out[f"pred_{which}"]
        assert pred.dtype == np.int32 and pred.shape == ctx.test.y.shape
        assert out[which] == pytest.approx(np.mean(pred == ctx.test.y))
    assert out["best_oracle"] >= max(out["best"], out["last"]) and out["best"] > 0.3
    assert all("val_acc" in h and "test_acc" in h for h in out["history"])


def test_timing_rows_are_marked_for_t4(cpu_params):
    t = cpu_params.turn
    assert t.timing.noise == LabelNoise(kind="uniform", ratio=0.9) and t.timing.epochs == 5  # the paper's Fig. 3a


def test_augmented_views_are_fixed_per_view_and_index():
    x = torch.arange(2 * 16 * 16, dtype=torch.float32).reshape(2, 1, 16, 16)
    v1, v1_again, v2 = (turn_chapter.AugmentedView(x, k, pad=2, flip=False) for k in (1, 1, 2))
    assert torch.equal(v1[0][0], v1_again[0][0]) and v1[0][0].shape == (1, 16, 16)
    assert not torch.equal(v1[0][0], v2[0][0]) or not torch.equal(v1[1][0], v2[1][0])


def test_best_last_table_keeps_the_oracle_beside():
    rows = pd.DataFrame([{"backbone": "b", "noise": "n", "method": m, "label": m, "seed": s, "best": 0.5 + 0.1 * s,
                          "last": 0.4, "best_oracle": 0.9, "lp_acc": 0.7 if m == "turn" else np.nan, "fit_seconds": 1.0}
                         for m in ("turn", "ce-lp") for s in (0, 1)])
    table = turn_chapter.best_last_table(rows).set_index("method")
    assert table.loc["turn", "best_mean"] == pytest.approx(55.0) and table.loc["turn", "oracle_mean"] == pytest.approx(90.0)
    assert table.loc["turn", "lp_acc_mean"] == pytest.approx(70.0) and np.isnan(table.loc["ce-lp", "lp_acc_mean"])
