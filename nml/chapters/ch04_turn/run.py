"""Chapter 04: fine-tuning a pre-trained model on noisy downstream labels — TURN vs the baselines.

The downstream set is loaded once. For every (noise setting, seed) the training labels are
corrupted once and a validation split is carved from the noisy training split (stratified on the
noisy labels, seeded, ``turn.validation_fraction``; its labels as noisy as the training labels,
as a practitioner would have them). Every method trains on the rest, on identical labels, and
records per epoch the validation and the test accuracy. ``best`` is the test accuracy at the
fine-tuning epoch with the best validation accuracy; the paper's best-test-epoch number is kept
as ``best_oracle``. Frozen features (clean and augmented views) are extracted once per backbone
through the feature cache. Every run is a job whose result is cached under a content key
(``nml._infra.jobs``): an interrupted run resumes at the next unfinished job, a warm run only reads.
"""

from __future__ import annotations

import functools
import logging
import pickle
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from nml._infra.cache import atomic_write_bytes, stable_hash
from nml._infra.jobs import cached_result, result_path, run_cached
from nml._infra.progress import tqdm
from nml._infra.runtime import Runtime, resolve_runtime, use_runtime
from nml._infra.training import OptimConfig
from nml.chapters.ch02_spectral.run import DownstreamData, Split, load_downstream_data
from nml.chapters.ch04_turn.config import LabelNoise, TurnBackbone
from nml.config import Params
from nml.data.subsample import cap_per_class
from nml.data.validation import validation_split
from nml.estimators.noisy_labels import create_method, detection_scores, method_input
from nml.estimators.noisy_labels.base import select_epochs
from nml.estimators.noisy_labels.full import crop_augment
from nml.models.backbones import resolve_device
from nml.models.features import (
    array_id,
    extract_features,
)
from nml.models.pretrain import Checkpoint, take
from nml.noise import CIFAR100_SUPERCLASSES, NoisyLabels, inject_noise

log = logging.getLogger("nml.chapters.ch04_turn.run")

# Bump when run_job changes what it computes (invalidates cached results).
TURN_CODE_VERSION = 5

FFT_METHODS = ("ce-fft", "gce-fft", "elr-fft")
LP_METHODS = ("ce-lp", "gce-lp", "elr-lp")
TWO_NETWORK_METHODS = ("dividemix-lp", "unicon-lp")
LABELS = {"ce-fft": "CE (FFT)", "gce-fft": "GCE (FFT)", "elr-fft": "ELR (FFT)", "ce-lp": "CE (LP)",
          "gce-lp": "GCE (LP)", "elr-lp": "ELR (LP)", "dividemix-lp": "DivideMix (LP)", "unicon-lp": "UNICON (LP)",
          "turn": "TURN (LP-FFT)"}
TSNE_KEEP = 2000  # test samples whose fine-tuned features a ce-fft job keeps (for the t-SNE figure)
ORACLE_LABEL = "oracle, as in the paper"


# --------------------------------------------------------------------------------------------
# data and noise


def _cap(split: Split, cap: int | None, seed: int) -> Split:
    if cap is None:
        return split
    idx = cap_per_class(split.y, cap, seed)
    x = split.x[torch.from_numpy(idx)] if isinstance(split.x, torch.Tensor) else torch.utils.data.Subset(split.x, idx.tolist())
    return Split(split.domain, split.split, x, split.y[idx], stable_hash({"of": split.data_id, "idx": array_id(idx)}, length=24))


def load_turn_data(params: Params, pre_data: Any = None, dataset: str | None = None) -> tuple[Split, Split, DownstreamData]:
    """The downstream set's train and test splits, capped per class (``turn.max_*_per_class``).

    ``fashion-mnist-heldout`` draws its training images from those 01 did not pre-train on
    (``pre_data.heldout_train_indices``; loaded here when not given), so 01's checkpoint never
    saw them.
    """
    t, s = params.turn, params.spectral
    dataset = dataset or t.dataset
    heldout = None
    if dataset == "fashion-mnist-heldout":
        if pre_data is None:
            from nml.chapters.ch01_pretraining import run as pretraining

            pre_data = pretraining.load_pretrain_data(params)
        heldout = pre_data.heldout_train_indices
    only = params.model_copy(update={"spectral": s.model_copy(update={"id_tasks": [dataset], "ood": [], "max_per_class": None})})
    data = load_downstream_data(only, heldout)
    train = _cap(data.get(dataset, "train"), t.max_train_per_class, s.split_seed)
    test = _cap(data.get(dataset, "test"), t.max_test_per_class, s.split_seed)
    return train, test, DownstreamData({(dataset, "train"): train, (dataset, "test"): test}, data.transform, data.mean, data.std)


def _pixels(x: torch.Tensor | torch.utils.data.Dataset, side: int = 32) -> np.ndarray:
    """Images as flat vectors at ``side``×``side`` (the instance-noise generator's input, as in Xia et al.)."""
    rows = []
    for start in range(0, len(x), 512):
        batch = take(x, torch.arange(start, min(start + 512, len(x)))).float()
        if batch.shape[-1] != side:
            batch = torch.nn.functional.interpolate(batch, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
        rows.append(batch.reshape(len(batch), -1).numpy())
    return np.concatenate(rows)


def make_noisy_labels(noise: LabelNoise, train: Split, params: Params, seed: int) -> NoisyLabels:
    """The training labels under ``noise``; seed ``1000 + seed`` so every method of a seed sees the same labels."""
    n_classes = int(train.y.max()) + 1
    kwargs: dict[str, Any] = {}
    if noise.kind == "asymmetric":
        groups = params.turn.asymmetric_groups
        groups = CIFAR100_SUPERCLASSES if groups == "cifar100-superclasses" else groups
        if groups is not None:
            kwargs["superclasses"] = groups
            # the groups name every class of the dataset, also those a (capped) split may lack
            n_classes = max(n_classes, 1 + max(c for g in groups for c in g))
    kwargs["n_classes"] = n_classes
    if noise.kind == "instance":
        kwargs["features"] = _pixels(train.x)
    return inject_noise(train.y, noise.kind, noise.ratio, seed=1000 + seed, **kwargs)


def subset_images(x: torch.Tensor | torch.utils.data.Dataset, idx: np.ndarray) -> torch.Tensor | torch.utils.data.Dataset:
    """Images ``idx`` of ``x``: a tensor for a tensor, a lazy ``Subset`` for a dataset on disk."""
    return x[torch.from_numpy(np.asarray(idx))] if isinstance(x, torch.Tensor) else torch.utils.data.Subset(x, np.asarray(idx).tolist())


# --------------------------------------------------------------------------------------------
# backbones: described by a picklable spec, built where they are used


@dataclass(frozen=True)
class BackboneSpec:
    """A backbone by name; ``checkpoint`` is 01's clean supervised checkpoint, loaded from its file."""

    name: str
    image_size: int | None = None
    checkpoint_path: str | None = None
    checkpoint_key: str | None = None
    model: str | None = None
    in_chans: int = 1
    source_mean: tuple[float, ...] | None = None
    source_std: tuple[float, ...] | None = None

    @property
    def identity(self) -> str:
        return self.checkpoint_key or f"{self.name}@{self.image_size}"


def clean_checkpoints(params: Params, pre_data: Any = None) -> list[Checkpoint]:
    """The one checkpoint of 01 that 04 fine-tunes (clean, supervised, ``turn.checkpoint_seed``),
    read from 01's cache or trained here; none when no backbone (or regime candidate) is ``checkpoint``."""
    t = params.turn
    if not any(b.name == "checkpoint" for b in t.backbones) and not any(c.backbone == "checkpoint" for c in t.regime.candidates):
        return []
    from nml.chapters.ch01_pretraining import run as pretraining

    pre_data = pre_data if pre_data is not None else pretraining.load_pretrain_data(params)
    return [pretraining.train_supervised(params, pre_data, 0.0, params.turn.checkpoint_seed)]


def backbone_spec(cfg: TurnBackbone, checkpoints: list[Checkpoint], data: DownstreamData, params: Params) -> BackboneSpec:
    if cfg.name == "checkpoint":
        seed = params.turn.checkpoint_seed
        found = [ck for ck in checkpoints if ck.spec.track == "supervised" and ck.spec.noise_ratio == 0.0 and ck.spec.seed == seed]
        if not found:
            raise ValueError(f"turn: no clean supervised checkpoint with seed {seed} among notebook 01's checkpoints")
        ck = found[0]
        return BackboneSpec("checkpoint", checkpoint_path=str(ck.path), checkpoint_key=ck.spec.key(), model=ck.spec.model,
                            in_chans=ck.spec.in_chans)
    return BackboneSpec(cfg.name, image_size=cfg.image_size, source_mean=data.mean, source_std=data.std)


@functools.lru_cache(maxsize=4)
def build_backbone(spec: BackboneSpec) -> torch.nn.Module:
    """A fresh trainable module for ``spec`` (cached per process; estimators deep-copy it)."""
    if spec.name == "checkpoint":
        from nml.models.backbones import (
            create_backbone,
        )

        module = create_backbone(spec.model, in_chans=spec.in_chans)
        module.load_state_dict(torch.load(spec.checkpoint_path, map_location="cpu", weights_only=False)["backbone"])
        return module.eval()
    from nml.models.image_encoders import (
        create_encoder,
    )

    options = {"source_mean": spec.source_mean, "source_std": spec.source_std}
    if spec.image_size is not None:
        options["image_size"] = spec.image_size
    module = create_encoder(spec.name, **options)
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"turn: backbone {spec.name!r} is not a torch module, so it cannot be fine-tuned")
    return module.eval()


def _transform_id(spec: BackboneSpec, data: DownstreamData) -> str:
    if spec.name == "checkpoint":
        return data.transform
    return f"{data.transform}+{getattr(build_backbone(spec), 'transform_id', spec.identity)}"


class AugmentedView(torch.utils.data.Dataset):
    """View ``k`` of every image: a fixed random translation (and flip), seeded per (k, index)."""

    def __init__(self, images: torch.Tensor | torch.utils.data.Dataset, k: int, pad: int | None, flip: bool):
        self.images, self.k, self.augment = images, k, crop_augment(pad, flip)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        gen = torch.Generator().manual_seed(self.k * 1_000_003 + int(i))
        return self.augment(take(self.images, torch.tensor([i])), gen)[0], 0


def augmented_view(images: torch.Tensor | torch.utils.data.Dataset, k: int, pad: int | None,
                   flip: bool) -> torch.Tensor | torch.utils.data.Dataset:
    """View ``k`` of the training images: a tensor, augmented batch-wise (fast), for in-memory
    sets; an :class:`AugmentedView` dataset, augmented item by item, for sets on disk."""
    if not isinstance(images, torch.Tensor):
        return AugmentedView(images, k, pad, flip)
    augment = crop_augment(pad, flip)
    return torch.cat([augment(images[i:i + 1024], torch.Generator().manual_seed(k * 1_000_003 + i))
                      for i in range(0, len(images), 1024)])


@dataclass
class BackboneFeatures:
    """Frozen features of one backbone: clean train / test and a bank of augmented train views."""

    spec: BackboneSpec
    train: np.ndarray
    test: np.ndarray
    views: np.ndarray  # (N, V, D), view 0 = train


def backbone_features(spec: BackboneSpec, train: Split, test: Split, data: DownstreamData, params: Params) -> BackboneFeatures:
    """Extract (or read from the cache) everything the LP methods and TURN's step 1 read."""
    t = params.turn
    module = build_backbone(spec)
    transform = _transform_id(spec, data)
    kw = {"transform": transform, "batch_size": params.spectral.feature_batch_size, "device": resolve_device(params.device),
          "num_workers": params.num_workers}
    tr = extract_features(module, train.x, data_id=train.data_id, split="turn/train", desc=f"{spec.name} train", **kw)
    te = extract_features(module, test.x, data_id=test.data_id, split="turn/test", desc=f"{spec.name} test", **kw)
    views = [tr]
    for k in range(1, t.two_networks.views):
        aug = augmented_view(train.x, k, t.augment.crop_pad, t.augment.flip)
        data_id = stable_hash({"of": train.data_id, "view": k, "pad": t.augment.crop_pad, "flip": t.augment.flip}, length=24)
        views.append(extract_features(module, aug, data_id=data_id, split="turn/train-view", desc=f"{spec.name} view {k}", **kw))
    return BackboneFeatures(spec, tr, te, np.stack(views, axis=1))


# --------------------------------------------------------------------------------------------
# methods' keyword arguments from the params


def method_kwargs(method: str, backbone: TurnBackbone, params: Params) -> dict[str, Any]:
    """Every hyper-parameter of ``method`` on ``backbone``, from ``params.turn``.

    TURN's step 1 takes the GCE-LP baseline's settings (``lp``, ``gce_q``, ``lp_standardize``)
    and its FFT step the FFT baselines' (``fft``, ``bn_mode``; its learning rate is the
    backbone's ``turn_lr`` when set), so "TURN's step 1 = GCE-LP" and "one BatchNorm policy"
    hold by construction.
    """
    t = params.turn
    lp: OptimConfig = backbone.lp or t.lp
    fft: OptimConfig = backbone.fft or t.fft
    aug = {"augment": True, "flip": t.augment.flip, "crop_pad": t.augment.crop_pad}
    common = {"device": params.device}
    if method in FFT_METHODS:
        return {**common, **aug, "epochs": fft.epochs, "batch_size": fft.batch_size, "optimizer": fft.optimizer,
                "lr": fft.lr, "weight_decay": fft.weight_decay, "momentum": fft.momentum, "q": t.gce_q,
                "elr_lambda": t.elr.lam, "elr_beta": t.elr.beta, "bn_mode": t.bn_mode}
    if method in LP_METHODS:
        return {**common, "epochs": lp.epochs, "batch_size": lp.batch_size, "optimizer": lp.optimizer, "lr": lp.lr,
                "weight_decay": lp.weight_decay, "momentum": lp.momentum, "q": t.gce_q, "elr_lambda": t.elr.lam,
                "elr_beta": t.elr.beta, "standardize": t.lp_standardize}
    if method in TWO_NETWORK_METHODS:
        two = t.two_networks
        kw = {**common, "epochs": lp.epochs, "warmup_epochs": two.warmup_epochs, "batch_size": two.batch_size,
              "optimizer": lp.optimizer, "lr": lp.lr, "weight_decay": lp.weight_decay, "momentum": lp.momentum,
              "lambda_u": two.lambda_u, "standardize": t.lp_standardize}
        if method == "dividemix-lp":
            kw["p_threshold"] = two.p_threshold
        else:
            kw["lambda_c"] = two.lambda_c
        return kw
    if method == "turn":
        return {**common, **aug, "epochs_lp": lp.epochs, "lp_batch_size": lp.batch_size, "lp_lr": lp.lr,
                "lp_weight_decay": lp.weight_decay, "lp_momentum": lp.momentum, "lp_optimizer": lp.optimizer,
                "lp_standardize": t.lp_standardize, "q": t.gce_q, "epochs_fft": t.turn.epochs_fft,
                "batch_size": fft.batch_size, "optimizer": fft.optimizer, "lr": backbone.turn_lr or fft.lr,
                "weight_decay": fft.weight_decay, "momentum": fft.momentum, "tau": t.turn.tau, "bn_mode": t.bn_mode}
    raise KeyError(f"unknown method {method!r}")


# --------------------------------------------------------------------------------------------
# one run (the unit that is cached and parallelised)


@dataclass
class TurnJob:
    """Fit ``method`` with ``kwargs`` on one backbone's inputs and noisy labels; score it on the
    validation split (noisy labels) and on the test set (clean labels) after every epoch.

    ``x_*`` are images (FFT, TURN), ``f_*`` features (LP), a view bank (two-network methods with
    ``views="bank"``) or the test / validation features of TURN's step 1. ``views="encoder"``
    makes DivideMix-LP / UNICON-LP re-run the frozen encoder on every augmented batch (the paper's
    way; :class:`~nml.estimators.noisy_labels.views.EncoderViews`).
    """

    meta: dict
    method: str
    kwargs: dict
    seed: int
    spec: BackboneSpec
    y_fit: np.ndarray
    is_noisy: np.ndarray
    y_val: np.ndarray
    y_test: np.ndarray
    test_id: str
    data_key: str  # identity of the fit / validation / test images (data ids and split indices)
    x_fit: Any = None
    x_val: Any = None
    x_test: Any = None
    f_fit: np.ndarray | None = None
    f_val: np.ndarray | None = None
    f_test: np.ndarray | None = None
    views: str = "bank"
    augment: tuple = (None, False)  # (crop_pad, flip) of EncoderViews
    runtime: Runtime | None = None  # how image methods train (precision, processes, data loading)
    overrides: dict = field(default_factory=dict)  # the study's changes to the method's params (in kwargs too)

    def key(self) -> str:
        inputs = [array_id(a) if isinstance(a, np.ndarray) else None for a in (self.f_fit, self.f_val, self.f_test)]
        # fp32 keeps the keys runs had before precision was a choice; processes and loaders do
        # not change what is computed (the same global batches), so they are not in the key
        numerics = {} if self.runtime is None or self.runtime.precision == "fp32" else {"precision": self.runtime.precision}
        return stable_hash({**numerics, "method": self.method, "kwargs": sorted((k, repr(v)) for k, v in self.kwargs.items()),
                            "seed": self.seed, "backbone": self.spec.identity, "labels": array_id(self.y_fit),
                            "noisy": array_id(self.is_noisy), "val": array_id(self.y_val), "test": array_id(self.y_test),
                            "data": self.data_key, "inputs": inputs, "images": self.x_fit is not None,
                            "views": self.views, "augment": list(self.augment), "code": TURN_CODE_VERSION}, length=24)


def _selection_stats(cleansing: list[dict], is_noisy: np.ndarray) -> list[dict]:
    """Per cleansing epoch: size and purity of the GMM's clean set and of the balanced subset, detection scores."""
    rows = []
    for c in cleansing:
        mask, subset = c["clean_mask"], c["subset"]
        rows.append({"fft_epoch": c["epoch"], "n_clean": int(mask.sum()), "n_subset": len(subset),
                     "purity_clean": float(1 - is_noisy[mask].mean()) if mask.any() else float("nan"),
                     "purity_subset": float(1 - is_noisy[subset].mean()) if len(subset) else float("nan"),
                     **{f"detect_{k}": v for k, v in detection_scores(~mask, is_noisy).items()}})
    return rows


def summarize_run(history: list[dict], predictions: list[np.ndarray], phases: tuple[str, ...] | None) -> dict:
    """What a run reports, from its per-epoch history and test predictions.

    ``best`` = test accuracy at the epoch of ``phases`` with the best validation accuracy (ties:
    the earliest); ``best_oracle`` = the highest test accuracy over those epochs (the paper's
    "best", chosen on test labels); ``last`` = the last epoch's. ``lp_acc`` = the test accuracy at
    the end of an ``"lp"`` phase that is not the tuning phase (TURN's step 1), else NaN. The test
    predictions of the best, last and LP-end epochs are kept as int arrays (``pred_*``).
    """
    chosen = select_epochs(history, phases)
    out: dict[str, Any] = {}
    for name, key in (("best", "best"), ("last", "last"), ("best_oracle", "oracle")):
        i = chosen[key]
        out[name] = history[i]["test_acc"] if i >= 0 else float("nan")
        out[f"{name}_epoch"] = history[i]["epoch"] if i >= 0 else -1
    out["best_val"] = history[chosen["best"]]["val_acc"] if chosen["best"] >= 0 else float("nan")
    out["last_val"] = history[chosen["last"]].get("val_acc", float("nan"))
    out["pred_best"] = np.asarray(predictions[chosen["best"]]).astype(np.int32) if chosen["best"] >= 0 else None
    out["pred_last"] = np.asarray(predictions[chosen["last"]]).astype(np.int32)
    lp = [i for i, h in enumerate(history) if h["phase"] == "lp"]
    if lp and phases is not None and "lp" not in phases:
        out["lp_acc"], out["lp_val"] = history[lp[-1]]["test_acc"], history[lp[-1]].get("val_acc", float("nan"))
        out["pred_lp"] = np.asarray(predictions[lp[-1]]).astype(np.int32)
    else:
        out["lp_acc"] = out["lp_val"] = float("nan")
        out["pred_lp"] = None
    return out


def run_job(job: TurnJob) -> dict:
    """Fit and score one job: best (by validation) / last / oracle test accuracy, TURN's LP
    accuracy, the chosen epochs' test predictions, training seconds, history, selection stats."""
    with use_runtime(job.runtime):
        return _run_job(job)


def _run_job(job: TurnJob) -> dict:
    what = method_input(job.method)
    est = create_method(job.method, seed=job.seed, **job.kwargs,
                      **({"backbone": build_backbone(job.spec)} if what == "images" else {}))
    test_set = (job.x_test if what == "images" else job.f_test, job.y_test)
    val_set = (job.x_val if what == "images" else job.f_val, job.y_val)
    if job.method == "turn":
        est.fit(job.x_fit, job.y_fit, eval_set=test_set, val_set=val_set, features=job.f_fit,
                eval_features=job.f_test, val_features=job.f_val)
    elif what == "images":
        est.fit(job.x_fit, job.y_fit, eval_set=test_set, val_set=val_set)
    elif what == "views" and job.views == "encoder":
        from nml.estimators.noisy_labels import EncoderViews

        encoder = build_backbone(job.spec)
        est.fit(EncoderViews(encoder, job.x_fit, crop_augment(*job.augment)), job.y_fit, eval_set=test_set, val_set=val_set)
    else:
        est.fit(job.f_fit, job.y_fit, eval_set=test_set, val_set=val_set)
    out = summarize_run(est.history_, est.test_predictions_, est.TUNING_PHASES)
    out.update({"fit_seconds": est.fit_seconds_, "history": est.history_, "n_train": len(job.y_fit),
                "n_val": len(job.y_val), "realized_noise": float(job.is_noisy.mean()), "test_id": job.test_id})
    if job.method == "turn":
        out["selection"] = _selection_stats(est.cleansing_, job.is_noisy)
    if job.method == "ce-fft":
        n = min(TSNE_KEEP, len(job.y_test))
        out["test_features_after"] = est.transform(take(job.x_test, torch.arange(n))).astype(np.float16)
    return out


@dataclass
class TurnContext:
    """Everything the chapter's studies share: data, backbones and their features, noisy labels, splits."""

    params: Params
    train: Split
    test: Split
    data: DownstreamData
    features: dict[str, BackboneFeatures]
    runtime: Runtime | None = None
    _labels: dict = field(default_factory=dict)

    @property
    def test_id(self) -> str:
        return self.test.data_id

    def truth(self) -> dict[str, np.ndarray]:
        """``{test_id: true test labels}`` for :meth:`nml.report.scores.Scores.from_predictions`."""
        return {self.test_id: self.test.y}

    def labels(self, noise: LabelNoise, seed: int) -> NoisyLabels:
        key = (noise.kind, noise.ratio, seed)
        if key not in self._labels:
            self._labels[key] = make_noisy_labels(noise, self.train, self.params, seed)
        return self._labels[key]

    def split(self, noise: LabelNoise, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(fit, validation) indices of the training split for this (noise, seed): stratified on the noisy labels.

        A noisy class with a single sample (tiny data only) cannot be stratified: the split is
        then a plain seeded random one (each sample its own group), with a warning.
        """
        labels = self.labels(noise, seed).labels
        fraction = self.params.turn.validation_fraction
        counts = np.bincount(labels)
        if counts[counts > 0].min() < 2:
            log.warning("turn: a noisy class of %s (seed %d) has one sample; validation split not stratified", noise.label, seed)
            return validation_split(labels, fraction, seed, groups=np.arange(len(labels)))
        return validation_split(labels, fraction, seed)

    def job(self, study: str, backbone: str, noise: LabelNoise, method: str, seed: int, label: str | None = None,
            views: str = "bank", **overrides: Any) -> TurnJob:
        cfg = self.params.turn.backbone(backbone)
        feats = self.features[backbone]
        labels = self.labels(noise, seed)
        fit, val = self.split(noise, seed)
        what = method_input(method)
        kwargs = {**method_kwargs(method, cfg, self.params), **overrides}
        meta = {"study": study, "backbone": backbone, "noise": noise.label, "noise_kind": noise.kind,
                "noise_ratio": noise.ratio, "method": method, "label": label or LABELS[method], "seed": seed}
        data_key = stable_hash({"train": self.train.data_id, "test": self.test.data_id, "fit": array_id(fit),
                                "val": array_id(val)}, length=24)
        job = TurnJob(meta, method, kwargs, seed, feats.spec, labels.labels[fit], labels.is_noisy[fit], labels.labels[val],
                      self.test.y, self.test_id, data_key, overrides=dict(overrides))
        if what == "images" or views == "encoder":
            job.x_fit, job.x_val, job.x_test = subset_images(self.train.x, fit), subset_images(self.train.x, val), self.test.x
        if what == "images":
            job.runtime = self.runtime
            if method == "turn" and kwargs.get("bn_mode") != "recalibrate":
                # cached features were made with the backbone's own BatchNorm statistics
                job.f_fit, job.f_val, job.f_test = feats.train[fit], feats.train[val], feats.test
        elif what == "views":
            job.f_fit = feats.views[fit] if views == "bank" else None
            job.f_val, job.f_test = feats.train[val], feats.test
            job.views = views
            job.augment = (self.params.turn.augment.crop_pad, self.params.turn.augment.flip)
        else:
            job.f_fit, job.f_val, job.f_test = feats.train[fit], feats.train[val], feats.test
        return job


def prepare(params: Params, checkpoints: list[Checkpoint], pre_data: Any = None) -> TurnContext:
    """Load the downstream set and extract every backbone's frozen features (cached).

    Under ``torchrun`` (``nml finetune``) rank 0 extracts and caches first; the others then read."""
    runtime = resolve_runtime(params.runtime, resolve_device(params.device), num_workers=params.num_workers)
    with runtime.main_first():
        return _prepare(params, checkpoints, pre_data, runtime)


def _prepare(params: Params, checkpoints: list[Checkpoint], pre_data: Any, runtime: Runtime) -> TurnContext:
    train, test, data = load_turn_data(params, pre_data)
    log.info("turn: %s, %d train / %d test images, %d classes", params.turn.dataset, len(train.y), len(test.y),
             int(train.y.max()) + 1)
    feats = {}
    for cfg in tqdm(params.turn.backbones, desc="backbone features (cached or extracted)"):
        spec = backbone_spec(cfg, checkpoints, data, params)
        feats[cfg.name] = backbone_features(spec, train, test, data, params)
    return TurnContext(params, train, test, data, feats, runtime)


def job_cell(job: TurnJob) -> str:
    """The ``nml finetune --cell`` of a job: ``study=…,backbone=…,noise=kind:ratio,method=…,seed=…``
    and the study's overrides (values in YAML; the label is the notebook's and is not needed)."""
    m = job.meta
    parts = {"study": m["study"], "backbone": m["backbone"], "noise": f"{m['noise_kind']}:{m['noise_ratio']:g}",
             "method": m["method"], "seed": m["seed"], **job.overrides}
    return ",".join(f"{k}={_cell_value(v)}" for k, v in parts.items())


def _cell_value(value: Any) -> str:
    text = value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
    if "," in text:
        raise ValueError(f"a --cell value cannot contain a comma: {text!r}")
    return text


def parse_job_cell(cell: str) -> dict[str, Any]:
    """``key=value,…`` of :func:`job_cell` back to :meth:`TurnContext.job`'s arguments."""
    fields: dict[str, Any] = {}
    for part in cell.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"--cell {cell!r}: expected key=value pairs separated by commas, got {part!r}")
        key = key.strip()
        fields[key] = value if key in ("study", "backbone", "noise", "method", "label") else yaml.safe_load(value)
    missing = {"backbone", "noise", "method", "seed"} - set(fields)
    if missing:
        raise ValueError(f"--cell {cell!r}: missing {sorted(missing)} (e.g. backbone=resnet50.a1_in1k,noise=uniform:0.6,"
                         "method=turn,seed=0)")
    kind, _, ratio = str(fields.pop("noise")).partition(":")
    fields["noise"] = LabelNoise(kind=kind, ratio=float(ratio or "nan"))
    fields.setdefault("study", "table2")
    return fields


def finetune_cell(params: Params, cell: str) -> dict:
    """``nml finetune``: fit (or read) one job of chapter 04 in this process — one of ``torchrun``'s
    processes when launched by it; rank 0 writes the result where the notebook's job map reads it."""
    fields = parse_job_cell(cell)
    params = params.model_copy(update={"runtime": params.runtime.model_copy(update={"launcher": "local"})})
    checkpoints = clean_checkpoints(params)  # every process: trained together (rank 0 writes) if not cached
    ctx = prepare(params, checkpoints)
    names = [b.name for b in params.turn.backbones]
    if fields["backbone"] not in names:
        raise ValueError(f"--cell: backbone {fields['backbone']!r} is not in turn.backbones {names}")
    job = ctx.job(fields.pop("study"), fields.pop("backbone"), fields.pop("noise"), fields.pop("method"),
                  int(fields.pop("seed")), fields.pop("label", None), **fields)
    path = result_path("turn", job.key())
    if path.exists():
        log.info("finetune: %s is cached (%s)", cell, path.name)
        return pickle.loads(path.read_bytes())
    result = run_job(job)
    if ctx.runtime.is_main:
        atomic_write_bytes(path, pickle.dumps(result))
        log.info("finetune: cached %s as %s", cell, path.name)
    ctx.runtime.barrier()
    return result


def _launched_if_asked(ctx: TurnContext, jobs: list[TurnJob]) -> None:
    """With ``runtime.launcher: torchrun``, fit each uncached image-level job (FFT, TURN) in
    ``torchrun``'s processes (``nml finetune``), one after the other; the job map then reads them."""
    params = ctx.params
    if params.runtime.launcher != "torchrun":
        return
    from nml._infra.launch import run_torchrun
    from nml.config import dump_params

    text = dump_params(params)
    for job in jobs:
        if method_input(job.method) == "images" and not result_path("turn", job.key()).exists():
            run_torchrun(params.runtime, "finetune", text, job_cell(job))


def run(ctx: TurnContext, jobs: list[TurnJob], desc: str, n_jobs: int | None = None, local: bool = False) -> pd.DataFrame:
    """Run (or read) every job; one row per job with its meta and what :func:`run_job` reports
    (``local``: in this process, whatever the executor — for timings, measured alone and here)."""
    _launched_if_asked(ctx, jobs)
    n_jobs = ctx.params.turn.n_jobs if n_jobs is None else n_jobs
    results = run_cached(jobs, TurnJob.key, run_job, folder="turn", n_jobs=n_jobs, desc=desc, local=local)
    return pd.DataFrame([{**job.meta, **res} for job, res in zip(jobs, results, strict=True)])


# --------------------------------------------------------------------------------------------
# the chapter's studies


def table2(ctx: TurnContext) -> pd.DataFrame:
    """Table 2 analog: backbones × noise settings (+ the mild one) × methods × seeds."""
    t = ctx.params.turn
    jobs = []
    for b in t.backbones:
        for noise in t.noise:
            jobs += [ctx.job("table2", b.name, noise, m, s) for s in t.seeds for m in t.methods]
        if t.mild_noise is not None:
            mild = [m for m in t.methods if m in FFT_METHODS + LP_METHODS + ("turn",)]
            jobs += [ctx.job("mild", b.name, t.mild_noise, m, s) for s in t.seeds for m in mild]
    return run(ctx, jobs, "Table 2 analog")


COMPONENT_ROWS = (  # Table 4's rows: (LP step, cleansing)
    (False, "every"),
    (True, "none"),
    (True, "once"),
    (True, "every"),
)
FULL_TURN = "LP yes, cleansing every"


def components(ctx: TurnContext) -> pd.DataFrame:
    """Table 4 analog: TURN without LP, and with cleansing none / once / every epoch."""
    c, t = ctx.params.turn.components, ctx.params.turn
    jobs = []
    for b in c.backbones:
        for noise in c.noise:
            for lp_step, cleansing in COMPONENT_ROWS:
                label = f"LP {'yes' if lp_step else 'no'}, cleansing {cleansing}"
                over = {} if (lp_step, cleansing) == (True, "every") else {"lp_step": lp_step, "cleansing": cleansing}
                jobs += [ctx.job("components", b, noise, "turn", s, label=label, **over) for s in t.seeds]
    rows = run(ctx, jobs, "Table 4 analog")
    return rows.assign(lp_step=[j.kwargs.get("lp_step", True) for j in jobs],
                       cleansing=[j.kwargs.get("cleansing", "every") for j in jobs])


def sensitivity(ctx: TurnContext) -> pd.DataFrame:
    """Fig. 3 analog (right): TURN as one of E_LP, E_FFT, τ varies, the others at their defaults."""
    sv, t = ctx.params.turn.sensitivity, ctx.params.turn
    jobs, varied, values = [], [], []
    defaults = method_kwargs("turn", t.backbone(sv.backbone), ctx.params)
    for name, grid in (("epochs_lp", sv.epochs_lp), ("epochs_fft", sv.epochs_fft), ("tau", sv.tau)):
        for v in grid:
            # the default value is the Table 2 run itself (same cache key)
            over = {} if defaults[name] == v else {name: v}
            jobs += [ctx.job("sensitivity", sv.backbone, sv.noise, "turn", s, **over) for s in t.seeds]
            varied += [name] * len(t.seeds)
            values += [v] * len(t.seeds)
    return run(ctx, jobs, "sensitivity").assign(parameter=varied, value=values)


def purity(ctx: TurnContext) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 9 analog: TURN's selection vs τ, and TURN vs confident learning as noisy-label detectors.

    Returns (runs: one row per TURN run with its first / last cleansing, detection: one row per
    (noise, seed, detector)). Both detectors read the same frozen features of the fit split:
    TURN's first cleansing uses the GCE linear probe's losses on them; cleanlab's
    ``find_label_issues`` uses out-of-fold probabilities of a linear probe (``purity.cv_folds``
    folds) on them.
    """
    p, t = ctx.params.turn.purity, ctx.params.turn
    default_tau = t.turn.tau
    jobs, taus = [], []
    for noise in p.noise:
        for tau in p.tau:
            over = {} if tau == default_tau else {"tau": tau}
            jobs += [ctx.job("purity", p.backbone, noise, "turn", s, **over) for s in t.seeds]
            taus += [tau] * len(t.seeds)
    runs = run(ctx, jobs, "Table 9 analog").assign(tau=taus)
    for which, pos in (("first", 0), ("last", -1)):
        for col in ("n_clean", "n_subset", "purity_clean", "purity_subset", "detect_precision", "detect_recall", "detect_f1"):
            runs[f"{which}_{col}"] = [sel[pos][col] if sel else np.nan for sel in runs["selection"]]
    detection = []
    feats = ctx.features[p.backbone]
    for noise in p.noise:
        for s in t.seeds:
            labels = ctx.labels(noise, s)
            fit, _ = ctx.split(noise, s)
            x, y, probe = feats.train[fit], labels.labels[fit], ctx.params.spectral.probe.model_dump()
            key = stable_hash({"features": array_id(x), "labels": array_id(y), "folds": p.cv_folds, "seed": s,
                               "probe": probe, "code": TURN_CODE_VERSION}, length=24)
            flagged = cached_result("turn-analysis", key, functools.partial(
                confident_learning_issues, x, y, folds=p.cv_folds, seed=s, probe=probe), desc="confident learning")
            detection.append({"noise": noise.label, "seed": s, "detector": "cleanlab find_label_issues (CV linear probe)",
                              **detection_scores(flagged, labels.is_noisy[fit])})
            first = runs[(runs["noise"] == noise.label) & (runs["seed"] == s) & (runs["tau"] == default_tau)]
            if len(first):
                sel = first.iloc[0]["selection"][0]
                detection.append({"noise": noise.label, "seed": s, "detector": f"TURN GMM after LP (tau={default_tau:g})",
                                  "precision": sel["detect_precision"], "recall": sel["detect_recall"],
                                  "f1": sel["detect_f1"], "n_flagged": len(fit) - sel["n_clean"],
                                  "n_noisy": int(labels.is_noisy[fit].sum())})
    return runs, pd.DataFrame(detection)


def confident_learning_issues(features: np.ndarray, labels: np.ndarray, *, folds: int, seed: int, probe: dict) -> np.ndarray:
    """cleanlab's confident learning on out-of-fold linear-probe probabilities: True = label issue."""
    from cleanlab.filter import find_label_issues
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from nml.estimators.frozen import LinearProbe

    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small probes: one thread, as every job of the chapter (40x faster on a busy machine)
    try:
        pred_probs = cross_val_predict(LinearProbe(**probe, seed=seed), features, labels, cv=cv, method="predict_proba")
    finally:
        torch.set_num_threads(threads)
    return find_label_issues(labels, pred_probs, n_jobs=1)  # its worker pool costs more than the work here


def timing(ctx: TurnContext) -> pd.DataFrame:
    """T4's measurement: TURN vs DivideMix-LP and UNICON-LP run the paper's way, timed alike.

    At ``turn.timing.noise`` (the paper's Fig. 3a: 90% symmetric) on ``turn.timing.backbone``:
    TURN as in Table 2 (its LP epochs on features extracted once, then its FFT epochs), and
    DivideMix-LP / UNICON-LP for ``timing.epochs`` epochs (Fig. 3a: "each algorithm for 5
    epochs") re-running the frozen encoder on every augmented batch. TURN extracts its training
    features itself (timed), as the rivals run their encoder passes. Every job runs alone
    (``n_jobs=1``, one thread) so no method is timed while another competes for the cores;
    ``fit_seconds`` excludes evaluation. Rows carry ``way`` = ``"encoder every batch"`` for the
    rivals and ``exclusive`` = True.
    """
    tc, t = ctx.params.turn.timing, ctx.params.turn
    jobs, ways = [], []
    for s in t.seeds:
        # a distinct cache entry from Table 2's TURN run: timed alone, not beside another job
        jobs.append(ctx.job("timing", tc.backbone, tc.noise, "turn", s, label="TURN (LP-FFT)"))
        jobs[-1].data_key += ":timed-alone"
        jobs[-1].f_fit = None  # TURN pays its one feature extraction, as the rivals pay their encoder passes
        ways.append("features extracted once (TURN)")
        for m in TWO_NETWORK_METHODS:
            jobs.append(ctx.job("timing", tc.backbone, tc.noise, m, s, views="encoder", epochs=tc.epochs,
                                warmup_epochs=tc.warmup_epochs))
            jobs[-1].data_key += ":timed-alone"
            ways.append("encoder every batch")
    start = time.perf_counter()
    rows = run(ctx, jobs, "T4 timing", n_jobs=1, local=True)
    log.info("timing study: %.0f s", time.perf_counter() - start)
    epochs = [j.kwargs.get("epochs", j.kwargs.get("epochs_fft")) for j in jobs]
    return rows.assign(way=ways, exclusive=True, epochs=epochs)


def tsne(ctx: TurnContext) -> pd.DataFrame:
    """Fig. 2 analog: 2-D t-SNE of test features before and after CE full fine-tuning.

    "After" comes from CE-FFT jobs; those of Table 2 (and the mild setting) have the same cache
    keys, so they are read, not run again.
    """
    tc, t = ctx.params.turn.tsne, ctx.params.turn
    seed = t.seeds[0]
    jobs = [ctx.job("tsne", b, noise, "ce-fft", seed) for b in tc.backbones for noise in tc.noise]
    after = run(ctx, jobs, "t-SNE fine-tuning")
    n = min(tc.n_points, len(ctx.test.y), TSNE_KEEP)
    frames = []
    for b in tc.backbones:
        panels = [("before FFT (pre-trained)", ctx.features[b].test[:n])]
        panels += [(f"after FFT, {r.noise}", np.asarray(r.test_features_after[:n], dtype=np.float32))
                   for r in after[after["backbone"] == b].itertuples()]
        for title, feats in panels:
            perplexity = min(tc.perplexity, (n - 1) / 3)
            key = stable_hash({"tsne": array_id(feats), "perplexity": perplexity, "code": TURN_CODE_VERSION}, length=24)
            emb = cached_result("turn-analysis", key, functools.partial(_tsne_2d, feats, perplexity), desc="t-SNE")
            frames.append(pd.DataFrame({"backbone": b, "panel": title, "x": emb[:, 0], "y": emb[:, 1],
                                        "label": ctx.test.y[:n]}))
    return pd.concat(frames, ignore_index=True)


def _tsne_2d(feats: np.ndarray, perplexity: float) -> np.ndarray:
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # a few hundred points: BLAS threads only contend on a busy machine
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=0).fit_transform(feats)


# --------------------------------------------------------------------------------------------
# the regime: which downstream set and backbones give a strong linear probe


def _fft_step_seconds(module: torch.nn.Module, x: torch.Tensor, n_classes: int, batch_size: int, steps: int = 3) -> float:
    """Seconds per training image of full fine-tuning (forward + backward + AdamW step), measured."""
    import copy

    model = copy.deepcopy(module).train()
    with torch.no_grad():
        dim = int(model(x[:2]).shape[-1])
    head = torch.nn.Linear(dim, n_classes)
    opt = torch.optim.AdamW(list(model.parameters()) + list(head.parameters()), lr=1e-4)
    xb, yb = x[:batch_size], torch.arange(batch_size) % n_classes
    loss = torch.nn.functional.cross_entropy(head(model(xb)), yb)  # warm-up step, not timed
    loss.backward()
    start = time.perf_counter()
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(head(model(xb)), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - start) / (steps * len(xb))


def regime_candidates(params: Params, pre_data: Any = None, checkpoints: list[Checkpoint] | None = None) -> pd.DataFrame:
    """Clean-label linear probes of every ``turn.regime.candidates`` pair, on the validation split.

    For each (downstream set, backbone): the capped training split is divided as the chapter
    divides it (``turn.validation_fraction``, stratified, seed ``turn.seeds[0]``) but with the
    *clean* labels; a CE linear probe with the chapter's LP settings (``turn.lp``,
    ``turn.lp_standardize``) trains on the fit part and is scored on the validation part. Test
    labels are never read. Also measured: feature-extraction seconds and full fine-tuning
    seconds per training image (one thread, this machine), the cost that decides what fits the
    budget. One row per candidate with ``val_score`` (the validation accuracy) and ``seconds``
    (estimated seconds of one FFT epoch over the fit split).
    """
    from nml._infra.machine import machine_fingerprint

    t = params.turn
    if checkpoints is None:
        checkpoints = clean_checkpoints(params, pre_data)
    rows = []
    for c in t.regime.candidates:
        train, _, data = load_turn_data(params, pre_data, dataset=c.dataset)
        spec = backbone_spec(TurnBackbone(name=c.backbone, image_size=c.image_size), checkpoints, data, params)
        # measured once per candidate and machine (the row holds seconds), then read
        key = stable_hash({"candidate": c.model_dump(), "backbone": spec.identity, "data": train.data_id,
                           "validation_fraction": t.validation_fraction, "seed": t.seeds[0], "lp": t.lp.model_dump(),
                           "standardize": t.lp_standardize, "fft_batch": t.fft.batch_size,
                           "machine": machine_fingerprint(), "code": TURN_CODE_VERSION}, length=24)
        row = cached_result("turn-analysis", key, functools.partial(
            _regime_candidate, params, train, data, spec, c.dataset, c.backbone, c.image_size), desc=f"regime {c.dataset}")
        rows.append({**row, "meets_bar": row["val_score"] >= t.regime.min_clean_lp})
    return pd.DataFrame(rows)


def _regime_candidate(params: Params, train: Split, data: DownstreamData, spec: Any, dataset: str, backbone: str,
                      image_size: int | None) -> dict[str, Any]:
    """One row of :func:`regime_candidates` (one thread, as every job of the chapter)."""
    from nml.estimators.noisy_labels import NoisyLinearProbe

    t = params.turn
    fit, val = validation_split(train.y, t.validation_fraction, t.seeds[0])
    module = build_backbone(spec)
    start = time.perf_counter()
    feats = extract_features(module, train.x, data_id=train.data_id, split="turn/train",
                             transform=_transform_id(spec, data), batch_size=params.spectral.feature_batch_size)
    extract_s = time.perf_counter() - start
    lp = t.lp
    probe = NoisyLinearProbe(loss="ce", epochs=lp.epochs, batch_size=lp.batch_size, optimizer=lp.optimizer,
                             lr=lp.lr, weight_decay=lp.weight_decay, momentum=lp.momentum,
                             standardize=t.lp_standardize, seed=t.seeds[0]).fit(feats[fit], train.y[fit])
    acc = float(np.mean(probe.predict(feats[val]) == train.y[val]))
    x = take(train.x, torch.arange(min(len(train.y), t.fft.batch_size)))
    per_image = _fft_step_seconds(module, x, int(train.y.max()) + 1, len(x))
    return {"candidate": f"{dataset} / {spec.name}" + (f" @{image_size}px" if image_size else ""),
            "dataset": dataset, "backbone": backbone, "image_size": image_size,
            "n_fit": len(fit), "n_val": len(val), "val_score": acc,
            "val_metric": "clean-label CE linear-probe accuracy on the validation split",
            "extract_seconds": extract_s, "fft_ms_per_image": 1000 * per_image, "seconds": per_image * len(fit)}


# --------------------------------------------------------------------------------------------
# summaries


def best_last_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over seeds (%) per backbone × noise × method: ``best`` (by validation), ``last``,
    ``best_oracle`` (the paper's best test epoch) and TURN's step-1 ``lp_acc``."""
    g = rows.groupby(["backbone", "noise", "method", "label"], sort=False)
    out = g.agg(best_mean=("best", "mean"), best_std=("best", "std"), last_mean=("last", "mean"),
                last_std=("last", "std"), oracle_mean=("best_oracle", "mean"), lp_acc_mean=("lp_acc", "mean"),
                seconds=("fit_seconds", "mean"), seeds=("seed", "nunique")).reset_index()
    for col in ("best_mean", "best_std", "last_mean", "last_std", "oracle_mean", "lp_acc_mean"):
        out[col] = 100 * out[col]
    return out


def cost_table(rows: pd.DataFrame, noise: str) -> pd.DataFrame:
    """Table 1 analog: mean training seconds per method at ``noise``, and relative to CE (FFT)."""
    d = rows[rows["noise"] == noise].groupby(["backbone", "method", "label"], sort=False)["fit_seconds"].mean().reset_index()
    ref = d[d["method"] == "ce-fft"].set_index("backbone")["fit_seconds"]
    d["relative_to_ce_fft"] = d["fit_seconds"] / d["backbone"].map(ref)
    return d


ARRAY_COLUMNS = ("history", "selection", "test_features_after", "pred_best", "pred_last", "pred_lp")


def tidy(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` without the per-run arrays and lists (what a CSV holds)."""
    return rows.drop(columns=[c for c in ARRAY_COLUMNS if c in rows])
