"""Hyper-parameters chosen on validation data: the sweeps behind the values in ``params/cpu.yaml``.

Each sweep fits the candidate settings on a training split, scores them on the validation split
carved from it (:func:`nml.data.validation.validation_split`; labels as noisy as the training
labels) and picks one by a rule stated in advance (:func:`choose`). Test labels are never read.
``nml select`` runs the sweeps and writes ``selection_<name>.csv`` (every candidate, its score,
its cost, the winner and the rule) into the profile's figures folder; the params file names the
CSV each chosen value comes from.

A sweep is a function ``(params) -> DataFrame`` registered in :data:`SWEEPS` by its module path,
imported only when it runs.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from nml.config import Params

log = logging.getLogger("nml.selection")

SWEEPS: dict[str, str] = {
    # name -> "module:function"; the function takes Params and returns one row per candidate
    "02_probe": "nml.chapters.ch02_spectral.selection:select_probe",
    "02_corruptions": "nml.chapters.ch02_spectral.selection:select_corruptions",
    "03_tuner": "nml.chapters.ch03_nmtune.selection:select_tuner",
    "03_real_models_head": "nml.chapters.ch03_nmtune.selection:select_real_models_head",
    "turn_downstream": "nml.chapters.ch04_turn.selection:sweep_turn_downstream",
    "turn_bn": "nml.chapters.ch04_turn.selection:sweep_turn_bn",
    "turn_lp": "nml.chapters.ch04_turn.selection:sweep_turn_lp",
    "turn_fft": "nml.chapters.ch04_turn.selection:sweep_turn_fft",
    "turn_turn_lr": "nml.chapters.ch04_turn.selection:sweep_turn_turn_lr",
    "05_party_min_words": "nml.chapters.ch05_language.selection:sweep_party_min_words",
}
"""Every registered sweep, in the order ``nml select`` runs them."""

SELECTION_COLUMNS = ("sweep", "candidate", "val_score", "val_metric", "seconds", "chosen", "rule")


def choose(candidates: pd.DataFrame, *, score: str = "val_score", cost: str = "seconds",
           tolerance: float = 0.005, rule_note: str = "") -> pd.DataFrame:
    """Mark the chosen candidate: the cheapest among those within ``tolerance`` of the best score.

    ``tolerance`` is in the score's units (0.005 = half a point of accuracy). With tolerance 0
    this is the best score, ties broken by cost. Adds the boolean column ``chosen`` and the text
    column ``rule``; returns a copy.
    """
    if candidates.empty:
        raise ValueError("no candidates to choose from")
    if candidates[score].isna().all():
        raise ValueError(f"every candidate's {score} is NaN")
    out = candidates.copy()
    best = out[score].max()
    near = out[out[score] >= best - tolerance - 1e-12]  # a score exactly `tolerance` below the best is within it
    winner = near.sort_values([cost, score], ascending=[True, False]).index[0]
    out["chosen"] = out.index == winner
    rule = (f"highest validation {score}" if tolerance == 0 else
            f"cheapest ({cost}) candidate within {tolerance:g} of the highest validation {score}")
    out["rule"] = rule + (f"; {rule_note}" if rule_note else "")
    return out


def sweep_function(name: str) -> Callable[[Params], pd.DataFrame]:
    if name not in SWEEPS:
        raise KeyError(f"unknown sweep {name!r}; known: {list(SWEEPS)}")
    module, func = SWEEPS[name].split(":")
    return getattr(importlib.import_module(module), func)


def run_sweeps(params: Params, names: list[str] | None, out_dir: str | Path) -> dict[str, pd.DataFrame]:
    """Run the named sweeps (all by default) and write ``selection_<name>.csv`` into ``out_dir``."""
    from nml.report.figures import save_table

    names = list(SWEEPS) if not names else names
    for name in names:
        sweep_function(name)  # fail on an unknown name before any compute
    out = {}
    for name in names:
        start = time.perf_counter()
        log.info("selection sweep %s ...", name)
        table = sweep_function(name)(params)
        if "chosen" not in table:
            raise ValueError(f"sweep {name!r} returned no 'chosen' column")
        table.insert(0, "sweep", name)
        save_table(table, out_dir, f"selection_{name}")
        log.info("selection sweep %s: %d candidates in %.0f s; chosen: %s", name, len(table),
                 time.perf_counter() - start, table.loc[table["chosen"], "candidate"].tolist())
        out[name] = table
    return out
