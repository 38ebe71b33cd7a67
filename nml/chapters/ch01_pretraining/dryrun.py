"""The grid notebook 01 runs, in words (for ``nml run --dry-run``)."""

from __future__ import annotations

from nml.config import Params
from nml.report.display import percent_set


def describe(params: Params) -> list[str]:
    p = params.pretrain
    lines = [f"data: {p.dataset} (n_train={p.n_train or 'all'}), model {p.model} at {p.image_size}px"]
    if p.supervised.enabled:
        s = p.supervised
        lines.append(
            f"supervised: gamma {percent_set(s.noise_ratios)} x seeds {s.seeds} = "
            f"{len(s.noise_ratios) * len(s.seeds)} checkpoints, {s.optim.epochs} epochs each"
        )
    if p.contrastive.enabled:
        c = p.contrastive
        lines.append(
            f"contrastive ({c.text_encoder} captions): gamma {percent_set(c.noise_ratios)} x seeds {c.seeds} = "
            f"{len(c.noise_ratios) * len(c.seeds)} checkpoints, {c.optim.epochs} epochs, n_train={c.n_train or 'all'}"
        )
    return lines
