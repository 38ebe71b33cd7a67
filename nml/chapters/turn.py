"""Chapter 04: fine-tuning a pre-trained model on noisy downstream labels — TURN vs the baselines.

The downstream set is loaded once; for every (noise setting, seed) the training labels are
corrupted once and shared by every method, so methods are compared on identical labels. Frozen
features (clean and augmented views) are extracted once per backbone through the feature cache.
Every run is a job whose result is cached under a content key (``nml.job_cache``): an
interrupted run resumes at the next unfinished job, a warm run only reads.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from nml.cache import stable_hash
from nml.chapters.nmtune import subsample
from nml.chapters.spectral import DownstreamData, Split, load_downstream_data
from nml.features import array_id, extract_features
from nml.finetune import detection_scores, make_method, method_input
from nml.finetune.full import crop_augment
from nml.job_cache import run_cached
from nml.models import resolve_device
from nml.noise import CIFAR100_SUPERCLASSES, NoisyLabels, inject_noise
from nml.params import LabelNoise, OptimConfig, Params, TurnBackbone
from nml.pretrain import Checkpoint, take

log = logging.getLogger("nml.chapters.turn")

# Bump when run_job changes what it computes (invalidates cached results).
TURN_CODE_VERSION = 4

FFT_METHODS = ("ce-fft", "gce-fft", "elr-fft")
LP_METHODS = ("ce-lp", "gce-lp", "elr-lp")
LABELS = {"ce-fft": "CE (FFT)", "gce-fft": "GCE (FFT)", "elr-fft": "ELR (FFT)", "ce-lp": "CE (LP)",
          "gce-lp": "GCE (LP)", "elr-lp": "ELR (LP)", "dividemix-lp": "DivideMix (LP)", "unicon-lp": "UNICON (LP)",
          "turn": "TURN (LP-FFT)"}
TSNE_KEEP = 2000  # test samples whose fine-tuned features a ce-fft job keeps (for the t-SNE figure)


# --------------------------------------------------------------------------------------------
# data and noise


def load_turn_data(params: Params) -> tuple[Split, Split, DownstreamData]:
    """The downstream set's train and test splits (offline digits or a paper set), capped per class."""
    t, s = params.turn, params.spectral
    only = params.model_copy(update={"spectral": s.model_copy(update={"id_tasks": [t.dataset], "ood": [], "max_per_class": None})})
    data = subsample(load_downstream_data(only), t.max_train_per_class, t.max_test_per_class, s.split_seed)
    return data.get(t.dataset, "train"), data.get(t.dataset, "test"), data


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
    read from 01's cache or trained here; none when no backbone is ``checkpoint``."""
    if not any(b.name == "checkpoint" for b in params.turn.backbones):
        return []
    from nml.chapters import pretraining

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
        from nml.models import create_backbone

        module = create_backbone(spec.model, in_chans=spec.in_chans)
        module.load_state_dict(torch.load(spec.checkpoint_path, map_location="cpu", weights_only=False)["backbone"])
        return module.eval()
    from nml.encoders import create_encoder

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
    kw = {"transform": transform, "batch_size": params.spectral.feature_batch_size, "device": resolve_device(params.device)}
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
    """Every hyper-parameter of ``method`` on ``backbone``, from ``params.turn``."""
    t = params.turn
    lp: OptimConfig = backbone.lp or t.lp
    fft: OptimConfig = backbone.fft or t.fft
    aug = {"augment": True, "flip": t.augment.flip, "crop_pad": t.augment.crop_pad}
    common = {"device": params.device}
    if method in FFT_METHODS:
        return {**common, **aug, "epochs": fft.epochs, "batch_size": fft.batch_size, "optimizer": fft.optimizer,
                "lr": fft.lr, "weight_decay": fft.weight_decay, "momentum": fft.momentum, "q": t.gce_q,
                "elr_lambda": t.elr.lam, "elr_beta": t.elr.beta}
    if method in LP_METHODS:
        return {**common, "epochs": lp.epochs, "batch_size": lp.batch_size, "optimizer": lp.optimizer, "lr": lp.lr,
                "weight_decay": lp.weight_decay, "momentum": lp.momentum, "q": t.gce_q, "elr_lambda": t.elr.lam,
                "elr_beta": t.elr.beta}
    if method in ("dividemix-lp", "unicon-lp"):
        two = t.two_networks
        kw = {**common, "epochs": lp.epochs, "warmup_epochs": two.warmup_epochs, "batch_size": two.batch_size,
              "optimizer": lp.optimizer, "lr": lp.lr, "weight_decay": lp.weight_decay, "lambda_u": two.lambda_u}
        if method == "dividemix-lp":
            kw["p_threshold"] = two.p_threshold
        else:
            kw["lambda_c"] = two.lambda_c
        return kw
    if method == "turn":
        return {**common, **aug, "epochs_lp": t.turn.epochs_lp, "lp_batch_size": lp.batch_size, "lp_lr": lp.lr,
                "lp_weight_decay": lp.weight_decay, "lp_optimizer": lp.optimizer, "q": t.turn.q, "epochs_fft": t.turn.epochs_fft,
                "batch_size": fft.batch_size, "optimizer": fft.optimizer, "lr": backbone.turn_lr or fft.lr,
                "weight_decay": fft.weight_decay, "momentum": fft.momentum, "tau": t.turn.tau,
                "bn_mode": t.turn.bn_mode}
    raise KeyError(f"unknown method {method!r}")


# --------------------------------------------------------------------------------------------
# one run (the unit that is cached and parallelised)


@dataclass
class TurnJob:
    """Fit ``method`` with ``kwargs`` on one backbone's inputs and noisy labels; score it on the test set."""

    meta: dict
    method: str
    kwargs: dict
    seed: int
    spec: BackboneSpec
    y_noisy: np.ndarray
    is_noisy: np.ndarray
    y_test: np.ndarray
    x_train: Any = None  # images (FFT, TURN)
    x_test: Any = None
    f_train: np.ndarray | None = None  # features (LP) or view bank (two-network methods)
    f_test: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    def key(self) -> str:
        inputs = [array_id(a) if isinstance(a, (np.ndarray, torch.Tensor)) else None
                  for a in (self.f_train, self.f_test)]
        images = [array_id(x) if isinstance(x, torch.Tensor) else f"{type(x).__name__}:{len(x)}" if x is not None else None
                  for x in (self.x_train, self.x_test)]
        return stable_hash({"method": self.method, "kwargs": sorted((k, repr(v)) for k, v in self.kwargs.items()),
                            "seed": self.seed, "backbone": self.spec.identity, "labels": array_id(self.y_noisy),
                            "noisy": array_id(self.is_noisy), "test": array_id(self.y_test), "inputs": inputs,
                            "images": images, "code": TURN_CODE_VERSION}, length=24)


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


def run_job(job: TurnJob) -> dict:
    """Fit and score one job: best / last test accuracy, training seconds, history, selection stats."""
    what = method_input(job.method)
    est = make_method(job.method, seed=job.seed, **job.kwargs, **({"backbone": build_backbone(job.spec)} if what == "images" else {}))
    if job.method == "turn":
        est.fit(job.x_train, job.y_noisy, eval_set=(job.x_test, job.y_test), features=job.f_train, eval_features=job.f_test)
    elif what == "images":
        est.fit(job.x_train, job.y_noisy, eval_set=(job.x_test, job.y_test))
    else:
        est.fit(job.f_train, job.y_noisy, eval_set=(job.f_test, job.y_test))
    out = {"best": est.best_test_acc_, "last": est.last_test_acc_, "fit_seconds": est.fit_seconds_,
           "history": est.history_, "n_train": len(job.y_noisy), "realized_noise": float(job.is_noisy.mean())}
    if job.method == "turn":
        out["selection"] = _selection_stats(est.cleansing_, job.is_noisy)
    if job.method == "ce-fft":
        n = min(TSNE_KEEP, len(job.y_test))
        out["test_features_after"] = est.transform(take(job.x_test, torch.arange(n))).astype(np.float16)
    return out


@dataclass
class TurnContext:
    """Everything the chapter's studies share: data, backbones and their features, noisy labels."""

    params: Params
    train: Split
    test: Split
    data: DownstreamData
    features: dict[str, BackboneFeatures]
    _labels: dict = field(default_factory=dict)

    def labels(self, noise: LabelNoise, seed: int) -> NoisyLabels:
        key = (noise.kind, noise.ratio, seed)
        if key not in self._labels:
            self._labels[key] = make_noisy_labels(noise, self.train, self.params, seed)
        return self._labels[key]

    def job(self, study: str, backbone: str, noise: LabelNoise, method: str, seed: int, label: str | None = None,
            **overrides: Any) -> TurnJob:
        cfg = self.params.turn.backbone(backbone)
        feats = self.features[backbone]
        labels = self.labels(noise, seed)
        what = method_input(method)
        kwargs = {**method_kwargs(method, cfg, self.params), **overrides}
        meta = {"study": study, "backbone": backbone, "noise": noise.label, "noise_kind": noise.kind,
                "noise_ratio": noise.ratio, "method": method, "label": label or LABELS[method], "seed": seed}
        job = TurnJob(meta, method, kwargs, seed, feats.spec, labels.labels, labels.is_noisy, self.test.y)
        if what == "images":
            job.x_train, job.x_test = self.train.x, self.test.x
            if method == "turn" and kwargs.get("bn_mode") != "recalibrate":
                # cached features were made with the backbone's own BatchNorm statistics
                job.f_train, job.f_test = feats.train, feats.test
        elif what == "views":
            job.f_train, job.f_test = feats.views, feats.test
        else:
            job.f_train, job.f_test = feats.train, feats.test
        return job


def prepare(params: Params, checkpoints: list[Checkpoint]) -> TurnContext:
    """Load the downstream set and extract every backbone's frozen features (cached)."""
    train, test, data = load_turn_data(params)
    log.info("turn: %s, %d train / %d test images, %d classes", params.turn.dataset, len(train.y), len(test.y),
             int(train.y.max()) + 1)
    feats = {}
    for cfg in tqdm(params.turn.backbones, desc="backbone features"):
        spec = backbone_spec(cfg, checkpoints, data, params)
        feats[cfg.name] = backbone_features(spec, train, test, data, params)
    return TurnContext(params, train, test, data, feats)


def run(ctx: TurnContext, jobs: list[TurnJob], desc: str) -> pd.DataFrame:
    """Run (or read) every job; one row per job with its meta, best / last accuracy and seconds."""
    results = run_cached(jobs, TurnJob.key, run_job, folder="turn", n_jobs=ctx.params.turn.n_jobs, desc=desc)
    rows = []
    for job, res in zip(jobs, results, strict=True):
        rows.append({**job.meta, **res})
    return pd.DataFrame(rows)


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


def components(ctx: TurnContext) -> pd.DataFrame:
    """Table 4 analog: TURN without LP, and with cleansing none / once / every epoch."""
    c, t = ctx.params.turn.components, ctx.params.turn
    jobs = []
    for b in c.backbones:
        for noise in c.noise:
            for lp_step, cleansing in COMPONENT_ROWS:
                label = f"LP {'yes' if lp_step else 'no'}, cleansing {cleansing}"
                jobs += [ctx.job("components", b, noise, "turn", s, label=label, lp_step=lp_step, cleansing=cleansing)
                         for s in t.seeds]
    rows = run(ctx, jobs, "Table 4 analog")
    return rows.assign(lp_step=[j.kwargs["lp_step"] for j in jobs], cleansing=[j.kwargs["cleansing"] for j in jobs])


def sensitivity(ctx: TurnContext) -> pd.DataFrame:
    """Fig. 3 analog (right): TURN as one of E_LP, E_FFT, τ varies, the others at their defaults."""
    sv, t = ctx.params.turn.sensitivity, ctx.params.turn
    jobs, varied, values = [], [], []
    for name, grid in (("epochs_lp", sv.epochs_lp), ("epochs_fft", sv.epochs_fft), ("tau", sv.tau)):
        for v in grid:
            jobs += [ctx.job("sensitivity", sv.backbone, sv.noise, "turn", s, **{name: v}) for s in t.seeds]
            varied += [name] * len(t.seeds)
            values += [v] * len(t.seeds)
    return run(ctx, jobs, "sensitivity").assign(parameter=varied, value=values)


def purity(ctx: TurnContext) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 9 analog: TURN's selection vs τ, and TURN vs confident learning as noisy-label detectors.

    Returns (runs: one row per TURN run with its first / last cleansing, detection: one row per
    (noise, seed, detector)). Both detectors read the same frozen features: TURN's first
    cleansing uses the GCE linear probe's losses on them; cleanlab's ``find_label_issues``
    uses out-of-fold probabilities of a linear probe (``purity.cv_folds`` folds) on them.
    """
    p, t = ctx.params.turn.purity, ctx.params.turn
    jobs, taus = [], []
    for noise in p.noise:
        for tau in p.tau:
            jobs += [ctx.job("purity", p.backbone, noise, "turn", s, tau=tau) for s in t.seeds]
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
            flagged = confident_learning_issues(feats.train, labels.labels, folds=p.cv_folds, seed=s,
                                                 probe=ctx.params.spectral.probe.model_dump())
            detection.append({"noise": noise.label, "seed": s, "detector": "cleanlab find_label_issues (CV linear probe)",
                              **detection_scores(flagged, labels.is_noisy)})
            first = runs[(runs["noise"] == noise.label) & (runs["seed"] == s) & (runs["tau"] == t.turn.tau)]
            if len(first):
                sel = first.iloc[0]["selection"][0]
                detection.append({"noise": noise.label, "seed": s, "detector": f"TURN GMM after LP (tau={t.turn.tau:g})",
                                  "precision": sel["detect_precision"], "recall": sel["detect_recall"],
                                  "f1": sel["detect_f1"], "n_flagged": len(labels.labels) - sel["n_clean"],
                                  "n_noisy": int(labels.is_noisy.sum())})
    return runs, pd.DataFrame(detection)


def confident_learning_issues(features: np.ndarray, labels: np.ndarray, *, folds: int, seed: int, probe: dict) -> np.ndarray:
    """cleanlab's confident learning on out-of-fold linear-probe probabilities: True = label issue."""
    from cleanlab.filter import find_label_issues
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from nml.tuners import LinearProbe

    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    pred_probs = cross_val_predict(LinearProbe(**probe, seed=seed), features, labels, cv=cv, method="predict_proba")
    return find_label_issues(labels, pred_probs)


def tsne(ctx: TurnContext) -> pd.DataFrame:
    """Fig. 2 analog: 2-D t-SNE of test features before and after CE full fine-tuning.

    "After" comes from CE-FFT jobs; those of Table 2 (and the mild setting) have the same cache
    keys, so they are read, not run again.
    """
    from sklearn.manifold import TSNE

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
            emb = TSNE(n_components=2, perplexity=min(tc.perplexity, (n - 1) / 3), init="pca",
                       random_state=0).fit_transform(feats)
            frames.append(pd.DataFrame({"backbone": b, "panel": title, "x": emb[:, 0], "y": emb[:, 1],
                                        "label": ctx.test.y[:n]}))
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------------
# summaries


def best_last_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over seeds of best / last test accuracy (%) per backbone × noise × method."""
    g = rows.groupby(["backbone", "noise", "method", "label"], sort=False)
    out = g.agg(best_mean=("best", "mean"), best_std=("best", "std"), last_mean=("last", "mean"),
                last_std=("last", "std"), seconds=("fit_seconds", "mean"), seeds=("seed", "nunique")).reset_index()
    for col in ("best_mean", "best_std", "last_mean", "last_std"):
        out[col] = 100 * out[col]
    return out


def cost_table(rows: pd.DataFrame, noise: str) -> pd.DataFrame:
    """Table 1 analog: mean training seconds per method at ``noise``, and relative to CE (FFT)."""
    d = rows[rows["noise"] == noise].groupby(["backbone", "method", "label"], sort=False)["fit_seconds"].mean().reset_index()
    ref = d[d["method"] == "ce-fft"].set_index("backbone")["fit_seconds"]
    d["relative_to_ce_fft"] = d["fit_seconds"] / d["backbone"].map(ref)
    return d
