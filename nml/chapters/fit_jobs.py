"""One fit of a tuner on frozen features, scored on held-out sets: the unit chapters 03 and 05
cache and run in parallel.

A job is a method (:class:`nml.chapters.ch03_nmtune.run.Method`: a tuner and its settings), a
tuner seed, the training features and labels, and the sets it is scored on. Its cache key
(:meth:`FitJob.key`) is a content hash of all of these and of the chapter's code version, never of
who asked for the fit (``meta``, the method's label): two sections that request the same fit share
one result. :func:`fit_and_score` does one job (a module-level function, so worker processes can run
it); :func:`run_fit_jobs` runs a list through :func:`nml._infra.jobs.run_cached`.

A chapter subclasses :class:`FitJob` to say what its scored sets are and how they enter the key
(:meth:`FitJob.tests_key`, :meth:`FitJob.extra_key`), which columns lead each result row
(:meth:`FitJob.row_head`) and where its results are cached (``cache_folder``). Every row then has
the same scores, in this order: ``acc``, ``macro_f1``, ``sve``, ``lsvr`` (of the representation
the classifier reads), ``fit_seconds``, ``n_train``, ``n_test`` and the predictions ``pred``.

The seeds of one grid cell (:meth:`FitJob.unit_key`: the same recipe on training data of one shape,
the same ``meta`` but the seed) are fitted as one batched model (:func:`fit_many_and_score`,
through :func:`nml.estimators.frozen.fit_many`), each keeping its own seed and recipe; their
``fit_seconds`` is their share of the batch's time. A unit is always the same set of fits — it
does not depend on what is cached or on the other cells of the grid — so adding a noise ratio adds
units without touching the others, and an interrupted run recomputes exactly the numbers it lost.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from nml._infra.cache import stable_hash
from nml._infra.jobs import run_cached
from nml.metrics import accuracy, lsvr, macro_f1, singular_values, sve
from nml.models.features import array_id

if TYPE_CHECKING:
    from nml.chapters.ch03_nmtune.run import Method

__all__ = ["FitJob", "fit_and_score", "fit_many_and_score", "method_key", "run_fit_jobs"]

MAX_HEADS = 16
"""At most this many fits are trained as one model."""
MAX_BATCH_BYTES = 2 * 1024**3
"""... and their stacked training data (features and view banks) stay under this many bytes."""


def method_key(method: Method) -> list:
    """What of a method enters a cache key: its tuner and settings, not its label."""
    return [method.tuner, [list(kv) for kv in method.kwargs]]


@dataclass
class FitJob:
    """Fit ``method`` with ``seed`` on (``x_train``, ``y_train``) and score it on each of ``tests``.

    ``meta`` says who asked for the fit (chapter columns such as the checkpoint or the encoder); it
    is not part of the key. ``tests`` holds the chapter's records of the scored sets.
    """

    meta: dict
    method: Method
    seed: int
    x_train: np.ndarray
    y_train: np.ndarray
    tests: list

    cache_folder: ClassVar[str] = ""
    """Folder under ``features_dir()`` holding the results of this kind of job."""
    code_version: ClassVar[int] = 0
    """Bump (in the subclass) when the work changes what it computes: it invalidates cached results."""
    pred_dtype: ClassVar[type] = np.int64
    """dtype of the stored predictions (``pred``)."""

    # ---- the key ------------------------------------------------------------------------------
    def key(self) -> str:
        """Content hash of the method, the seed, the training data, the tests and the code version."""
        return stable_hash({
            "method": method_key(self.method), "seed": self.seed,
            "train": [array_id(self.x_train), array_id(self.y_train)],
            "tests": self.tests_key(), **self.extra_key(), "code": self.code_version,
        }, length=24)

    def tests_key(self) -> list:
        """What of the scored sets enters the key (their content, not only their names)."""
        raise NotImplementedError

    def extra_key(self) -> dict[str, Any]:
        """Further entries of the key (e.g. the bank of augmented views); none by default."""
        return {}

    # ---- the work -----------------------------------------------------------------------------
    def fit_options(self) -> dict[str, Any]:
        """Keyword arguments of the tuner's ``fit`` besides the training data."""
        return {}

    def scored_sets(self) -> list[tuple[Any, np.ndarray, np.ndarray]]:
        """``(test record, X, y)`` of every set the fit is scored on, in row order."""
        raise NotImplementedError

    def spectrum_variant(self) -> str:
        """How the SVE / LSVR of the scored representation are computed (:func:`nml.metrics.singular_values`)."""
        return "authors"

    def representation(self, model: Any, x: np.ndarray) -> np.ndarray:
        """The features the fitted tuner's classifier reads: ``model.transform(x)`` by default."""
        return model.transform(x)

    def row_head(self, test: Any, pred: np.ndarray) -> dict[str, Any]:
        """The leading columns of a test's row (who and what was scored); the scores follow."""
        raise NotImplementedError

    def stack_key(self) -> tuple:
        """Jobs with equal stack keys are trained as one model: the tuner's recipe but the seed
        (:func:`nml.estimators.frozen.stack_signature`), the training data's shape and number of
        classes, the shape of the view bank it reads."""
        from nml.estimators.frozen import stack_signature

        views = self.fit_options().get("views")
        tuner = self.method.build(self.seed)
        two_views = tuner._resolved_hyper_params().get("n_views", 1) == 2
        return (stack_signature(tuner), self.x_train.shape, len(np.unique(self.y_train)),
                None if views is None or not two_views else np.shape(views))

    def unit_key(self) -> tuple:
        """Jobs with equal unit keys are trained as one model: :meth:`stack_key` and the grid cell
        (``meta`` without the seed)."""
        cell = tuple(sorted((k, repr(v)) for k, v in self.meta.items() if k != "seed"))
        return (self.stack_key(), cell)

    def train_bytes(self) -> int:
        """Bytes of the training data this job stacks with others'."""
        views = self.fit_options().get("views")
        return int(self.x_train.nbytes + (0 if views is None else np.asarray(views).nbytes))


def _score(job: FitJob, model: Any, fit_seconds: float) -> list[dict]:
    rows = []
    for test, x, y in job.scored_sets():
        raw = np.asarray(model.predict(x))
        pred = raw.astype(job.pred_dtype)
        sigma = singular_values(job.representation(model, x), variant=job.spectrum_variant())
        rows.append({**job.row_head(test, pred), "acc": accuracy(y, raw), "macro_f1": macro_f1(y, raw),
                     "sve": sve(sigma), "lsvr": lsvr(sigma), "fit_seconds": fit_seconds, "n_train": len(job.y_train),
                     "n_test": len(y), "pred": pred})
    return rows


def fit_and_score(job: FitJob) -> list[dict]:
    """Fit the job's method once and return one row per scored set: :meth:`FitJob.row_head`, then
    accuracy, macro-F1, SVE / LSVR of what the classifier reads, the fit's seconds, the sizes and
    the predictions."""
    start = time.perf_counter()
    model = job.method.build(job.seed).fit(job.x_train, job.y_train, **job.fit_options())
    return _score(job, model, time.perf_counter() - start)


def fit_many_and_score(jobs: list[FitJob]) -> list[list[dict]]:
    """:func:`fit_and_score` of jobs with one :meth:`FitJob.stack_key`, their tuners trained as one
    model (:func:`nml.estimators.frozen.fit_many`); ``fit_seconds`` is each job's share."""
    from nml.estimators.frozen import fit_many

    start = time.perf_counter()
    models = fit_many([job.method.build(job.seed) for job in jobs], [job.x_train for job in jobs],
                      [job.y_train for job in jobs], [job.fit_options().get("views") for job in jobs])
    share = (time.perf_counter() - start) / len(jobs)
    return [_score(job, model, share) for job, model in zip(jobs, models, strict=True)]


def run_fit_jobs(jobs: Sequence[FitJob], n_jobs: int = 1, desc: str = "fits") -> list[list[dict]]:
    """The rows of every job, read from the cache where a job's result is there, fitted otherwise
    (``n_jobs`` worker processes). Every job must be of one kind (one cache folder)."""
    folders = {type(job).cache_folder for job in jobs}
    if len(folders) > 1:
        raise ValueError(f"jobs of several kinds (cache folders {sorted(folders)}) in one run")
    folder = folders.pop() if folders else "unused"
    if not jobs:
        return []
    per_job = max(1, max(job.train_bytes() for job in jobs))
    max_group = max(1, min(MAX_HEADS, MAX_BATCH_BYTES // per_job))
    return run_cached(jobs, FitJob.key, fit_and_score, folder=folder, n_jobs=n_jobs, desc=desc,
                      group=FitJob.unit_key, work_many=fit_many_and_score, max_group=max_group)
