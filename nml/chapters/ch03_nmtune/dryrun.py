"""The grid notebook 03 runs, in words (for ``nml run --dry-run``)."""

from __future__ import annotations

from nml.chapters.ch03_nmtune.config import CheckpointSelection
from nml.config import Params
from nml.report.display import percent_set


def selected_checkpoints(params: Params, selection: CheckpointSelection) -> list[tuple[str, float, int]]:
    """The (track, noise ratio, seed) of 01's grid that a chapter-03 section reads."""
    return [(t, g, s) for t, g, s in params.pretrain.checkpoints()
            if t in selection.tracks
            and (selection.noise_ratios is None or g in selection.noise_ratios)
            and (selection.seeds is None or s in selection.seeds)]


def describe(params: Params) -> list[str]:
    n = params.nmtune
    s = params.spectral
    main = selected_checkpoints(params, n.checkpoints)
    r = n.real_models
    lines = [
        f"Fig. 5: {len(main)} checkpoints x methods {n.methods} (head preset {n.tuner.preset}) "
        f"x ID {s.id_tasks} + {len(s.ood)} OOD pairings",
        f"Table 2: encoders {r.encoders} x seeds {r.seeds}" + ("" if r.enabled else " (disabled)"),
        f"two-view tuners read a bank of {n.views.n} augmented views per training image "
        f"(random resized crop {list(n.views.scale)}{', flip' if n.views.flip else ''})",
    ]
    a = n.ablation
    if a.enabled:
        lines.append(f"ablation: {len(selected_checkpoints(params, a.checkpoints))} checkpoints x "
                     f"{len(a.heads)} heads + {len(a.loss_weights)} loss weightings")
    d = n.noisy_downstream
    if d.enabled:
        lines.append(f"noisy downstream: {d.noise_kind} {percent_set(d.noise_ratios)} x "
                     f"{len(selected_checkpoints(params, d.checkpoints))} checkpoints x {d.methods}")
    if n.runtime.enabled:
        lines.append(f"runtime: {n.runtime.encoders} on {n.runtime.task}, {n.runtime.epochs} epochs, cached vs encoder per batch")
    return lines
