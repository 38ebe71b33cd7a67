"""Chapter 03: black-box tuning of frozen features — LP vs MLP vs NMTune.

Every fit here reads a feature matrix, never the encoder: features of 01's checkpoints come from
02's cache, those of the published encoders are extracted once and cached the same way. A fit's
outcome is cached too (keyed by the content of its features and labels, the method and the seed),
so an interrupted run resumes at the next unfinished fit and a warm run only reads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from nml._infra.cache import stable_hash
from nml._infra.jobs import run_cached
from nml._infra.progress import tqdm
from nml.chapters.ch02_spectral.run import DownstreamData, Split
from nml.chapters.ch03_nmtune.config import CheckpointSelection, TunerConfig
from nml.chapters.fit_jobs import FitJob, method_key, run_fit_jobs
from nml.config import Params
from nml.data.subsample import cap_per_class
from nml.models.backbones import resolve_device
from nml.models.features import (
    array_id,
    extract_features,
)
from nml.models.pretrain import Checkpoint, take

log = logging.getLogger("nml.chapters.ch03_nmtune.run")

# Bump when a fit job's work (nml.chapters.fit_jobs.fit_and_score with Job's hooks) changes what it
# computes: it is part of every job's key, so cached fit results are invalidated.
TUNING_CODE_VERSION = 3

HEAD_KEYS = ("head", "depth", "activation", "hidden_mult", "n_views", "warmup_steps", "epochs", "batch_size", "lr",
             "weight_decay")


# --------------------------------------------------------------------------------------------
# methods


@dataclass(frozen=True)
class Method:
    """A tuner by registry name with its keyword arguments, and the label tables show."""

    label: str
    tuner: str
    kwargs: tuple[tuple[str, Any], ...] = ()

    def build(self, seed: int, **overrides: Any):
        from nml.estimators.frozen import create_tuner

        return create_tuner(self.tuner, **{**dict(self.kwargs), **overrides}, seed=seed)

    def with_kwargs(self, label: str | None = None, **kwargs: Any) -> Method:
        merged = {**dict(self.kwargs), **kwargs}
        return replace(self, label=label or self.label, kwargs=_items(_canonical(self.tuner, merged)))


def _canonical(tuner: str, kwargs: dict) -> dict:
    """NMTune settings equal to the preset's are dropped, so an ablation row that repeats the main
    configuration has the same cache key as the main fit and is not computed twice."""
    if tuner != "nmtune":
        return kwargs
    from nml.estimators.frozen import NMTUNE_PRESETS

    preset = NMTUNE_PRESETS[kwargs.get("preset", "paper")]
    return {k: v for k, v in kwargs.items() if k not in preset or preset[k] != v}


def _items(d: dict) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(d.items()))


METHOD_ORDER = ["LP", "MLP", "NMTune"]
"""The labels of :func:`lp_method`, :func:`mlp_method` and :func:`nmtune_method`, in the order
tables and figures show them (chapters 03 and 05)."""


def lp_method(params: Params) -> Method:
    p = params.spectral.probe
    return Method("LP", "lp", _items({"epochs": p.epochs, "batch_size": p.batch_size, "lr": p.lr,
                                      "weight_decay": p.weight_decay, "standardize": p.standardize}))


def mlp_method(cfg: TunerConfig) -> Method:
    """MLP tuning: the NMTune preset's head and optimiser, cross-entropy only."""
    from nml.estimators.frozen import NMTUNE_PRESETS

    preset = NMTUNE_PRESETS[cfg.preset]
    kwargs = {k: preset[k] for k in HEAD_KEYS}
    kwargs.update({k: v for k, v in cfg.kwargs().items()})
    return Method("MLP", "mlp", _items(kwargs))


def nmtune_method(cfg: TunerConfig) -> Method:
    return Method("NMTune", "nmtune", _items(_canonical("nmtune", {"preset": cfg.preset, **cfg.kwargs()})))


def method_by_name(params: Params, name: str, cfg: TunerConfig | None = None) -> Method:
    """``lp`` (reads ``spectral.probe``), ``mlp`` or ``nmtune`` (built from ``cfg``, default ``nmtune.tuner``)."""
    cfg = cfg or params.nmtune.tuner
    make = {"lp": lambda: lp_method(params), "mlp": lambda: mlp_method(cfg), "nmtune": lambda: nmtune_method(cfg)}
    if name not in make:
        raise KeyError(f"unknown method {name!r}; expected one of {sorted(make)}")
    return make[name]()


def main_methods(params: Params, cfg: TunerConfig | None = None) -> list[Method]:
    """The methods of ``nmtune.methods`` in order."""
    return [method_by_name(params, name, cfg) for name in params.nmtune.methods]


# --------------------------------------------------------------------------------------------
# tasks: one training domain, the test domains its tuner is scored on


@dataclass
class Task:
    train: str
    tests: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, task name, test domain)


def families(params: Params) -> dict[str, str]:
    """Task name -> dataset family (ID tasks are their own family; OOD pairings say theirs)."""
    s = params.spectral
    return {**{t: t for t in s.id_tasks}, **{o.name: o.family_name for o in s.ood}}


def tasks(params: Params, *, id_only: bool = False, ood_tests_per_pairing: int | None = None) -> list[Task]:
    """ID tasks and OOD pairings grouped by training domain, so each tuner is fitted once per domain."""
    s = params.spectral
    out: dict[str, Task] = {}
    for t in s.id_tasks:
        out.setdefault(t, Task(t)).tests.append(("ID", t, t))
    if not id_only:
        for pair in s.ood:
            for test in pair.test[:ood_tests_per_pairing]:
                out.setdefault(pair.train, Task(pair.train)).tests.append(("OOD", pair.name, test))
    return list(out.values())


# --------------------------------------------------------------------------------------------
# features


def encoder_features(encoder: Any, split: Split, data: DownstreamData, params: Params, *, transform: str | None = None,
                     desc: str | None = None) -> np.ndarray:
    """Cached features of ``encoder`` (a checkpoint backbone or an ``nml.models.image_encoders`` encoder) on ``split``.

    With ``transform=None`` the key equals chapter 02's, so 02's features are reused as they are.
    """
    return extract_features(
        encoder, split.x, data_id=split.data_id, split=f"{split.domain}/{split.split}",
        transform=transform or data.transform, batch_size=params.spectral.feature_batch_size,
        device=resolve_device(params.device), desc=desc, num_workers=params.num_workers,
    )


def feature_table(encoder: Any, data: DownstreamData, params: Params, task_list: list[Task], *,
                  transform: str | None = None, desc: str = "") -> dict[tuple[str, str], np.ndarray]:
    """Features of every (domain, split) the tasks read."""
    needed = [(t.train, "train") for t in task_list] + [(d, "test") for t in task_list for _, _, d in t.tests]
    return {key: encoder_features(encoder, data.get(*key), data, params, transform=transform, desc=f"{desc} {key[0]}")
            for key in dict.fromkeys(needed)}


def needs_views(methods: Iterable[Method]) -> bool:
    """Whether any method reads two augmented views per step (the authors' NMTune loop)."""
    return any(dict(m.kwargs).get("n_views", _preset_value(m, "n_views")) == 2 for m in methods)


def _preset_value(m: Method, key: str) -> Any:
    if m.tuner != "nmtune":
        return None
    from nml.estimators.frozen import NMTUNE_PRESETS

    return NMTUNE_PRESETS[dict(m.kwargs).get("preset", "paper")][key]


def view_banks(encoder: Any, data: DownstreamData, params: Params, task_list: list[Task], *,
               transform: str | None = None, n_views: int | None = None, desc: str = "") -> dict[str, np.ndarray]:
    """A bank of augmented views (N, V, D) of every training split the tasks read (cached).

    The augmentation is the authors' train transform (``nmtune.views``: random resized crop and,
    where set, a horizontal flip) applied to the images before the encoder.
    """
    from functools import partial

    from nml._infra.training import random_resized_crop
    from nml.models.features import view_bank

    cfg = params.nmtune.views
    augment = partial(random_resized_crop, scale=tuple(cfg.scale), flip=cfg.flip)
    out = {}
    for domain in dict.fromkeys(t.train for t in task_list):
        split = data.get(domain, "train")
        out[domain] = view_bank(encoder, split.x, n_views=n_views or cfg.n, augment=augment, augment_id=cfg.augment_id,
                                data_id=split.data_id, split=f"{domain}/train", transform=transform or data.transform,
                                batch_size=params.spectral.feature_batch_size, device=resolve_device(params.device),
                                desc=f"{desc} {domain}")
    return out


def subsample(data: DownstreamData, max_train_per_class: int | None, max_test_per_class: int | None, seed: int) -> DownstreamData:
    """At most k images per class in each split (stratified, seeded), for expensive encoders."""
    splits = {}
    for (domain, split), v in data.splits.items():
        cap = max_train_per_class if split == "train" else max_test_per_class
        if cap is None:
            splits[(domain, split)] = v
            continue
        idx = cap_per_class(v.y, cap, seed)
        x = v.x[torch.from_numpy(idx)] if isinstance(v.x, torch.Tensor) else torch.utils.data.Subset(v.x, idx.tolist())
        splits[(domain, split)] = Split(domain, split, x, v.y[idx], stable_hash({"of": v.data_id, "idx": array_id(idx)}, length=24))
    return DownstreamData(splits, data.transform, data.mean, data.std)


# --------------------------------------------------------------------------------------------
# one fit, scored on its tests (the unit that is cached and parallelised)


@dataclass
class Job(FitJob):
    """Fit ``method`` on (x_train, y_train) with ``seed``; score it on each test.

    ``tests`` are ``(kind, task, test domain, X, y, test_id)``; ``views`` is the bank of augmented
    training features a two-view tuner draws from (None: both views are the row of x_train);
    ``variant`` the spectrum variant of the SVE / LSVR columns. The SVE / LSVR are those of what
    the classifier reads: ``f`` itself for LP (its head is the identity; standardised only if the
    probe standardises), ``z = h(f)`` for MLP and NMTune.
    """

    tests: list[tuple[str, str, str, np.ndarray, np.ndarray, str]]
    views: np.ndarray | None = None
    variant: str = "authors"

    cache_folder: ClassVar[str] = "tuning"
    code_version: ClassVar[int] = TUNING_CODE_VERSION
    pred_dtype: ClassVar[type] = np.int16

    def tests_key(self) -> list:
        return [[k, t, d, array_id(x), array_id(y)] for k, t, d, x, y, _ in self.tests]

    def extra_key(self) -> dict[str, Any]:
        views = None if self.views is None or not needs_views([self.method]) else array_id(self.views)
        return {"views": views, "variant": self.variant}

    def fit_options(self) -> dict[str, Any]:
        return {"views": self.views}

    def scored_sets(self) -> list[tuple[Any, np.ndarray, np.ndarray]]:
        return [(t, t[3], t[4]) for t in self.tests]

    def spectrum_variant(self) -> str:
        return self.variant

    def row_head(self, test: tuple, pred: np.ndarray) -> dict[str, Any]:
        kind, task, domain, _, _, test_id = test
        return {**self.meta, "method": self.method.label, "tuner_seed": self.seed, "kind": kind, "task": task,
                "train_domain": self.meta.get("train_domain"), "test_domain": domain, "test_id": test_id}


def run_jobs(jobs: list[Job], n_jobs: int = 1, desc: str = "fits", family: dict[str, str] | None = None) -> pd.DataFrame:
    """Run every job (cached results are read, not recomputed) and return all rows.

    ``family`` (task -> dataset family, :func:`families`) adds the column OOD averages group by.
    """
    results = run_fit_jobs(jobs, n_jobs, desc)
    # A fit's result depends only on its key (data, method settings, seed); who asked for it (meta,
    # label) is applied here, so identical fits requested by two sections are computed once.
    out = pd.DataFrame([{**row, **job.meta, "method": job.method.label}
                        for job, rows in zip(jobs, results, strict=True) for row in rows])
    if family is not None and not out.empty:
        out["family"] = out["task"].map(family).fillna(out["task"])
    return out


def jobs_for(feats: dict[tuple[str, str], np.ndarray], data: DownstreamData, task_list: list[Task],
             methods: Iterable[Method], seeds: Iterable[int], meta: dict,
             label_noise: Callable[[np.ndarray, int], np.ndarray] | None = None,
             views: dict[str, np.ndarray] | None = None, variant: str = "authors") -> list[Job]:
    """One job per (task, method, seed); ``label_noise(y, seed)`` corrupts training labels."""
    jobs = []
    for task in task_list:
        y_train = data.get(task.train, "train").y
        tests = [(k, t, d, feats[(d, "test")], data.get(d, "test").y, data.get(d, "test").data_id) for k, t, d in task.tests]
        for seed in seeds:
            y = label_noise(y_train, seed) if label_noise else y_train
            for m in methods:
                bank = (views or {}).get(task.train) if needs_views([m]) else None
                jobs.append(Job({**meta, "train_domain": task.train}, m, seed, feats[(task.train, "train")], y, tests,
                                bank, variant))
    return jobs


# --------------------------------------------------------------------------------------------
# the chapter's grids


def select(checkpoints: list[Checkpoint], selection: CheckpointSelection) -> list[Checkpoint]:
    return [ck for ck in checkpoints if ck.spec.track in selection.tracks
            and (selection.noise_ratios is None or ck.spec.noise_ratio in selection.noise_ratios)
            and (selection.seeds is None or ck.spec.seed in selection.seeds)]


def _meta(ck: Checkpoint) -> dict:
    return {"track": ck.spec.track, "gamma": ck.spec.noise_ratio, "seed": ck.spec.seed}


def _checkpoint_inputs(ck: Checkpoint, data: DownstreamData, params: Params, task_list: list[Task],
                       methods: list[Method], desc: str) -> tuple[dict, dict | None]:
    feats = feature_table(ck.backbone, data, params, task_list, desc=desc)
    views = view_banks(ck.backbone, data, params, task_list, desc=desc) if needs_views(methods) else None
    return feats, views


def tune_checkpoints(checkpoints: list[Checkpoint], data: DownstreamData, params: Params) -> pd.DataFrame:
    """Fig. 5 analog: every method on every ID task and OOD pairing of every selected checkpoint.

    The tuner's seed is the checkpoint's seed, so the spread over seeds covers both.
    """
    task_list, methods = tasks(params), main_methods(params)
    variant = params.spectral.spectrum_variant
    jobs = []
    for ck in tqdm(select(checkpoints, params.nmtune.checkpoints), desc="features (cached or extracted)"):
        feats, views = _checkpoint_inputs(ck, data, params, task_list, methods,
                                          f"{ck.spec.track} g={ck.spec.noise_ratio:.2f}")
        jobs += jobs_for(feats, data, task_list, methods, [ck.spec.seed], _meta(ck), views=views, variant=variant)
    return run_jobs(jobs, params.nmtune.n_jobs, desc="LP / MLP / NMTune", family=families(params))


def ablation_methods(params: Params) -> list[Method]:
    """Table 15 (head depth × activation) and Table 16 (each loss weight on or off) as methods."""
    a, cfg = params.nmtune.ablation, params.nmtune.tuner
    base = nmtune_method(cfg)
    out = [base.with_kwargs(f"head depth {depth}, {act}", depth=depth, activation=act) for depth, act in a.heads]
    for w in a.loss_weights:
        out.append(base.with_kwargs(f"weights {w[0]:g}/{w[1]:g}/{w[2]:g}", w_consistency=w[0], w_covariance=w[1], w_dominant_sv=w[2]))
    other = "paper" if cfg.preset == "official" else "official"
    out.append(nmtune_method(cfg.model_copy(update={"preset": other})).with_kwargs(f"{other} preset"))
    return out


def id_training_tasks(params: Params) -> list[Task]:
    """The tasks of the ID training domains with *all* their tests (ID and OOD).

    Sections that report ID rows only still fit with these tests, so a fit that repeats one of the
    main grid (same features, labels, settings and seed) has the main grid's cache key and is read,
    not run again; their OOD rows are dropped afterwards (:func:`id_rows`).
    """
    ids = set(params.spectral.id_tasks)
    return [t for t in tasks(params) if t.train in ids]


def id_rows(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["kind"] == "ID"].reset_index(drop=True) if not rows.empty else rows


def ablation(checkpoints: list[Checkpoint], data: DownstreamData, params: Params) -> pd.DataFrame:
    """Tables 15/16 analog on the ID tasks; column ``study`` says which table a row belongs to."""
    task_list, methods = id_training_tasks(params), ablation_methods(params)
    jobs = []
    for ck in select(checkpoints, params.nmtune.ablation.checkpoints):
        feats, views = _checkpoint_inputs(ck, data, params, task_list, methods, "ablation")
        jobs += jobs_for(feats, data, task_list, methods, [ck.spec.seed], _meta(ck), views=views,
                         variant=params.spectral.spectrum_variant)
    rows = id_rows(run_jobs(jobs, params.nmtune.n_jobs, desc="ablation", family=families(params)))
    study = np.where(rows["method"].str.startswith("head"), "Table 15: head",
                     np.where(rows["method"].str.startswith("weights"), "Table 16: loss weights", "preset"))
    return rows.assign(study=study)


def noisy_downstream(checkpoints: list[Checkpoint], data: DownstreamData, params: Params) -> pd.DataFrame:
    """Fig. 15/16 analog: downstream training labels corrupted too; clean test labels."""
    from nml.noise import symmetric_noise, uniform_noise

    d = params.nmtune.noisy_downstream
    inject = {"symmetric": symmetric_noise, "uniform": uniform_noise}[d.noise_kind]
    methods = [method_by_name(params, name) for name in d.methods]
    # clean labels (ratio 0) with the main grid's tests: those fits are the main grid's, read from its cache
    clean_tasks, noisy_tasks = id_training_tasks(params), tasks(params, id_only=True)
    jobs = []
    for ck in select(checkpoints, d.checkpoints):
        feats, views = _checkpoint_inputs(ck, data, params, clean_tasks, methods, "noisy downstream")
        for ratio in d.noise_ratios:
            def noise(y: np.ndarray, seed: int, ratio: float = ratio) -> np.ndarray:
                return y if ratio == 0 else inject(y, ratio, seed=seed + 1000).labels
            jobs += jobs_for(feats, data, clean_tasks if ratio == 0 else noisy_tasks, methods, [ck.spec.seed],
                             {**_meta(ck), "downstream_noise": ratio}, noise, views=views,
                             variant=params.spectral.spectrum_variant)
    return id_rows(run_jobs(jobs, params.nmtune.n_jobs, desc="noisy downstream", family=families(params)))


def real_model_data(data: DownstreamData, params: Params) -> DownstreamData:
    r = params.nmtune.real_models
    return subsample(data, r.max_train_per_class, r.max_test_per_class, params.spectral.split_seed)


def _encoder_options(name: str, data: DownstreamData, params: Params) -> dict:
    sizes = params.nmtune.real_models.image_size
    return {"source_mean": data.mean, "source_std": data.std, **({"image_size": sizes[name]} if name in sizes else {})}


def tune_real_models(data: DownstreamData, params: Params) -> pd.DataFrame:
    """Table 2 analog: published encoders as black boxes; spread over tuner seeds.

    The tuner's seed is the replication seed here, so it is the ``seed`` column, as in every table
    (checkpoint rows have ``seed`` = the checkpoint's seed and keep ``tuner_seed`` beside it).
    """
    from nml.models.image_encoders import (
        create_encoder,
    )

    r = params.nmtune.real_models
    small = real_model_data(data, params)
    task_list = tasks(params, ood_tests_per_pairing=r.ood_tests_per_pairing)
    methods = main_methods(params, r.tuner)
    jobs = []
    for name in r.encoders:
        encoder = create_encoder(name, **_encoder_options(name, data, params))
        transform = f"{small.transform}+{getattr(encoder, 'transform_id', name)}"
        feats = feature_table(encoder, small, params, task_list, transform=transform, desc=name)
        views = (view_banks(encoder, small, params, task_list, transform=transform, n_views=r.views, desc=name)
                 if needs_views(methods) else None)
        jobs += jobs_for(feats, small, task_list, methods, r.seeds, {"encoder": name, "feature_dim": next(iter(feats.values())).shape[1]},
                         views=views, variant=params.spectral.spectrum_variant)
        del encoder
    rows = run_jobs(jobs, params.nmtune.n_jobs, desc="Table 2 analog", family=families(params))
    return rows.rename(columns={"tuner_seed": "seed"})


# --------------------------------------------------------------------------------------------
# runtime: cached features vs the encoder re-run on every batch


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def extraction_pass(encoder: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Features of every image, one pass, no cache (what a tuner needs once)."""
    with torch.no_grad():
        return np.concatenate([encoder(images[i:i + batch_size]).float().numpy() for i in range(0, len(images), batch_size)])


def measure_runtime(encoder: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, y: np.ndarray,
                    methods: list[Method], *, epochs: int, augment: bool = True, seed: int = 0,
                    label: str = "", n_views: int = 4, scale: tuple[float, float] = (0.8, 1.0),
                    flip: bool = True) -> pd.DataFrame:
    """Time the cached path and the authors' path for each method, on the same images.

    * cached (nml's way): one extraction pass over the images, plus — for tuners that read two
      views per step — ``n_views`` passes over augmented copies (the view bank), then the tuner
      on the cached features;
    * encoder every batch (the authors' way): the frozen encoder re-run on every batch of every
      epoch (on each view, augmented with the authors' random resized crop and flip).

    Both train the same head for ``epochs`` epochs on raw (unstandardised) features: statistics
    of features that change every epoch are undefined.
    """
    from functools import partial

    from nml._infra.training import random_resized_crop

    if isinstance(encoder, torch.nn.Module):
        encoder.eval()
    aug = partial(random_resized_crop, scale=scale, flip=flip) if augment else None
    t_extract = _timed(lambda: extraction_pass(encoder, images))
    feats = extraction_pass(encoder, images)
    bank, t_bank = None, 0.0
    if augment and needs_views(methods):
        start = time.perf_counter()
        bank = np.stack([extraction_pass(encoder, aug(images, torch.Generator().manual_seed(k))) for k in range(n_views)], 1)
        t_bank = time.perf_counter() - start
    rows = []
    for m in tqdm(methods, desc=f"runtime {label}"):
        two = needs_views([m])
        cached = m.build(seed, epochs=epochs, standardize=False)
        t_tune = _timed(lambda cached=cached, two=two: cached.fit(feats, y, views=bank if two else None))
        online = m.build(seed, epochs=epochs, standardize=False)
        t_online = _timed(lambda online=online: online.fit_encoder(encoder, images, y, augment=aug))
        t_prep = t_extract + (t_bank if two else 0.0)
        rows.append({"encoder": label, "method": m.label, "epochs": epochs, "n": len(y), "views": 2 if two else 1,
                     "extract_s": t_extract, "view_bank_s": t_bank if two else 0.0, "tune_cached_s": t_tune,
                     "cached_total_s": t_prep + t_tune, "encoder_per_batch_s": t_online,
                     "tune_over_extract": t_tune / t_prep, "speedup_cached": t_online / (t_prep + t_tune)})
    return pd.DataFrame(rows)


# Bump when measure_runtime changes what it measures: cached runtime tables are then measured again.
RUNTIME_CODE_VERSION = 1


@dataclass
class RuntimeJob:
    """One encoder's Table 14 measurement (:func:`measure_runtime`) and what its result depends on."""

    encoder: Any
    images: torch.Tensor
    y: np.ndarray
    methods: list[Method]
    options: dict
    key: str


def _measure(job: RuntimeJob) -> pd.DataFrame:
    return measure_runtime(job.encoder, job.images, job.y, job.methods, **job.options)


def runtime(checkpoints: list[Checkpoint], data: DownstreamData, params: Params) -> pd.DataFrame:
    """Table 14 analog on ``nmtune.runtime.task``: wall-clock seconds of both ways of working.

    Measured once per setting and machine (the key holds the encoder's weights, the images, the
    methods, the settings, the code version and :func:`nml._infra.machine.machine_fingerprint`),
    then read from the cache like every other result, so a warm run shows the cold run's
    measurement (its provenance says so); ``nml bench nmtune`` always measures anew.
    """
    from nml._infra.machine import machine_fingerprint
    from nml.models.image_encoders import create_encoder, encoder_identity

    rt = params.nmtune.runtime
    split = data.get(rt.task, "train")
    idx = np.arange(len(split.y))
    if rt.max_train is not None and rt.max_train < len(idx):
        idx = np.sort(np.random.default_rng(params.spectral.split_seed).permutation(idx)[: rt.max_train])
    images, y = take(split.x, torch.from_numpy(idx)), split.y[idx]
    methods = main_methods(params)
    v = params.nmtune.views
    jobs = []
    for name in rt.encoders:
        if name == "checkpoint":
            clean = [ck for ck in checkpoints if ck.spec.track == "supervised" and ck.spec.noise_ratio == 0.0]
            encoder, label = clean[0].backbone.cpu().eval(), f"checkpoint ({params.pretrain.model})"
        else:
            encoder, label = create_encoder(name, **_encoder_options(name, data, params)), name
        options = {"epochs": rt.epochs, "augment": rt.augment, "label": label, "n_views": v.n, "scale": tuple(v.scale),
                   "flip": v.flip}
        key = stable_hash({"encoder": encoder_identity(encoder), "images": array_id(images, y),
                           "methods": [method_key(m) for m in methods], "options": options,
                           "machine": machine_fingerprint(), "code": RUNTIME_CODE_VERSION}, length=24)
        jobs.append(RuntimeJob(encoder, images, y, methods, options, key))
    # measured here: the key names this machine (a cluster would time another one)
    frames = run_cached(jobs, lambda j: j.key, _measure, folder="runtime", desc="Table 14 timings", local=True)
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------------
# summaries


def summary(rows: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Average over tasks per seed, then mean ± std over seeds, for each group in ``by``."""
    per_seed = rows.groupby([*by, "kind", "seed"])[["acc", "macro_f1", "sve", "lsvr"]].mean().reset_index()
    agg = per_seed.groupby([*by, "kind"]).agg(
        acc_mean=("acc", "mean"), acc_std=("acc", "std"), f1_mean=("macro_f1", "mean"), f1_std=("macro_f1", "std"),
        sve_mean=("sve", "mean"), lsvr_mean=("lsvr", "mean"), seeds=("seed", "nunique"))
    return agg.reset_index()
