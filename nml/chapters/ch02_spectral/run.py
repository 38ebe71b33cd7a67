"""Chapter 02: what pre-training noise does to downstream transfer and to the feature spectrum.

For every checkpoint of chapter 01: linear probes on the in-domain (ID) tasks, the same probes
tested on shifted domains (OOD), and the singular-value spectrum of the frozen features.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split

from nml._infra.cache import stable_hash
from nml._infra.jobs import run_cached, work_units
from nml._infra.paths import features_dir
from nml._infra.progress import tqdm
from nml.config import Params
from nml.data.catalog import CORRUPTED_FASHION_PREFIX
from nml.data.subsample import cap_per_class
from nml.estimators.frozen import LinearProbe
from nml.metrics import SPECTRUM_VARIANTS, accuracy, lsvr, macro_f1, singular_values, sve
from nml.models.backbones import (
    resolve_device,
)
from nml.models.features import (
    array_id,
    extract_features,
)
from nml.models.preprocess import (
    gray_tensor,
    gray_transform_id,
)
from nml.models.pretrain import (
    Checkpoint,
)

log = logging.getLogger("nml.chapters.ch02_spectral.run")


@dataclass
class Split:
    """A labelled image tensor of one downstream domain and split."""

    domain: str
    split: str
    x: torch.Tensor | torch.utils.data.Dataset
    y: np.ndarray
    data_id: str


@dataclass
class DownstreamData:
    """Every (domain, split) the ID tasks and OOD pairings of the params need."""

    splits: dict[tuple[str, str], Split]
    transform: str
    # the mean / std the image tensors are normalised with (None: 1-channel images in [-1, 1]);
    # other encoders undo it before applying their own preprocessing
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def get(self, domain: str, split: str) -> Split:
        return self.splits[(domain, split)]


def _split(domain: str, images: np.ndarray, labels: np.ndarray, size: int, split: str) -> Split:
    x = gray_tensor(images, size)
    return Split(domain, split, x, labels.astype(np.int64), array_id(x, labels))


def _domains_needed(params: Params) -> list[str]:
    s = params.spectral
    names = list(s.id_tasks)
    for pair in s.ood:
        names += [pair.train, *pair.test]
    return list(dict.fromkeys(names))


def load_downstream_data(params: Params, heldout_train_indices: np.ndarray | None = None, *,
                         validation: bool = False) -> DownstreamData:
    """Load and split every downstream domain named in ``params.spectral`` (offline sets).

    Digit domains have no official split: each is split once, stratified, with
    ``spectral.split_seed``, the same for every checkpoint so that probes are compared on
    identical data. Fashion-MNIST: probes train on clean train images held out from
    pre-training (``heldout_train_indices``) and test on corrupted test images.

    With ``validation=True`` every training split is divided once more
    (:func:`nml.data.validation.validation_split`, ``spectral.validation_fraction``, stratified,
    ``spectral.split_seed``): ``(domain, "train")`` becomes the part the probes and tuners fit on
    and ``(domain, "val")`` the part every choice is made on.
    """
    from nml.data.digits import load_digit_domain

    s, size = params.spectral, params.pretrain.image_size
    splits: dict[tuple[str, str], Split] = {}
    fashion_test = None
    for name in _domains_needed(params):
        if name in ("mnist-5k", "uci-digits", "printed-digits"):
            images = load_digit_domain(name)
            idx = np.arange(len(images.labels))
            tr, te = train_test_split(idx, test_size=s.test_fraction, stratify=images.labels, random_state=s.split_seed)
            if s.max_per_class is not None:
                tr = cap_per_class(images.labels, s.max_per_class, s.split_seed, idx=tr)
            splits[(name, "train")] = _split(name, images.images[tr], images.labels[tr], size, "train")
            splits[(name, "test")] = _split(name, images.images[te], images.labels[te], size, "test")
        elif name == "fashion-mnist-heldout" or name.startswith(CORRUPTED_FASHION_PREFIX):
            from nml.data.fashion_mnist import load_fashion_mnist

            if fashion_test is None:
                train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
                pool = np.arange(len(train.labels)) if heldout_train_indices is None else np.asarray(heldout_train_indices)
                tr = _stratified_pick(pool, train.labels[pool], s.heldout_train, s.split_seed)
                te = _stratified_pick(np.arange(len(test.labels)), test.labels, s.heldout_test, s.split_seed + 1)
                fashion_test = test.subset(te)
                splits[("fashion-mnist-heldout", "train")] = _split("fashion-mnist-heldout", train.images[tr], train.labels[tr], size, "train")
                splits[("fashion-mnist-heldout", "test")] = _split("fashion-mnist-heldout", test.images[te], test.labels[te], size, "test")
            if name.startswith(CORRUPTED_FASHION_PREFIX):
                from nml.data.corruptions import corrupt_cached

                corruption = name[len(CORRUPTED_FASHION_PREFIX):]
                shifted = corrupt_cached(fashion_test, corruption, s.corruption_severity, seed=s.split_seed)
                splits[(name, "test")] = _split(name, shifted.images, shifted.labels, size, "test")
        else:
            splits.update(_paper_splits(name, params))
    if validation:
        splits = carve_validation(splits, s.validation_fraction, s.split_seed)
    if all(isinstance(v.x, torch.Tensor) for v in splits.values()):
        return DownstreamData(splits, gray_transform_id(size))
    from timm.data import resolve_data_config

    from nml.models.backbones import (
        create_backbone,
    )

    cfg = resolve_data_config({"input_size": (3, size, size)}, model=create_backbone(params.pretrain.model))
    return DownstreamData(splits, f"timm-eval-{size}", tuple(cfg["mean"]), tuple(cfg["std"]))


def take_split(split: Split, idx: np.ndarray, name: str) -> Split:
    """The samples ``idx`` of ``split`` as a new split called ``name`` (content-addressed id)."""
    x = split.x[torch.from_numpy(idx)] if isinstance(split.x, torch.Tensor) else torch.utils.data.Subset(split.x, idx.tolist())
    return Split(split.domain, name, x, split.y[idx], stable_hash({"of": split.data_id, "idx": array_id(idx)}, length=24))


def carve_validation(splits: dict[tuple[str, str], Split], fraction: float, seed: int) -> dict[tuple[str, str], Split]:
    """Replace each ``(domain, "train")`` by its fit part and add ``(domain, "val")``."""
    from nml.data.validation import validation_split

    out = dict(splits)
    for (domain, split), v in splits.items():
        if split != "train":
            continue
        fit, val = validation_split(v.y, fraction, seed)
        out[(domain, "train")] = take_split(v, fit, "train")
        out[(domain, "val")] = take_split(v, val, "val")
    return out


def _paper_splits(name: str, params: Params) -> dict[tuple[str, str], Split]:
    """A paper-scale downstream set through its real loader (torchvision or ImageFolder).

    Images stay on disk: the split holds a dataset with timm's evaluation transform for the
    pre-training backbone, and features are extracted batch by batch.
    """
    import timm
    from timm.data import create_transform, resolve_data_config

    from nml.data.catalog import dataset_root, get_dataset
    from nml.data.paper import (
        ImageFolderDataset,
        dataset_targets,
        load_image_folder,
        load_torchvision,
    )

    size = params.pretrain.image_size
    model = timm.create_model(params.pretrain.model, pretrained=False, num_classes=0)
    transform = create_transform(**resolve_data_config({"input_size": (3, size, size)}, model=model))
    source = get_dataset(name).paper_source
    root = dataset_root(name, params.data_root)
    out = {}
    for split in ("train", "test"):
        if isinstance(source, ImageFolderDataset):
            if split not in source.splits:
                continue
            ds = load_image_folder(root, split, transform)
        else:
            ds = load_torchvision(name, root, split, transform)
        y = np.asarray(dataset_targets(ds), dtype=np.int64)
        out[(name, split)] = Split(name, split, ds, y, f"{name}:{root}:{split}:{len(ds)}")
    return out


def _stratified_pick(pool: np.ndarray, labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    if n >= len(pool):
        return np.sort(pool)
    chosen, _ = train_test_split(pool, train_size=n, stratify=labels, random_state=seed)
    return np.sort(chosen)


def _features(ck: Checkpoint, split: Split, data: DownstreamData, params: Params) -> np.ndarray:
    return extract_features(
        ck.backbone, split.x, data_id=split.data_id, split=f"{split.domain}/{split.split}",
        transform=data.transform, batch_size=params.spectral.feature_batch_size,
        device=resolve_device(params.device), num_workers=params.num_workers,
        desc=f"{ck.spec.track} g={ck.spec.noise_ratio:.2f} {split.domain}",
    )


# Bump when probe_and_score changes what it computes (4: probes trained as one model, fused AdamW).
EVALUATION_CODE_VERSION = 4
PROBES_AS_ONE = 16  # at most this many checkpoints' probes train as one model


def _evaluation_path(ck: Checkpoint, data: DownstreamData, params: Params) -> Path:
    s = params.spectral
    key = stable_hash({
        "checkpoint": ck.spec.key(), "transform": data.transform,
        "data": sorted((f"{d}/{sp}", v.data_id) for (d, sp), v in data.splits.items()),
        "id_tasks": s.id_tasks, "ood": [o.model_dump() for o in s.ood], "probe": s.probe.model_dump(),
        "variant": s.spectrum_variant, "code": EVALUATION_CODE_VERSION,
    }, length=24)
    return features_dir() / "evaluations" / f"{key}.pkl"  # the job cache's folder "evaluations"


@dataclass
class ProbeJob:
    """Everything one checkpoint's probes need, as plain arrays (cheap to send to a worker)."""

    base: dict
    feats: dict[tuple[str, str], np.ndarray]
    labels: dict[tuple[str, str], np.ndarray]
    test_ids: dict[str, str]
    scored: list[tuple[str, str, str, str, str]]  # kind, task, family, train domain, test domain
    probe: dict
    variant: str
    key: str
    cell: tuple = ()  # (track, γ): the checkpoints of one grid cell (its seeds) probe as one model


def _probe_job(ck: Checkpoint, data: DownstreamData, params: Params) -> ProbeJob:
    s = params.spectral
    scored = [("ID", t, t, t, t) for t in s.id_tasks]
    scored += [("OOD", pair.name, pair.family_name, pair.train, test) for pair in s.ood for test in pair.test]
    needed = list(dict.fromkeys([(train, "train") for _, _, _, train, _ in scored] + [(test, "test") for *_, test in scored]))
    feats = {k: _features(ck, data.get(*k), data, params) for k in needed}
    return ProbeJob({"track": ck.spec.track, "gamma": ck.spec.noise_ratio, "seed": ck.spec.seed}, feats,
                    {k: data.get(*k).y for k in needed}, {d: data.get(d, "test").data_id for d, split in needed if split == "test"},
                    scored, s.probe.model_dump(), s.spectrum_variant, _evaluation_path(ck, data, params).stem,
                    _cell(ck))


def _cached_job(ck: Checkpoint, data: DownstreamData, params: Params) -> ProbeJob:
    """A job whose result is on disk: only its key is read."""
    return ProbeJob({}, {}, {}, {}, [], {}, params.spectral.spectrum_variant, _evaluation_path(ck, data, params).stem,
                    _cell(ck))


def _cell(ck: Checkpoint) -> tuple:
    return (ck.spec.track, ck.spec.noise_ratio)


def evaluate_checkpoint(ck: Checkpoint, data: DownstreamData, params: Params) -> tuple[list[dict], list[dict]]:
    """Probe one checkpoint on every task; return (result rows, spectrum rows), cached by
    checkpoint, data, tasks and probe settings (a warm re-run reads them back)."""
    (result,) = run_cached([_probe_job(ck, data, params)], lambda j: j.key, probe_and_score, folder="evaluations")
    return result


def _evaluate_checkpoint(ck: Checkpoint, data: DownstreamData, params: Params) -> tuple[list[dict], list[dict]]:
    return probe_and_score(_probe_job(ck, data, params))


def _probe(job: ProbeJob) -> LinearProbe:
    p = job.probe
    return LinearProbe(epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"], weight_decay=p["weight_decay"],
                       standardize=p["standardize"], seed=job.base["seed"])


def _training_domains(job: ProbeJob) -> list[str]:
    return list(dict.fromkeys(train for *_, train, _ in job.scored))


def probe_and_score(job: ProbeJob) -> tuple[list[dict], list[dict]]:
    """Fit one linear probe per training domain, score it on each test domain; rows and spectra."""
    (result,) = probe_many_and_score([job])
    return result


def probe_many_and_score(jobs: list[ProbeJob]) -> list[tuple[list[dict], list[dict]]]:
    """:func:`probe_and_score` of several checkpoints: for each training domain, the checkpoints'
    probes (same data shape, same settings, each its own seed) are trained as one model
    (:func:`nml.estimators.frozen.fit_many`)."""
    from nml.estimators.frozen import fit_many

    domains = _training_domains(jobs[0])
    if any(_training_domains(job) != domains for job in jobs):
        raise ValueError("probe jobs trained as one must share their training domains")
    probes: list[dict[str, LinearProbe]] = [{} for _ in jobs]
    for domain in domains:
        fitted = fit_many([_probe(job) for job in jobs], [job.feats[(domain, "train")] for job in jobs],
                          [job.labels[(domain, "train")] for job in jobs])
        for mine, probe in zip(probes, fitted, strict=True):
            mine[domain] = probe
    return [_score_probes(job, mine) for job, mine in zip(jobs, probes, strict=True)]


def _score_probes(job: ProbeJob, probes: dict[str, LinearProbe]) -> tuple[list[dict], list[dict]]:
    rows, spectra = [], []
    spectral_cache: dict[str, dict[str, float]] = {}
    for kind, task, family, train, test in job.scored:
        x, y = job.feats[(test, "test")], job.labels[(test, "test")]
        pred = probes[train].predict(x)
        if test not in spectral_cache:
            spectral_cache[test] = spectral_metrics(x)
        rows.append({**job.base, "kind": kind, "task": task, "family": family, "train_domain": train, "test_domain": test,
                     "acc": accuracy(y, pred), "macro_f1": macro_f1(y, pred), **spectral_cache[test],
                     "sve": spectral_cache[test][f"sve_{job.variant}"], "lsvr": spectral_cache[test][f"lsvr_{job.variant}"],
                     "n_train": len(job.labels[(train, "train")]), "n_test": len(y), "test_id": job.test_ids[test],
                     "pred": pred.astype(np.int16)})
        if (test, kind) not in {(r["domain"], r["kind"]) for r in spectra}:
            spectra.append({**job.base, "kind": kind, "domain": test, "variant": job.variant,
                            "sigma": singular_values(x, variant=job.variant)})
    return rows, spectra


def spectral_metrics(x: np.ndarray) -> dict[str, float]:
    """SVE and LSVR of a feature matrix under every spectrum variant: ``sve_<variant>``, ``lsvr_<variant>``."""
    out = {}
    for variant in SPECTRUM_VARIANTS:
        sigma = singular_values(x, variant=variant)
        out[f"sve_{variant}"], out[f"lsvr_{variant}"] = sve(sigma), lsvr(sigma)
    return out


def truth_of(data: DownstreamData) -> dict[str, np.ndarray]:
    """True labels of every test split by its ``test_id`` (what the claims resample)."""
    return {v.data_id: v.y for (_, split), v in data.splits.items() if split == "test"}


def evaluate_all(checkpoints: list[Checkpoint], data: DownstreamData, params: Params) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tidy results (one row per checkpoint × task × test domain) and spectra of every checkpoint.

    Features are extracted (or read) here, one checkpoint at a time; the probes then run as
    cached jobs, ``nmtune.n_jobs`` at a time, one CPU thread each.
    """
    keys = [_evaluation_path(ck, data, params).stem for ck in checkpoints]
    cached = {i for i, ck in enumerate(checkpoints) if _evaluation_path(ck, data, params).exists()}
    if cached:
        log.debug("probe results of %d of %d checkpoints are cached", len(cached), len(checkpoints))
    # The probes of a grid cell's checkpoints (its seeds) train as one model, a unit fixed by the grid
    # (not by what is cached); features only for the units with a checkpoint still to probe.
    units = work_units(checkpoints, keys, _cell, PROBES_AS_ONE)
    needed = {i for unit in units if any(i not in cached for i in unit) for i in unit}
    bar = f"features ({len(cached)} of {len(checkpoints)} checkpoints probed already)" if cached else "features"
    jobs = [_probe_job(ck, data, params) if i in needed else _cached_job(ck, data, params)
            for i, ck in enumerate(tqdm(checkpoints, desc=bar))]
    results = run_cached(jobs, lambda j: j.key, probe_and_score, folder="evaluations", n_jobs=params.nmtune.n_jobs,
                         desc="linear probes", group=lambda j: j.cell, work_many=probe_many_and_score,
                         max_group=PROBES_AS_ONE)
    rows = [r for res, _ in results for r in res]
    spectra = [sp for _, res in results for sp in res]
    return pd.DataFrame(rows), pd.DataFrame(spectra)


def spectrum_long(spectra: pd.DataFrame, edges: tuple[int, int]) -> pd.DataFrame:
    """Normalised singular values per index with their group (top / middle / rest)."""
    out = []
    for _, row in spectra.iterrows():
        sigma = np.asarray(row["sigma"], dtype=float)
        p = sigma / sigma.sum()
        groups = np.where(np.arange(len(p)) < edges[0], f"top {edges[0]}",
                          np.where(np.arange(len(p)) < edges[1], f"{edges[0]}-{edges[1]}", f"{edges[1]}+"))
        out.append(pd.DataFrame({"track": row["track"], "gamma": row["gamma"], "seed": row["seed"],
                                 "kind": row["kind"], "domain": row["domain"], "index": np.arange(len(p)),
                                 "sigma_normalized": p, "group": groups}))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def summary_by_gamma(results: pd.DataFrame) -> pd.DataFrame:
    """Fig. 1 analog: per track, kind and γ the average over tasks, mean ± std over seeds."""
    per_seed = results.groupby(["track", "kind", "gamma", "seed"])[["acc", "macro_f1", "sve", "lsvr"]].mean().reset_index()
    agg = per_seed.groupby(["track", "kind", "gamma"]).agg(
        acc_mean=("acc", "mean"), acc_std=("acc", "std"), f1_mean=("macro_f1", "mean"),
        sve_mean=("sve", "mean"), lsvr_mean=("lsvr", "mean"), seeds=("seed", "count"),
    )
    return agg.reset_index()
