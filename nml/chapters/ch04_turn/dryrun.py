"""The grid notebook 04 runs, in words (for ``nml run --dry-run``)."""

from __future__ import annotations

from nml.config import Params


def describe(params: Params) -> list[str]:
    t = params.turn
    if t is None or not t.enabled:
        return ["(no turn section: nothing to run)"]
    backbones = [b.name + (f" @{b.image_size}px" if b.image_size else "") for b in t.backbones]
    n_runs = len(t.backbones) * len(t.noise) * len(t.methods) * len(t.seeds)
    lines = [f"Table 2: {t.dataset} x backbones {backbones} x noise {[n.label for n in t.noise]}"
             + (f" (+ mild {t.mild_noise.label})" if t.mild_noise else "")
             + f" x {len(t.methods)} methods x seeds {t.seeds} = {n_runs} runs (+ mild); "
             f"{100 * t.validation_fraction:g}% of each noisy training split held out for validation "
             f"(best = test accuracy at the best-validation epoch)"]
    if t.regime.candidates:
        lines.append(f"regime: clean-label LP on validation for {len(t.regime.candidates)} (dataset, backbone) candidates")
    if t.components.enabled:
        lines.append(f"Table 4: TURN components on {t.components.backbones} at {[n.label for n in t.components.noise]}")
    if t.sensitivity.enabled:
        sv = t.sensitivity
        lines.append(f"sensitivity ({sv.backbone}, {sv.noise.label}): E_LP {sv.epochs_lp}, E_FFT {sv.epochs_fft}, tau {sv.tau}")
    if t.purity.enabled:
        lines.append(f"Table 9: tau {t.purity.tau} x {[n.label for n in t.purity.noise]} on {t.purity.backbone}, + cleanlab")
    if t.tsne.enabled:
        lines.append(f"Fig. 2: t-SNE of {t.tsne.backbones} before / after CE-FFT at {[n.label for n in t.tsne.noise]}")
    if t.timing is not None and t.timing.enabled:
        tm = t.timing
        lines.append(f"Fig. 3a / T4: TURN vs DivideMix-LP and UNICON-LP ({tm.epochs} epochs, encoder every batch) "
                     f"on {tm.backbone} at {tm.noise.label}, each fit timed alone")
    return lines
