"""Validation sweeps behind the ``cpu`` values of chapters 02 and 03 (run by ``nml select``).

Every sweep fits on the downstream training splits and scores on the validation splits carved
from them (``spectral.validation_fraction``), with the clean supervised checkpoints of chapter 01
(all their seeds) as the encoders; test splits are never read. Each returns one row per candidate
with its validation score, its cost in seconds, and the candidate :func:`nml.selection.choose`
picks by the rule it states.

* ``02_probe`` — the linear probe's batch size (the authors' lr 0.01, wd 1e-4, 30 epochs).
* ``02_corruptions`` — severity and list of the Fashion-MNIST corruptions used as OOD domains.
* ``03_tuner`` — epochs and batch size of the MLP / NMTune head.
* ``03_real_models_head`` — hidden width of the head on the published encoders' wide features.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from nml.params import Params
from nml.selection import choose

CORRUPTION_SEVERITIES = (1, 2, 3)
CORRUPTION_FLOOR = 0.30  # 3x chance at 10 classes: a shift the probe can still be scored on


def _clean_checkpoints(params: Params):
    from nml.chapters import pretraining, spectral

    pre = pretraining.load_pretrain_data(params)
    # only the clean supervised checkpoints (read from 01's cache, trained if missing)
    checkpoints = [pretraining.train_supervised(params, pre, 0.0, seed) for seed in params.pretrain.supervised.seeds]
    data = spectral.load_downstream_data(params, pre.heldout_train_indices, validation=True)
    return checkpoints, data


def _train_domains(params: Params) -> list[str]:
    s = params.spectral
    return list(dict.fromkeys([*s.id_tasks, *(o.train for o in s.ood)]))


def _features(ck, data, params: Params, domain: str, split: str) -> np.ndarray:
    from nml.chapters.spectral import _features as extract

    return extract(ck, data.get(domain, split), data, params)


def _score_candidates(params: Params, candidates: list[dict], fit: Callable[[dict, np.ndarray, np.ndarray, int, dict], list],
                      domains: list[str], views: bool = False) -> pd.DataFrame:
    """Mean validation accuracy over clean checkpoints (seeds), ``domains`` and the fitted models
    ``fit(candidate, X, y, seed, {"views": bank})`` returns, per candidate."""
    from nml.chapters.nmtune import Task, view_banks
    from nml.metrics import accuracy

    checkpoints, data = _clean_checkpoints(params)
    rows = []
    for cand in candidates:
        scores, seconds = [], 0.0
        for ck in checkpoints:
            banks = view_banks(ck.backbone, data, params, [Task(d) for d in domains], desc="selection") if views else {}
            for domain in domains:
                x, y = _features(ck, data, params, domain, "train"), data.get(domain, "train").y
                xv, yv = _features(ck, data, params, domain, "val"), data.get(domain, "val").y
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
    from nml.tuners import LinearProbe

    p = params.spectral.probe
    candidates = [{"candidate": f"batch {b}", "batch_size": b} for b in (64, 128, 256)]

    def fit(cand, x, y, seed, extra):
        return [LinearProbe(epochs=p.epochs, batch_size=cand["batch_size"], lr=p.lr, weight_decay=p.weight_decay,
                            standardize=p.standardize, seed=seed).fit(x, y)]

    table = _score_candidates(params, candidates, fit, _train_domains(params))
    return choose(table, tolerance=0.005, rule_note="half a point buys the faster probe (the authors' batch is 64)")


def select_tuner(params: Params) -> pd.DataFrame:
    """``03_tuner``: epochs and batch size of the MLP / NMTune head (score: mean of both methods)."""
    from nml.chapters.nmtune import method_by_name

    grid = [(30, 64), (30, 256), (15, 256)]
    candidates = [{"candidate": f"{e} epochs, batch {b}", "epochs": e, "batch_size": b} for e, b in grid]
    methods = [m for m in ("mlp", "nmtune") if m in params.nmtune.methods]

    def fit(cand, x, y, seed, extra):
        return [method_by_name(params, m).build(seed, epochs=cand["epochs"], batch_size=cand["batch_size"])
                .fit(x, y, views=extra["views"]) for m in methods]

    domains = list(params.spectral.id_tasks)
    table = _score_candidates(params, candidates, fit, domains, views=True)
    return choose(table, tolerance=0.005, rule_note="the authors' setting is 30 epochs, batch 64")


def select_corruptions(params: Params) -> pd.DataFrame:
    """``02_corruptions``: which corruptions, at which severity, make the Fashion-MNIST OOD domains.

    Rule stated before looking: the severity is the highest of 1–3 at which at least half of the
    candidate corruptions keep the clean checkpoints' probe at or above 30% validation accuracy
    (3x chance); the corruptions are those at or above 30% at that severity. Scored on corrupted
    copies of the *validation* images held out from the probe's training split.
    """
    from nml.chapters.spectral import Split, _split
    from nml.data.corruptions import CORRUPTIONS_FAST, corrupt
    from nml.data.image_set import ImageSet
    from nml.metrics import accuracy
    from nml.tuners import LinearProbe

    p = params.spectral.probe
    checkpoints, data = _clean_checkpoints(params)
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
        probe.fit(_features(ck, data, params, train.domain, "train"), train.y)
        for (name, severity), (split, seconds) in shifted.items():
            acc = accuracy(split.y, probe.predict(_features(ck, data, params, split.domain, "val")))
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


def select_real_models_head(params: Params) -> pd.DataFrame:
    """``03_real_models_head``: hidden width of the MLP / NMTune head on the published encoders."""
    from nml.chapters import nmtune
    from nml.encoders import create_encoder
    from nml.metrics import accuracy

    r = params.nmtune.real_models
    _, data = _clean_checkpoints(params)
    small = nmtune.real_model_data(data, params)
    domains = list(params.spectral.id_tasks)
    task_list = [nmtune.Task(d) for d in domains]
    cfg = r.tuner or params.nmtune.tuner
    rows = []
    for mult in (0.25, 1.0):
        scores, seconds = [], 0.0
        for name in r.encoders:
            encoder = create_encoder(name, **nmtune._encoder_options(name, data, params))
            transform = f"{small.transform}+{getattr(encoder, 'transform_id', name)}"
            banks = nmtune.view_banks(encoder, small, params, task_list, transform=transform, n_views=r.views, desc=name)
            for domain in domains:
                x = nmtune.encoder_features(encoder, small.get(domain, "train"), small, params, transform=transform)
                xv = nmtune.encoder_features(encoder, small.get(domain, "val"), small, params, transform=transform)
                for seed in r.seeds:
                    for m in ("mlp", "nmtune"):
                        start = time.perf_counter()
                        model = nmtune.method_by_name(params, m, cfg.model_copy(update={"hidden_mult": mult})).build(seed)
                        model.fit(x, small.get(domain, "train").y, views=banks[domain])
                        seconds += time.perf_counter() - start
                        scores.append(accuracy(small.get(domain, "val").y, model.predict(xv)))
        rows.append({"candidate": f"hidden {mult:g} x D", "hidden_mult": mult, "val_score": float(np.mean(scores)),
                     "val_metric": "accuracy (mean over encoders, ID domains, seeds, MLP and NMTune)",
                     "seconds": seconds, "n_fits": len(scores)})
    return choose(pd.DataFrame(rows), tolerance=0.005, rule_note="the authors' width is 4 x D (not tried: its fits "
                  "on 1280-d features alone exceed chapter 03's CPU budget)")
