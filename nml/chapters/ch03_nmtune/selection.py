"""Validation sweeps behind the ``cpu`` values of chapter 03 (run by ``nml select``).

Every sweep fits on the downstream training splits and scores on the validation splits carved
from them (``spectral.validation_fraction``), with the clean supervised checkpoints of chapter 01
(all their seeds) as the encoders; test splits are never read. Each returns one row per candidate
with its validation score, its cost in seconds, and the candidate :func:`nml.selection.choose`
picks by the rule it states.

* ``03_tuner`` — epochs and batch size of the MLP / NMTune head.
* ``03_real_models_head`` — hidden width of the head on the published encoders' wide features.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from nml.chapters.ch02_spectral.selection import clean_checkpoints, score_candidates
from nml.config import Params
from nml.selection import choose


def select_tuner(params: Params) -> pd.DataFrame:
    """``03_tuner``: epochs and batch size of the MLP / NMTune head (score: mean of both methods)."""
    from nml.chapters.ch03_nmtune.run import method_by_name

    grid = [(30, 64), (30, 256), (15, 256)]
    candidates = [{"candidate": f"{e} epochs, batch {b}", "epochs": e, "batch_size": b} for e, b in grid]
    methods = [m for m in ("mlp", "nmtune") if m in params.nmtune.methods]

    def fit(cand, x, y, seed, extra):
        return [method_by_name(params, m).build(seed, epochs=cand["epochs"], batch_size=cand["batch_size"])
                .fit(x, y, views=extra["views"]) for m in methods]

    domains = list(params.spectral.id_tasks)
    table = score_candidates(params, candidates, fit, domains, views=True)
    return choose(table, tolerance=0.005, rule_note="the authors' setting is 30 epochs, batch 64")


def select_real_models_head(params: Params) -> pd.DataFrame:
    """``03_real_models_head``: hidden width of the MLP / NMTune head on the published encoders."""
    from nml.chapters.ch03_nmtune import run as nmtune
    from nml.metrics import accuracy
    from nml.models.image_encoders import create_encoder

    r = params.nmtune.real_models
    _, data = clean_checkpoints(params)
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
