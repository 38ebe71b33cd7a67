"""The grid notebook 02 runs, in words (for ``nml run --dry-run``)."""

from __future__ import annotations

from nml.config import Params


def describe(params: Params) -> list[str]:
    s = params.spectral
    n_ckpt = len(params.pretrain.checkpoints())
    lines = [f"{n_ckpt} checkpoints x ID tasks {s.id_tasks}"]
    for pair in s.ood:
        lines.append(f"OOD {pair.name}: train {pair.train} -> test {pair.test}")
    lines.append(f"linear probe: {s.probe.epochs} epochs, batch {s.probe.batch_size}, lr {s.probe.lr}; spectrum "
                 f"{s.spectrum_variant} (claims under {s.claims_variants}), groups {list(s.spectrum_edges)}")
    lines.append(f"validation: {100 * s.validation_fraction:g}% of each training split; the probes fit on the rest")
    return lines
