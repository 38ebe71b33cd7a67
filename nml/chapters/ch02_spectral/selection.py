"""Validation sweeps behind the ``cpu`` values of chapter 02, and the helpers chapter 03's sweeps share (run by ``nml select``).

Every sweep fits on the downstream training splits and scores on the validation splits carved
from them (``spectral.validation_fraction``), with the clean supervised checkpoints of chapter 01
(all their seeds) as the encoders; test splits are never read. Each returns one row per candidate
with its validation score, its cost in seconds, and the candidate :func:`nml.selection.choose`
picks by the rule it states.

* ``02_probe`` — the linear probe's batch size (the authors' lr 0.01, wd 1e-4, 30 epochs).
* ``02_corruptions`` — severity and list of the Fashion-MNIST corruptions used as OOD domains.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from nml.config import Params
from nml.selection import choose

CORRUPTION_SEVERITIES = (1, 2, 3)
CORRUPTION_FLOOR = 0.30  # 3x chance at 10 classes: a shift the probe can still be scored on


def clean_checkpoints(params: Params):
    from nml.chapters.ch01_pretraining import run as pretraining
    from nml.chapters.ch02_spectral import run as spectral

    pre = pretraining.load_pretrain_data(params)
    # only the clean supervised checkpoints (read from 01's cache, trained if missing)
    checkpoints = [pretraining.train_supervised(params, pre, 0.0, seed) for seed in params.pretrain.supervised.seeds]
    data = spectral.load_downstream_data(params, pre.heldout_train_indices, validation=True)
    return checkpoints, data


def train_domains(params: Params) -> list[str]:
    s = params.spectral
    return list(dict.fromkeys([*s.id_tasks, *(o.train for o in s.ood)]))


def validation_features(ck, data, params: Params, domain: str, split: str) -> np.ndarray:
    from nml.chapters.ch02_spectral.run import _features as extract

    return extract(ck, data.get(domain, split), data, params)


def score_candidates(params: Params, candidates: list[dict], fit: Callable[[dict, np.ndarray, np.ndarray, int, dict], list],
                      domains: list[str], views: bool = False) -> pd.DataFrame:
    """Mean validation accuracy over clean checkpoints (seeds), ``domains`` and the fitted models
    ``fit(candidate, X, y, seed, {"views": bank})`` returns, per candidate."""
    from nml.chapters.ch03_nmtune.run import Task, view_banks
    from nml.metrics import accuracy

    checkpoints, data = clean_checkpoints(params)
    rows = []
    for cand in candidates:
        scores, seconds = [], 0.0
        for ck in checkpoints:
            banks = view_banks(ck.backbone, data, params, [Task(d) for d in domains], desc="selection") if views else {}
            for domain in domains:
                x, y = validation_features(ck, data, params, domain, "train"), data.get(domain, "train").y
                xv, yv = validation_features(ck, data, params, domain, "val"), data.get(domain, "val").y
                start = time.perf_counter()
                models = fit(cand, x, y, ck.spec.seed, {"views": banks.get(domain)})
                seconds += time.perf_counter() - start
                scores += [accuracy(yv, model.predict(xv)) for model in models]
        rows.append({**cand, "candidate": cand["candidate"], "val_score": float(np.mean(scores)),
                     "val_metric": "accuracy (mean over clean checkpoints and training domains)",
                     "seconds": seconds, "n_fits": len(scores)})
    return pd.DataFrame(rows)


def select_probe(params: Params) -> pd.DataFrame:
    """``02_probe``: batch size of the linear probe, the other settings the authors'."""
    from nml.estimators.frozen import LinearProbe

    p = params.spectral.probe
    candidates = [{"candidate": f"batch {b}", "batch_size": b} for b in (64, 128, 256)]

    def fit(cand, x, y, seed, extra):
        return [LinearProbe(epochs=p.epochs, batch_size=cand["batch_size"], lr=p.lr, weight_decay=p.weight_decay,
                            standardize=p.standardize, seed=seed).fit(x, y)]

    table = score_candidates(params, candidates, fit, train_domains(params))
    return choose(table, tolerance=0.005, rule_note="half a point buys the faster probe (the authors' batch is 64)")


def select_corruptions(params: Params) -> pd.DataFrame:
    """``02_corruptions``: which corruptions, at which severity, make the Fashion-MNIST OOD domains.

    Rule stated before looking: the severity is the highest of 1–3 at which at least half of the
    candidate corruptions keep the clean checkpoints' probe at or above 30% validation accuracy
    (3x chance); the corruptions are those at or above 30% at that severity. Scored on corrupted
    copies of the *validation* images held out from the probe's training split.
    """
    from nml.chapters.ch02_spectral.run import Split, _split
    from nml.data.corruptions import CORRUPTIONS_FAST, corrupt
    from nml.data.image_set import ImageSet
    from nml.estimators.frozen import LinearProbe
    from nml.metrics import accuracy

    p = params.spectral.probe
    checkpoints, data = clean_checkpoints(params)
    train, val = data.get("fashion-mnist-heldout", "train"), data.get("fashion-mnist-heldout", "val")
    # the validation images back as uint8 for the corruption library (gray tensors are in [-1, 1])
    images = np.round((val.x[:, 0].numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)
    base = ImageSet("fashion-val", images, val.y.copy(), tuple(str(c) for c in range(10)))
    shifted: dict[tuple[str, int], tuple[Split, float]] = {}
    for severity in CORRUPTION_SEVERITIES:
        for name in CORRUPTIONS_FAST:
            start = time.perf_counter()
            out = corrupt(base, name, severity, seed=params.spectral.split_seed)
            split: Split = _split(f"val+{name}-{severity}", out.images, out.labels, params.pretrain.image_size, "val")
            data.splits[(split.domain, "val")] = split
            shifted[(name, severity)] = (split, time.perf_counter() - start)
    rows = []
    for ck in checkpoints:
        probe = LinearProbe(epochs=p.epochs, batch_size=p.batch_size, lr=p.lr, weight_decay=p.weight_decay,
                            standardize=p.standardize, seed=ck.spec.seed)
        probe.fit(validation_features(ck, data, params, train.domain, "train"), train.y)
        for (name, severity), (split, seconds) in shifted.items():
            acc = accuracy(split.y, probe.predict(validation_features(ck, data, params, split.domain, "val")))
            rows.append({"corruption": name, "severity": severity, "seed": ck.spec.seed, "val_acc": acc,
                         "seconds": seconds})
    per = pd.DataFrame(rows).groupby(["severity", "corruption"], as_index=False).agg(
        val_score=("val_acc", "mean"), seconds=("seconds", "sum"))
    share = per.assign(ok=per["val_score"] >= CORRUPTION_FLOOR).groupby("severity")["ok"].mean()
    eligible = [s for s in CORRUPTION_SEVERITIES if share.get(s, 0.0) >= 0.5]
    chosen_severity = max(eligible) if eligible else min(CORRUPTION_SEVERITIES)
    per["candidate"] = per["corruption"] + " @ " + per["severity"].astype(str)
    per["val_metric"] = "accuracy of the clean checkpoints' probe on corrupted validation images"
    per["chosen"] = (per["severity"] == chosen_severity) & (per["val_score"] >= CORRUPTION_FLOOR)
    per["rule"] = (f"severity = highest of {list(CORRUPTION_SEVERITIES)} where >= half the corruptions keep "
                   f"validation accuracy >= {CORRUPTION_FLOOR:.0%}; corruptions at or above it at that severity")
    return per
