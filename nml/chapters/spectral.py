"""Chapter 02: what pre-training noise does to downstream transfer and to the feature spectrum.

For every checkpoint of chapter 01: linear probes on the in-domain (ID) tasks, the same probes
tested on shifted domains (OOD), and the singular-value spectrum of the frozen features.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split
from tqdm.auto import tqdm

from nml.cache import atomic_write_bytes, stable_hash
from nml.catalog import CORRUPTED_FASHION_PREFIX
from nml.data.subsample import cap_per_class
from nml.features import array_id, extract_features
from nml.locations import features_dir
from nml.metrics import accuracy, lsvr, macro_f1, singular_values, sve
from nml.models import resolve_device
from nml.params import Params
from nml.preprocess import gray_tensor, gray_transform_id
from nml.pretrain import Checkpoint
from nml.tuners import LinearProbe

log = logging.getLogger("nml.chapters.spectral")


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


def load_downstream_data(params: Params, heldout_train_indices: np.ndarray | None = None) -> DownstreamData:
    """Load and split every downstream domain named in ``params.spectral`` (offline sets).

    Digit domains have no official split: each is split once, stratified, with
    ``spectral.split_seed``, the same for every checkpoint so that probes are compared on
    identical data. Fashion-MNIST: probes train on clean train images held out from
    pre-training (``heldout_train_indices``) and test on corrupted test images.
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
                from nml.data.corruptions import corrupt

                corruption = name[len(CORRUPTED_FASHION_PREFIX):]
                shifted = corrupt(fashion_test, corruption, s.corruption_severity, seed=s.split_seed)
                splits[(name, "test")] = _split(name, shifted.images, shifted.labels, size, "test")
        else:
            splits.update(_paper_splits(name, params))
    if all(isinstance(v.x, torch.Tensor) for v in splits.values()):
        return DownstreamData(splits, gray_transform_id(size))
    from timm.data import resolve_data_config

    from nml.models import create_backbone

    cfg = resolve_data_config({"input_size": (3, size, size)}, model=create_backbone(params.pretrain.model))
    return DownstreamData(splits, f"timm-eval-{size}", tuple(cfg["mean"]), tuple(cfg["std"]))


def _paper_splits(name: str, params: Params) -> dict[tuple[str, str], Split]:
    """A paper-scale downstream set through its real loader (torchvision or ImageFolder).

    Images stay on disk: the split holds a dataset with timm's evaluation transform for the
    pre-training backbone, and features are extracted batch by batch.
    """
    import timm
    from timm.data import create_transform, resolve_data_config

    from nml.assets.paper import (
        ImageFolderDataset,
        dataset_targets,
        load_image_folder,
        load_torchvision,
    )
    from nml.catalog import dataset_root, get_dataset_entry

    size = params.pretrain.image_size
    model = timm.create_model(params.pretrain.model, pretrained=False, num_classes=0)
    transform = create_transform(**resolve_data_config({"input_size": (3, size, size)}, model=model))
    source = get_dataset_entry(name).paper_source
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
        device=resolve_device(params.device),
        desc=f"{ck.spec.track} g={ck.spec.noise_ratio:.2f} {split.domain}",
    )


# Bump when evaluate_checkpoint changes what it computes.
EVALUATION_CODE_VERSION = 1


def _evaluation_path(ck: Checkpoint, data: DownstreamData, params: Params) -> Path:
    s = params.spectral
    key = stable_hash({
        "checkpoint": ck.spec.key(), "transform": data.transform,
        "data": sorted((f"{d}/{sp}", v.data_id) for (d, sp), v in data.splits.items()),
        "id_tasks": s.id_tasks, "ood": [o.model_dump() for o in s.ood], "probe": s.probe.model_dump(),
        "code": EVALUATION_CODE_VERSION,
    }, length=24)
    return features_dir() / "evaluations" / f"{key}.pkl"


def evaluate_checkpoint(ck: Checkpoint, data: DownstreamData, params: Params) -> tuple[list[dict], list[dict]]:
    """Probe one checkpoint on every task; return (result rows, spectrum rows).

    The outcome is cached by checkpoint, data, tasks and probe settings, so a warm re-run of
    the chapter reads it back instead of fitting the probes again.
    """
    path = _evaluation_path(ck, data, params)
    if path.exists():
        try:
            rows, spectra = pickle.loads(path.read_bytes())
            log.info("reusing probe results %s (%s g=%.2f s=%d)", path.name, ck.spec.track, ck.spec.noise_ratio, ck.spec.seed)
            return rows, spectra
        except Exception as err:  # torn or foreign file: evaluate again
            log.warning("ignoring unreadable probe results %s (%s)", path, err)
    rows, spectra = _evaluate_checkpoint(ck, data, params)
    atomic_write_bytes(path, pickle.dumps((rows, spectra)))
    log.info("cached probe results %s", path.name)
    return rows, spectra


def _evaluate_checkpoint(ck: Checkpoint, data: DownstreamData, params: Params) -> tuple[list[dict], list[dict]]:
    s = params.spectral
    base = {"track": ck.spec.track, "gamma": ck.spec.noise_ratio, "seed": ck.spec.seed}
    feats: dict[tuple[str, str], np.ndarray] = {}

    def f(domain: str, split: str) -> np.ndarray:
        if (domain, split) not in feats:
            feats[(domain, split)] = _features(ck, data.get(domain, split), data, params)
        return feats[(domain, split)]

    probes: dict[str, LinearProbe] = {}

    def probe(domain: str) -> LinearProbe:
        if domain not in probes:
            probes[domain] = LinearProbe(
                epochs=s.probe.epochs, batch_size=s.probe.batch_size, lr=s.probe.lr,
                weight_decay=s.probe.weight_decay, standardize=s.probe.standardize, seed=ck.spec.seed,
            ).fit(f(domain, "train"), data.get(domain, "train").y)
        return probes[domain]

    rows, spectra = [], []

    def score(kind: str, task: str, train: str, test: str) -> None:
        x, y = f(test, "test"), data.get(test, "test").y
        pred = probe(train).predict(x)
        sigma = singular_values(x)
        rows.append({**base, "kind": kind, "task": task, "train_domain": train, "test_domain": test,
                     "acc": accuracy(y, pred), "macro_f1": macro_f1(y, pred),
                     "sve": sve(sigma), "lsvr": lsvr(sigma),
                     "n_train": len(data.get(train, "train").y), "n_test": len(y)})
        if (test, kind) not in {(r["domain"], r["kind"]) for r in spectra}:
            spectra.append({**base, "kind": kind, "domain": test, "sigma": sigma})

    for task in s.id_tasks:
        score("ID", task, task, task)
    for pair in s.ood:
        for test in pair.test:
            score("OOD", pair.name, pair.train, test)
    return rows, spectra


def evaluate_all(checkpoints: list[Checkpoint], data: DownstreamData, params: Params) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tidy results (one row per checkpoint × task × test domain) and spectra of every checkpoint."""
    rows, spectra = [], []
    for ck in tqdm(checkpoints, desc="checkpoints"):
        r, sp = evaluate_checkpoint(ck, data, params)
        rows += r
        spectra += sp
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
