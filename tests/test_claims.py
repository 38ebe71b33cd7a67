import itertools

import numpy as np
import pandas as pd

from nml.claims import spectral_claims


def _results(id_acc, ood_acc, sve, lsvr, seeds=(0, 1), noise=0.001):
    """A tidy results frame where each metric follows a given function of gamma."""
    rng = np.random.default_rng(0)
    rows = []
    for gamma, seed in itertools.product([0.0, 0.05, 0.1, 0.2, 0.3], seeds):
        for task in ["a", "b"]:
            rows.append({"track": "supervised", "gamma": gamma, "seed": seed, "kind": "ID", "task": task,
                         "train_domain": task, "test_domain": task, "acc": id_acc(gamma) + noise * rng.normal(),
                         "macro_f1": 0.0, "sve": sve(gamma), "lsvr": 0.0})
        for test in ["c", "d"]:
            acc = ood_acc(gamma) + noise * rng.normal()
            rows.append({"track": "supervised", "gamma": gamma, "seed": seed, "kind": "OOD", "task": "p",
                         "train_domain": "a", "test_domain": test, "acc": acc, "macro_f1": 0.0,
                         "sve": 0.0, "lsvr": lsvr(gamma, acc)})
    return pd.DataFrame(rows)


def _verdicts(df):
    table = spectral_claims(df)
    overall = table[table["scope"].isin(["", "all OOD pairings"])]
    return dict(zip(overall["claim"], overall["verdict"], strict=True))


def test_c2_is_also_reported_per_pairing():
    df = _results(lambda g: 0.8, lambda g: 0.6 - 0.3 * g, lambda g: 3.0, lambda g, a: 1.0)
    table = spectral_claims(df)
    per = table[(table["claim"] == "C2") & (table["scope"] == "p")]
    assert len(per) == 1 and per["verdict"].item() == "holds"


def test_paper_like_numbers_hold():
    df = _results(id_acc=lambda g: 0.8 + (0.02 if 0 < g <= 0.1 else -0.1 * g),
                  ood_acc=lambda g: 0.6 - 0.3 * g, sve=lambda g: 3 + g, lsvr=lambda g, acc: 2 - acc)
    v = _verdicts(df)
    assert v == {"C1": "holds", "C2": "holds", "C3a": "holds", "C3b": "holds", "C3c": "holds"}


def test_opposite_numbers_do_not_hold():
    df = _results(id_acc=lambda g: 0.8 - 0.2 * g, ood_acc=lambda g: 0.6 + 0.3 * g,
                  sve=lambda g: 3 - g, lsvr=lambda g, acc: acc)
    v = _verdicts(df)
    assert v == {"C1": "does not hold", "C2": "does not hold", "C3a": "does not hold",
                 "C3b": "holds", "C3c": "does not hold"}  # LSVR follows accuracy, which rises with gamma
    falling = _results(lambda g: 0.8, lambda g: 0.6, lambda g: 3.0, lambda g, acc: 1.0 - g)
    assert _verdicts(falling)["C3b"] == "does not hold"


def test_effects_inside_seed_spread_are_weak():
    df = _results(id_acc=lambda g: 0.8 + (0.001 if 0 < g <= 0.1 else 0.0),
                  ood_acc=lambda g: 0.6, sve=lambda g: 3.0, lsvr=lambda g, acc: 1.0, noise=0.02)
    v = _verdicts(df)
    assert v["C1"] in {"weak (within seed spread)", "does not hold"}
    assert v["C1"] != "holds" and v["C2"] != "holds"


def test_single_gamma_is_not_testable():
    df = _results(lambda g: 0.8, lambda g: 0.6, lambda g: 3.0, lambda g, a: 1.0)
    df = df[df["gamma"] == 0.0]
    v = _verdicts(df)
    assert v["C1"] == "not testable" and v["C2"] == "not testable"
