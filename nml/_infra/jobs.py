"""Run many independent fits, in parallel, each result cached on disk under its content key.

A chapter describes its work as a list of picklable jobs and a module-level function that does
one job. Results already on disk are read, never recomputed, so an interrupted run resumes at the
next unfinished job and a warm run only reads. Writes are atomic (``nml._infra.cache``).
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch

from nml._infra.cache import atomic_write_bytes, record_cache_use
from nml._infra.paths import features_dir
from nml._infra.progress import tqdm

log = logging.getLogger("nml._infra.jobs")

J = TypeVar("J")


def result_path(folder: str, key: str) -> Path:
    return features_dir() / folder / f"{key}.pkl"


def _single_threaded(work: Callable[[Any], Any], job: Any) -> Any:
    # Every job runs on one CPU thread, in a worker or not: two small fits side by side on two
    # cores beat one fit on two threads, and the float summation order (so every number) does
    # not depend on n_jobs.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return work(job)
    finally:
        torch.set_num_threads(threads)


def run_cached(jobs: Sequence[J], key: Callable[[J], str], work: Callable[[J], Any], *, folder: str,
               n_jobs: int = 1, desc: str = "jobs") -> list[Any]:
    """``[work(job) for job in jobs]``, reading results cached under ``folder/<key(job)>.pkl``.

    ``work`` must be a module-level function (it is pickled to worker processes when
    ``n_jobs > 1``). A torn or unreadable cache file is ignored and the job runs again. Each
    result read or computed is recorded as ``<folder>/<key>`` (:func:`nml._infra.cache.record_cache_use`).
    """
    results: dict[int, Any] = {}
    todo = []
    keys = [key(job) for job in jobs]
    for i, k in enumerate(keys):
        path = result_path(folder, k)
        if path.exists():
            try:
                results[i] = pickle.loads(path.read_bytes())
                record_cache_use(f"{folder}/{k}", reused=True)
                continue
            except Exception as err:  # torn or foreign file: run again
                log.warning("ignoring unreadable result %s (%s)", path.name, err)
        todo.append(i)
    if jobs:
        log.info("%s: %d cached, %d to compute", desc, len(results), len(todo))
    bar = f"{desc} ({len(results)} cached)" if results else desc  # the bar counts the jobs computed

    def done(i: int, value: Any) -> None:
        atomic_write_bytes(result_path(folder, keys[i]), pickle.dumps(value))
        record_cache_use(f"{folder}/{keys[i]}", reused=False)
        results[i] = value

    if todo and n_jobs > 1:
        from joblib import Parallel, delayed

        outputs = Parallel(n_jobs=n_jobs, return_as="generator")(delayed(_single_threaded)(work, jobs[i]) for i in todo)
        for i, value in tqdm(zip(todo, outputs, strict=True), total=len(todo), desc=bar):
            done(i, value)
    else:
        for i in tqdm(todo, desc=bar, disable=not todo):
            done(i, _single_threaded(work, jobs[i]))
    if todo:
        log.debug("%s: cached %d results in %s", desc, len(todo), result_path(folder, "x").parent)
    return [results[i] for i in range(len(jobs))]
