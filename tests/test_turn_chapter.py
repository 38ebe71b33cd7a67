"""Chapter 04's logic: the turn params, the noise it injects, method settings, job keys, claims."""

import numpy as np
import pandas as pd
import pytest
import torch

from nml.chapters import turn as turn_chapter
from nml.chapters.spectral import Split
from nml.params import LabelNoise, ParamsError, load_params, load_raw, validate_params
from nml.turn_claims import turn_claims


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


def test_noise_settings_follow_the_params(cpu_params):
    y = np.repeat(np.arange(10), 40)
    x = torch.rand(len(y), 1, 8, 8) * 2 - 1
    train = Split("mnist-5k", "train", x, y, "tiny")
    asym = turn_chapter.make_noisy_labels(LabelNoise(kind="asymmetric", ratio=0.4), train, cpu_params, seed=0)
    pairs = {a: b for a, b in cpu_params.turn.asymmetric_groups} | {b: a for a, b in cpu_params.turn.asymmetric_groups}
    moved = asym.is_noisy
    assert moved.mean() == pytest.approx(0.4)
    assert all(asym.labels[i] == pairs[y[i]] for i in np.flatnonzero(moved))
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
    eff, ck = t.backbone("efficientnet-lite0"), t.backbone("checkpoint")
    assert turn_chapter.method_kwargs("ce-fft", eff, cpu_params)["lr"] == eff.fft.lr != t.fft.lr
    assert turn_chapter.method_kwargs("ce-fft", ck, cpu_params)["lr"] == t.fft.lr
    kw = turn_chapter.method_kwargs("turn", ck, cpu_params)
    assert (kw["epochs_lp"], kw["epochs_fft"], kw["tau"], kw["q"]) == (20, 4, 0.6, 0.7)
    assert kw["flip"] is False and kw["crop_pad"] == 2
    assert turn_chapter.method_kwargs("elr-lp", ck, cpu_params)["elr_lambda"] == t.elr.lam
    assert turn_chapter.method_kwargs("dividemix-lp", ck, cpu_params)["warmup_epochs"] == t.two_networks.warmup_epochs
    with pytest.raises(KeyError):
        turn_chapter.method_kwargs("mixup", ck, cpu_params)


def test_job_key_depends_on_what_changes_the_result():
    spec = turn_chapter.BackboneSpec("efficientnet-lite0", image_size=48)
    y = np.arange(10) % 3
    base = turn_chapter.TurnJob({"study": "a"}, "ce-lp", {"lr": 1e-3}, 0, spec, y, y == 0, y,
                                f_train=np.ones((10, 4), np.float32), f_test=np.ones((10, 4), np.float32))
    same = turn_chapter.TurnJob({"study": "b"}, "ce-lp", {"lr": 1e-3}, 0, spec, y.copy(), y == 0, y,
                                f_train=np.ones((10, 4), np.float32), f_test=np.ones((10, 4), np.float32))
    assert base.key() == same.key()  # who asked (meta) does not matter: one fit serves every study
    changed = [
        turn_chapter.TurnJob({}, "gce-lp", {"lr": 1e-3}, 0, spec, y, y == 0, y, f_train=base.f_train, f_test=base.f_test),
        turn_chapter.TurnJob({}, "ce-lp", {"lr": 1e-2}, 0, spec, y, y == 0, y, f_train=base.f_train, f_test=base.f_test),
        turn_chapter.TurnJob({}, "ce-lp", {"lr": 1e-3}, 1, spec, y, y == 0, y, f_train=base.f_train, f_test=base.f_test),
        turn_chapter.TurnJob({}, "ce-lp", {"lr": 1e-3}, 0, spec, (y + 1) % 3, y == 0, y, f_train=base.f_train, f_test=base.f_test),
        turn_chapter.TurnJob({}, "ce-lp", {"lr": 1e-3}, 0, turn_chapter.BackboneSpec("efficientnet-lite0", image_size=64),
                             y, y == 0, y, f_train=base.f_train, f_test=base.f_test),
    ]
    assert len({base.key(), *(j.key() for j in changed)}) == 6


def test_augmented_views_are_fixed_per_view_and_index():
    x = torch.arange(2 * 16 * 16, dtype=torch.float32).reshape(2, 1, 16, 16)
    v1, v1_again, v2 = (turn_chapter.AugmentedView(x, k, pad=2, flip=False) for k in (1, 1, 2))
    assert torch.equal(v1[0][0], v1_again[0][0]) and v1[0][0].shape == (1, 16, 16)
    assert not torch.equal(v1[0][0], v2[0][0]) or not torch.equal(v1[1][0], v2[1][0])


# ---------------------------------------------------------------- claims on planted numbers
def _rows(turn_margin: float, lp_minus_fft_last: float, fft_minus_lp_best_mild: float, seeds=(0, 1)) -> pd.DataFrame:
    rows = []
    for seed in seeds:
        jitter = 0.001 * seed
        for noise, study in (("uniform 0.6", "table2"), ("uniform 0.9", "table2"), ("uniform 0.1", "mild")):
            base = {"ce-fft": 0.60, "gce-fft": 0.61, "elr-fft": 0.62, "ce-lp": 0.55, "gce-lp": 0.56, "elr-lp": 0.57,
                    "dividemix-lp": 0.63, "unicon-lp": 0.62}
            last = dict(base)
            if noise == "uniform 0.9":
                for loss in ("ce", "gce", "elr"):
                    last[f"{loss}-lp"] = last[f"{loss}-fft"] + lp_minus_fft_last
            if noise == "uniform 0.1":
                for loss in ("ce", "gce", "elr"):
                    base[f"{loss}-fft"] = base[f"{loss}-lp"] + fft_minus_lp_best_mild
            base["turn"], last["turn"] = max(base.values()) + turn_margin, max(last.values()) + turn_margin
            secs = {m: 10.0 for m in base} | {"turn": 2.0}
            for m in base:
                rows.append({"study": study, "backbone": "b", "noise": noise, "method": m, "seed": seed,
                             "best": base[m] + jitter, "last": last[m] + jitter, "fit_seconds": secs[m]})
    return pd.DataFrame(rows)


def test_claims_follow_planted_numbers():
    good = turn_claims(_rows(0.05, 0.10, 0.04), "uniform 0.9", "uniform 0.1").set_index("claim")
    assert good.loc["T1", "verdict"] == "holds" and good.loc["T1-last", "verdict"] == "holds"
    assert good.loc["T2", "verdict"] == "holds" and good.loc["T2", "effect"] == pytest.approx(10.0)
    assert good.loc["T3", "verdict"] == "holds" and good.loc["T3", "effect"] == pytest.approx(4.0)
    assert good.loc["T4", "verdict"] == "holds" and "0.20x" in good.loc["T4", "evidence"]
    bad = turn_claims(_rows(-0.05, -0.10, -0.04), "uniform 0.9", "uniform 0.1").set_index("claim")
    assert (bad.loc[["T1", "T1-last", "T2", "T3"], "verdict"] == "does not hold").all()
    assert turn_claims(_rows(0.05, 0.1, 0.04), "uniform 0.9", None).set_index("claim").loc["T3", "verdict"] == "not testable"


def test_partly_when_turn_wins_some_settings():
    rows = _rows(0.05, 0.1, 0.04)
    mask = (rows["noise"] == "uniform 0.6") & (rows["method"] == "turn")
    rows.loc[mask, "best"] -= 0.2
    verdict = turn_claims(rows, "uniform 0.9", "uniform 0.1").set_index("claim").loc["T1", "verdict"]
    assert verdict == "partly (1/2 settings)"


def test_component_and_purity_claims():
    comp = pd.DataFrame([{"backbone": "b", "noise": "u 0.9", "seed": s, "label": label, "best": acc + 0.001 * s}
                         for s in (0, 1) for label, acc in [("LP no, cleansing every", 0.3), ("LP yes, cleansing none", 0.5),
                                                            ("LP yes, cleansing once", 0.6), ("LP yes, cleansing every", 0.7)]])
    pur = pd.DataFrame({"noise": "u 0.9", "tau": [0.3, 0.5, 0.7, 0.9], "first_purity_subset": [0.7, 0.8, 0.85, 0.9]})
    claims = turn_claims(_rows(0.05, 0.1, 0.04), "uniform 0.9", "uniform 0.1", comp, pur).set_index("claim")
    assert claims.loc["T5", "verdict"] == "holds" and claims.loc["T5", "effect"] == pytest.approx(10.0)
    assert claims.loc["T6", "verdict"] == "holds" and claims.loc["T6", "effect"] == pytest.approx(1.0)
    worse = comp.assign(best=np.where(comp["label"] == "LP yes, cleansing once", 0.8, comp["best"]))
    assert turn_claims(_rows(0.05, 0.1, 0.04), "uniform 0.9", None, worse).set_index("claim").loc["T5", "verdict"] == "does not hold"


def test_turn_reads_its_own_fft_learning_rate_and_bn_mode_from_params():
    from nml.chapters.turn import method_kwargs
    from nml.params import load_params

    cpu = load_params("cpu", require_data=False)
    effnet = cpu.turn.backbone("efficientnet-lite0")
    assert method_kwargs("turn", effnet, cpu)["lr"] == effnet.turn_lr == 1e-4
    assert method_kwargs("ce-fft", effnet, cpu)["lr"] == effnet.fft.lr == 5e-4  # the baselines keep theirs
    checkpoint = cpu.turn.backbone("checkpoint")
    assert checkpoint.turn_lr is None and method_kwargs("turn", checkpoint, cpu)["lr"] == cpu.turn.fft.lr
    assert method_kwargs("turn", checkpoint, cpu)["bn_mode"] == cpu.turn.turn.bn_mode == "frozen"
