"""The grid notebook 02 runs, in words (for ``nml run --dry-run``)."""

from __future__ import annotations

from nml.config import Params
from nml.models.throughput import NotebookCost, Workload


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


def downstream_splits(params: Params, *, ood_tests_per_pairing: int | None = None) -> list[tuple[str, str]]:
    """The (dataset, split) pairs the downstream tasks read: ID tasks' train and test splits, each
    OOD pairing's training domain's train split and its test domains' test splits."""
    s = params.spectral
    pairs = [(t, split) for t in s.id_tasks for split in ("train", "test")]
    for o in s.ood:
        pairs += [(o.train, "train")] + [(t, "test") for t in o.test[:ood_tests_per_pairing]]
    return list(dict.fromkeys(pairs))


def split_images(pairs: list[tuple[str, str]], *, max_train_per_class: int | None = None,
                 max_test_per_class: int | None = None) -> tuple[dict[tuple[str, str], int], list[str]]:
    """Images of each (dataset, split) after the per-class caps; the datasets whose sizes are unknown."""
    from nml.data.catalog import dataset_sizes

    counts, unknown = {}, []
    for name, split in pairs:
        sizes = dataset_sizes(name)
        cap = max_train_per_class if split == "train" else max_test_per_class
        n = sizes.count(split, per_class=cap) if sizes else None
        if n is None:
            unknown.append(f"{name}/{split}")
        else:
            counts[(name, split)] = n
    return counts, unknown


NMTUNE_TABLE14 = "NMTune Table 14 (App. B.6), average GPU-hours on one V100"


def table14(modality: str, methods: list[str]) -> list[str]:
    """The paper's Table 14 rows of ``modality`` for ``methods``, in words."""
    from nml.report.reference import paper_table

    t = paper_table("nmtune_table14_runtime")
    t = t[(t["modality"] == modality) & t["method"].isin(methods)]
    lines = []
    for label, rows in t.groupby("row_label", sort=False):
        lines.append(f"{NMTUNE_TABLE14}, {label}: " + ", ".join(f"{m} {h:.2f}" for m, h in zip(rows["method"], rows["gpu_hours"], strict=True)))
    return lines


def cost(params: Params) -> NotebookCost:
    """Feature extraction of every checkpoint on every downstream split (the probes then fit on
    cached features)."""
    from nml.chapters.ch01_pretraining.dryrun import pretrain_in_chans

    s, p = params.spectral, params.pretrain
    n_ckpt = len(p.checkpoints())
    counts, unknown = split_images(downstream_splits(params), max_train_per_class=s.max_per_class)
    images = sum(counts.values())
    out = NotebookCost(
        not_counted=["the linear probes on cached features (negligible next to the extraction)"]
        + ([f"splits of unknown size: {unknown}"] if unknown else []),
        reported=[line + " (a per-model average, as we read it)" for line in table14("vision", ["LP"])],
        parallel=False)
    if images:
        out.workloads.append(Workload(
            f"features: {n_ckpt} checkpoints x {len(counts)} splits ({images:,} images)", p.model, p.image_size,
            "extract", n_ckpt * images, kind="backbone", in_chans=pretrain_in_chans(params), role="02 extraction"))
    return out
