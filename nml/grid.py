"""The grid each notebook runs, in words (for ``nml run --dry-run``)."""

from __future__ import annotations

from collections.abc import Callable

from nml.params import CheckpointSelection, Params


def _pct(ratios: list[float]) -> str:
    return "{" + ", ".join(f"{100 * r:g}%" for r in ratios) + "}"


def pretrain_checkpoints(params: Params) -> list[tuple[str, float, int]]:
    """Every (track, noise ratio, seed) notebook 01 trains and notebook 02 reads."""
    p = params.pretrain
    grid = []
    if p.supervised.enabled:
        grid += [("supervised", g, s) for g in p.supervised.noise_ratios for s in p.supervised.seeds]
    if p.contrastive.enabled:
        grid += [("contrastive", g, s) for g in p.contrastive.noise_ratios for s in p.contrastive.seeds]
    return grid


def _describe_01(params: Params) -> list[str]:
    p = params.pretrain
    lines = [f"data: {p.dataset} (n_train={p.n_train or 'all'}), model {p.model} at {p.image_size}px"]
    if p.supervised.enabled:
        s = p.supervised
        lines.append(
            f"supervised: gamma {_pct(s.noise_ratios)} x seeds {s.seeds} = "
            f"{len(s.noise_ratios) * len(s.seeds)} checkpoints, {s.optim.epochs} epochs each"
        )
    if p.contrastive.enabled:
        c = p.contrastive
        lines.append(
            f"contrastive ({c.text_encoder} captions): gamma {_pct(c.noise_ratios)} x seeds {c.seeds} = "
            f"{len(c.noise_ratios) * len(c.seeds)} checkpoints, {c.optim.epochs} epochs, n_train={c.n_train or 'all'}"
        )
    return lines


def _describe_02(params: Params) -> list[str]:
    s = params.spectral
    n_ckpt = len(pretrain_checkpoints(params))
    lines = [f"{n_ckpt} checkpoints x ID tasks {s.id_tasks}"]
    for pair in s.ood:
        lines.append(f"OOD {pair.name}: train {pair.train} -> test {pair.test}")
    lines.append(f"linear probe: {s.probe.epochs} epochs, batch {s.probe.batch_size}, lr {s.probe.lr}; spectrum "
                 f"{s.spectrum_variant} (claims under {s.claims_variants}), groups {list(s.spectrum_edges)}")
    lines.append(f"validation: {100 * s.validation_fraction:g}% of each training split; the probes fit on the rest")
    return lines


def selected_checkpoints(params: Params, selection: CheckpointSelection) -> list[tuple[str, float, int]]:
    """The (track, noise ratio, seed) of 01's grid that a chapter-03 section reads."""
    return [(t, g, s) for t, g, s in pretrain_checkpoints(params)
            if t in selection.tracks
            and (selection.noise_ratios is None or g in selection.noise_ratios)
            and (selection.seeds is None or s in selection.seeds)]


def _describe_03(params: Params) -> list[str]:
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
        lines.append(f"noisy downstream: {d.noise_kind} {_pct(d.noise_ratios)} x "
                     f"{len(selected_checkpoints(params, d.checkpoints))} checkpoints x {d.methods}")
    if n.runtime.enabled:
        lines.append(f"runtime: {n.runtime.encoders} on {n.runtime.task}, {n.runtime.epochs} epochs, cached vs encoder per batch")
    return lines


def _describe_04(params: Params) -> list[str]:
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


def _describe_05(params: Params) -> list[str]:
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


DESCRIBERS: dict[str, Callable[[Params], list[str]]] = {"01": _describe_01, "02": _describe_02, "03": _describe_03,
                                                       "04": _describe_04, "05": _describe_05}


def describe_grid(params: Params, number: str) -> list[str]:
    describe = DESCRIBERS.get(number)
    return describe(params) if describe else ["(this notebook describes its own grid)"]
