"""The grid notebook 01 runs, in words (for ``nml run --dry-run``)."""

from __future__ import annotations

from nml.config import Params
from nml.models.throughput import NotebookCost, Workload
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


def pretrain_in_chans(params: Params) -> int:
    """Channels of the pre-training images: RGB for the paper's datasets, grayscale offline."""
    from nml.data.catalog import get_dataset

    return 3 if get_dataset(params.pretrain.dataset).source == "paper" else 1


def cost(params: Params) -> NotebookCost:
    """The images notebook 01 pushes through its model: every epoch of every checkpoint, plus the
    test images scored after each epoch (``runtime.eval_subset`` of them but at the last)."""
    from nml.data.catalog import dataset_sizes

    p = params.pretrain
    out = NotebookCost(not_counted=[], reported=[
        "not reported (NMTune App. A.1 gives the recipes it follows and Table 3's accuracies, no training time)"])
    model = {"model": p.model, "image_size": p.image_size, "kind": "backbone", "in_chans": pretrain_in_chans(params)}
    sizes = dataset_sizes(p.dataset)
    n_train = sizes.count("train", total=p.n_train) if sizes else None
    n_test = sizes.count("test", total=p.n_test) if sizes else None
    runtime = getattr(params, "runtime", None)
    subset = getattr(runtime, "eval_subset", None)
    for track, section in (("supervised", p.supervised), ("contrastive", p.contrastive)):
        if not section.enabled:
            continue
        n_ckpt, epochs = len(section.noise_ratios) * len(section.seeds), section.optim.epochs
        n = n_train
        if track == "contrastive" and section.dataset is not None:
            pairs = dataset_sizes(section.dataset)
            n = pairs.count("train") if pairs else None
        if track == "contrastive" and n is not None and section.n_train is not None:
            n = min(n, section.n_train)
        if n is None:
            out.not_counted.append(f"{track} pre-training: the size of {section.dataset or p.dataset} is not known here")
            continue
        out.workloads.append(Workload(
            f"{track} pre-training: {n_ckpt} checkpoints x {epochs} epochs x {n:,} images",
            images=n_ckpt * epochs * n, mode="train", role="01 pre-training", **model))
        if n_test:
            scored = (epochs - 1) * min(subset or n_test, n_test) + n_test
            out.workloads.append(Workload(
                f"{track} test scoring after each epoch: {n_ckpt} checkpoints x {scored:,} images",
                images=n_ckpt * scored, mode="extract", role="01 pre-training", **model))
    if p.contrastive.enabled:
        out.not_counted.append(f"the frozen text encoder ({p.contrastive.text_encoder}) embedding the captions once")
    return out
