"""The grid notebook 03 runs, in words (for ``nml run --dry-run``)."""

from __future__ import annotations

from nml.chapters.ch03_nmtune.config import CheckpointSelection
from nml.config import Params
from nml.models.throughput import NotebookCost, Workload
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


def cost(params: Params) -> NotebookCost:
    """Feature extraction notebook 03 adds to 02's cache: the augmented view banks of the checkpoints
    (two-view tuners), Table 2's encoders on every split (and their view banks), and the runtime
    study's encoder-every-batch epochs. The tuners themselves fit on cached features."""
    from nml.chapters.ch01_pretraining.dryrun import pretrain_in_chans
    from nml.chapters.ch02_spectral.dryrun import downstream_splits, split_images, table14
    from nml.chapters.ch03_nmtune import run
    from nml.data.catalog import dataset_sizes

    n, p = params.nmtune, params.pretrain
    ckpt_model = {"model": p.model, "image_size": p.image_size, "kind": "backbone", "in_chans": pretrain_in_chans(params)}
    out = NotebookCost(
        not_counted=["the checkpoints' features of every split: read from 02's cache",
                     "LP / MLP / NMTune fits on cached features (negligible next to the extraction)"],
        reported=table14("vision", ["LP", "MLP", "NMTune"]), parallel=False)
    ids, all_domains = set(params.spectral.id_tasks), [t.train for t in run.tasks(params)]
    unknown: list[str] = []

    # view banks of the checkpoints, one per (checkpoint, training domain), shared by the sections
    banks: set[tuple[tuple, str]] = set()
    sections = [(n.checkpoints, all_domains, run.main_methods(params))]
    if n.ablation.enabled:
        sections.append((n.ablation.checkpoints, [d for d in all_domains if d in ids], run.ablation_methods(params)))
    if n.noisy_downstream.enabled:
        sections.append((n.noisy_downstream.checkpoints, [d for d in all_domains if d in ids],
                         [run.method_by_name(params, m) for m in n.noisy_downstream.methods]))
    for selection, domains, methods in sections:
        if run.needs_views(methods):
            banks |= {(ck, d) for ck in selected_checkpoints(params, selection) for d in domains}
    counts, missing = split_images([(d, "train") for d in dict.fromkeys(d for _, d in banks)])
    unknown += missing
    bank_images = sum(counts.get((d, "train"), 0) for _, d in banks)
    if bank_images:
        n_ckpt = len({ck for ck, _ in banks})
        out.workloads.append(Workload(
            f"checkpoints' view banks: {n.views.n} views x {n_ckpt} checkpoints' training splits", images=n.views.n * bank_images,
            mode="extract", role="03 extraction", **ckpt_model))

    r = n.real_models
    if r.enabled:
        pairs = downstream_splits(params, ood_tests_per_pairing=r.ood_tests_per_pairing)
        counts, missing = split_images(pairs, max_train_per_class=r.max_train_per_class, max_test_per_class=r.max_test_per_class)
        unknown += missing
        views = r.views or n.views.n
        two = run.needs_views(run.main_methods(params, r.tuner))
        train_images = sum(v for (_, split), v in counts.items() if split == "train")
        for name in r.encoders:
            size = r.image_size.get(name)
            out.workloads.append(Workload(f"Table 2, {name}: {len(counts)} splits", name, size, "extract",
                                          sum(counts.values()), role="03 Table 2 encoder"))
            if two and train_images:
                out.workloads.append(Workload(f"Table 2, {name}: view banks, {views} views x training splits", name, size,
                                              "extract", views * train_images, role="03 Table 2 encoder"))

    rt = n.runtime
    if rt.enabled:
        sizes = dataset_sizes(rt.task)
        n_img = sizes.count("train", total=rt.max_train) if sizes else None
        methods = run.main_methods(params)
        for name in rt.encoders:
            model = ckpt_model if name == "checkpoint" else {"model": name, "image_size": None}
            if n_img is None:
                unknown.append(f"{rt.task}/train")
                break
            passes = 2 + (n.views.n if rt.augment and run.needs_views(methods) else 0)
            per_batch = sum(rt.epochs * (2 if run.needs_views([m]) else 1) for m in methods)
            out.workloads.append(Workload(
                f"runtime study on {rt.task}: {passes} cached passes + {per_batch} encoder-every-batch epochs x {n_img:,} images",
                images=(passes + per_batch) * n_img, mode="extract", role="03 runtime", **model))
    if unknown:
        out.not_counted.append(f"splits of unknown size: {sorted(set(unknown))}")
    return out
