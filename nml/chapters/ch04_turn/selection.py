"""Chapter 04's hyper-parameters, chosen on validation data: the sweeps behind ``params/cpu.yaml``'s turn section.

Every sweep runs the chapter's own jobs (:mod:`nml.chapters.ch04_turn.run`) with one setting changed, on
the first seed of ``turn.seeds`` at every noise setting of Table 2 plus the mild one, and scores
each candidate by the mean **validation** accuracy (noisy validation labels, carved from the
noisy training split as in the chapter) at the **last** epoch of its runs: the outcome of the
configured schedule, with no epoch picked after the fact. Test labels are never read. The winner
follows :func:`nml.selection.choose` (the cheapest candidate within half a point of the best
score) unless a sweep states otherwise. Sweeps run in order (``turn_downstream``, ``turn_bn``,
``turn_lp``, ``turn_fft``, ``turn_turn_lr``); each reads the values the earlier ones chose from
the params file.

``turn_downstream`` is different: it measures each ``turn.regime.candidates`` pair with a
clean-label linear probe on the validation split
(:func:`nml.chapters.ch04_turn.run.regime_candidates`) and picks the cheapest to fine-tune among those
that reach ``turn.regime.min_clean_lp``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from nml._infra.training import OptimConfig
from nml.chapters.ch04_turn import run as turn_chapter
from nml.config import Params
from nml.selection import choose

log = logging.getLogger("nml.chapters.ch04_turn.selection")

VAL_METRIC = "mean validation accuracy (noisy labels) at the last epoch, over the noise settings"


def _context(params: Params) -> turn_chapter.TurnContext:
    from nml.chapters.ch01_pretraining import run as pretraining

    pre = pretraining.load_pretrain_data(params) if params.turn.dataset == "fashion-mnist-heldout" else None
    return turn_chapter.prepare(params, turn_chapter.clean_checkpoints(params, pre), pre)


def _settings(params: Params) -> list:
    t = params.turn
    return [*t.noise, *([t.mild_noise] if t.mild_noise else [])]


def _with_turn(params: Params, **update: Any) -> Params:
    return params.model_copy(update={"turn": params.turn.model_copy(update=update)})


def _score_candidates(ctx: turn_chapter.TurnContext, candidates: list[tuple[str, dict, Params]], methods: list[str],
                      backbones: list[str], desc: str, overrides: Callable[[dict], dict] | None = None) -> pd.DataFrame:
    """Run ``methods`` for every candidate (label, swept values, params) on the first seed, every setting."""
    seed = ctx.params.turn.seeds[0]
    rows = []
    for label, values, params in candidates:
        cctx = dataclasses.replace(ctx, params=params)
        jobs = [cctx.job("selection", b, noise, m, seed, **(overrides(values) if overrides else {}))
                for b in backbones for noise in _settings(params) for m in methods]
        runs = turn_chapter.run(cctx, jobs, f"{desc}: {label}")
        rows.append({"candidate": label, **values, "backbones": ",".join(backbones), "methods": ",".join(methods),
                     "n_runs": len(runs), "val_score": float(runs["last_val"].mean()), "val_metric": VAL_METRIC,
                     "val_best_epoch_score": float(runs["best_val"].mean()), "seconds": float(runs["fit_seconds"].sum())})
    return pd.DataFrame(rows)


def sweep_turn_downstream(params: Params) -> pd.DataFrame:
    """Downstream set and backbone: clean-label LP on validation; the cheapest FFT among those >= the bar."""
    table = turn_chapter.regime_candidates(params)
    bar = params.turn.regime.min_clean_lp
    # every candidate at or above the bar scores the bar, so "best score, then cheapest" picks the
    # cheapest candidate that reaches it (and the strongest probe when none does)
    table["bar_score"] = np.minimum(table["val_score"], bar)
    return choose(table, score="bar_score", tolerance=0.0,
                  rule_note=f"scores capped at the bar {bar:g}: the cheapest FFT among the candidates whose clean "
                            f"validation LP reaches it")


def sweep_turn_bn(params: Params) -> pd.DataFrame:
    """One BatchNorm policy for TURN and the FFT baselines: frozen / train / recalibrate."""
    ctx = _context(params)
    candidates = [(mode, {"bn_mode": mode}, _with_turn(params, bn_mode=mode)) for mode in ("frozen", "train", "recalibrate")]
    table = _score_candidates(ctx, candidates, ["turn", "ce-fft"], [b.name for b in params.turn.backbones], "BN policy")
    return choose(table, rule_note="TURN and CE (FFT) runs together (one policy serves both)")


def sweep_turn_lp(params: Params) -> pd.DataFrame:
    """The LP learning rate (``turn.lp.lr``), for CE / GCE / ELR linear probes (and so TURN's step 1)."""
    ctx = _context(params)
    lp = params.turn.lp
    candidates = []
    for lr in (3e-4, 1e-3, 3e-3, 1e-2, 3e-2):
        cfg = OptimConfig(**{**lp.model_dump(), "lr": lr})
        backbones = [b.model_copy(update={"lp": None}) for b in params.turn.backbones]
        candidates.append((f"lr={lr:g}", {"lp_lr": lr}, _with_turn(params, lp=cfg, backbones=backbones)))
    table = _score_candidates(ctx, candidates, ["ce-lp", "gce-lp", "elr-lp"], [b.name for b in params.turn.backbones],
                              "LP learning rate")
    return choose(table, rule_note="CE, GCE and ELR linear probes together; batch size and epochs are the paper's")


def sweep_turn_fft(params: Params) -> pd.DataFrame:
    """The FFT baselines' learning rate and batch size (``turn.fft``)."""
    ctx = _context(params)
    fft = params.turn.fft
    candidates = []
    for batch in (32, 128):
        for lr in (1e-4, 3e-4, 1e-3, 3e-3):
            cfg = OptimConfig(**{**fft.model_dump(), "lr": lr, "batch_size": batch})
            backbones = [b.model_copy(update={"fft": None}) for b in params.turn.backbones]
            candidates.append((f"batch={batch}, lr={lr:g}", {"fft_batch_size": batch, "fft_lr": lr},
                               _with_turn(params, fft=cfg, backbones=backbones)))
    table = _score_candidates(ctx, candidates, ["ce-fft", "gce-fft"], [b.name for b in params.turn.backbones],
                              "FFT learning rate")
    return choose(table, rule_note="CE and GCE full fine-tuning together; 5 epochs are the paper's")


def sweep_turn_turn_lr(params: Params) -> pd.DataFrame:
    """TURN's FFT learning rate per backbone (``turn.backbones[].turn_lr``): its head starts trained."""
    ctx = _context(params)
    frames = []
    for b in params.turn.backbones:
        candidates = []
        for lr in (1e-4, 3e-4, 1e-3, 3e-3):
            backbones = [x.model_copy(update={"turn_lr": lr}) if x.name == b.name else x for x in params.turn.backbones]
            candidates.append((f"{b.name}: turn_lr={lr:g}", {"backbone": b.name, "turn_lr": lr},
                               _with_turn(params, backbones=backbones)))
        table = _score_candidates(ctx, candidates, ["turn"], [b.name], f"TURN FFT lr ({b.name})")
        frames.append(choose(table, rule_note="per backbone; TURN runs only"))
    return pd.concat(frames, ignore_index=True)
