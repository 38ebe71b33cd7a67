"""The grid notebook 05 runs, in words (for ``nml run --dry-run``)."""

from __future__ import annotations

from nml.config import Params
from nml.models.throughput import NotebookCost


def describe(params: Params) -> list[str]:
    lang = params.language
    if lang is None or not lang.enabled:
        return ["(no language section: nothing to run)"]
    encoders = [e.display for e in lang.encoders]
    n_fits = len(lang.encoders) * len(lang.tasks) * len(lang.methods) * len(lang.seeds)
    return [f"{lang.source} tasks {lang.tasks} x encoders {encoders} x methods {lang.methods} x seeds {lang.seeds}"
            f" = {n_fits} fits, each scored on its validation split, ID and on its task's OOD sets",
            f"validation: {100 * lang.validation_fraction:g}% of each training split (by movie / speaker where the test"
            f" split is); the tuners fit on the rest",
            f"caps per class: train {lang.max_train_per_class}, test {lang.max_test_per_class}, OOD {lang.max_ood_per_class}"]


def cost(params: Params) -> NotebookCost:
    """No image model: the text encoders' passes are not measured by ``nml bench throughput``."""
    from nml.chapters.ch02_spectral.dryrun import table14

    return NotebookCost(
        not_counted=["the text encoders' embedding passes (not measured by `nml bench throughput`) and the "
                     "LP / MLP / NMTune fits on cached embeddings"],
        reported=table14("language", ["LP", "MLP", "NMTune"]))
