"""Run many independent fits, in parallel, each result cached on disk under its content key.

A chapter describes its work as a list of picklable jobs and a module-level function that does
one job. Results already on disk are read, never recomputed, so an interrupted run resumes at the
next unfinished job and a warm run only reads. Writes are atomic (``nml._infra.cache``).

Jobs that are cheaper done together (many small heads trained as one model) also name a
``group`` (jobs of one group can be done together) and a ``work_many`` (does a list of them). The
jobs of a group are cut into units of at most ``max_group`` in job order, over *all* the jobs,
cached or not: a unit is always the same set of jobs, so a result does not depend on what an
interrupted run had already cached (a unit with one result missing is recomputed whole).
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Hashable, Sequence
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


def work_units(jobs: Sequence[J], keys: Sequence[str], group: Callable[[J], Hashable] | None,
               max_group: int) -> list[list[int]]:
    """Indices of the jobs of each unit of work: one job each without ``group``; else the jobs of
    each group (first-appearance order, one per key), cut into near-equal units of at most
    ``max_group``."""
    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    unique = list(first.values())
    if group is None:
        return [[i] for i in unique]
    groups: dict[Hashable, list[int]] = {}
    for i in unique:
        groups.setdefault(group(jobs[i]), []).append(i)
    units = []
    for members in groups.values():
        n_units = -(-len(members) // max(1, max_group))
        size, extra = divmod(len(members), n_units)
        start = 0
        for u in range(n_units):
            stop = start + size + (u < extra)
            units.append(members[start:stop])
            start = stop
    return units


def run_cached(jobs: Sequence[J], key: Callable[[J], str], work: Callable[[J], Any], *, folder: str,
               n_jobs: int = 1, desc: str = "jobs", group: Callable[[J], Hashable] | None = None,
               work_many: Callable[[list[J]], list[Any]] | None = None, max_group: int = 16) -> list[Any]:
    """``[work(job) for job in jobs]``, reading results cached under ``folder/<key(job)>.pkl``.

    ``work`` (and ``work_many``) must be module-level functions (they are pickled to worker
    processes when ``n_jobs > 1``). A torn or unreadable cache file is ignored and the job runs
    again. Jobs with equal keys are done once. Each result read or computed is recorded as
    ``<folder>/<key>`` (:func:`nml._infra.cache.record_cache_use`).

    With ``group`` and ``work_many``: the units of :func:`work_units` with a result missing are
    done by ``work_many(unit's jobs)`` (one result per job, in order) instead of job by job.
    """
    if (group is None) != (work_many is None):
        raise ValueError("group and work_many go together: give both or neither")
    results: dict[int, Any] = {}
    keys = [key(job) for job in jobs]
    units = work_units(jobs, keys, group, max_group)
    cached: set[int] = set()
    for unit in units:
        for i in unit:
            path = result_path(folder, keys[i])
            if path.exists():
                try:
                    results[i] = pickle.loads(path.read_bytes())
                    record_cache_use(f"{folder}/{keys[i]}", reused=True)
                    cached.add(i)
                except Exception as err:  # torn or foreign file: run again
                    log.warning("ignoring unreadable result %s (%s)", path.name, err)
    todo = [unit for unit in units if any(i not in cached for i in unit)]
    n_todo = sum(i not in cached for unit in todo for i in unit)
    if jobs:
        log.info("%s: %d cached, %d to compute", desc, len(cached), n_todo)
    bar = f"{desc} ({len(cached)} cached)" if cached else desc  # the bar counts the jobs computed

    def done(unit: list[int], values: list[Any]) -> None:
        for i, value in zip(unit, values, strict=True):
            if i in cached:
                continue  # the unit was recomputed for a missing member; the cached result stays
            atomic_write_bytes(result_path(folder, keys[i]), pickle.dumps(value))
            record_cache_use(f"{folder}/{keys[i]}", reused=False)
            results[i] = value

    def task(unit: list[int]) -> tuple[Callable[[Any], Any], Any]:
        """(function, argument) of one unit: ``work(job)`` or ``work_many(jobs)``."""
        if work_many is None:
            return work, jobs[unit[0]]
        return work_many, [jobs[i] for i in unit]

    def as_list(value: Any) -> list[Any]:
        return [value] if work_many is None else list(value)

    with tqdm(total=n_todo, desc=bar, disable=not todo) as progress:
        if n_jobs > 1 and len(todo) > 1:
            from joblib import Parallel, delayed

            outputs = Parallel(n_jobs=n_jobs, return_as="generator")(
                delayed(_single_threaded)(*task(unit)) for unit in todo)
            for unit, value in zip(todo, outputs, strict=True):
                done(unit, as_list(value))
                progress.update(sum(i not in cached for i in unit))
        else:
            for unit in todo:
                done(unit, as_list(_single_threaded(*task(unit))))
                progress.update(sum(i not in cached for i in unit))
    if todo:
        log.debug("%s: cached %d results in %s", desc, n_todo, result_path(folder, "x").parent)
    first = {k: i for i, k in reversed(list(enumerate(keys)))}
    return [results[first[k]] for k in keys]


T = TypeVar("T")


def _call(compute: Callable[[], T]) -> T:
    return compute()


def cached_result(folder: str, key: str, compute: Callable[[], T], *, desc: str) -> T:
    """``compute()`` once per ``key``, then read from ``folder/<key>.pkl`` (written atomically,
    recorded like every cached result). ``key`` must hold everything the result depends on —
    for a measured time, the machine (:func:`nml._infra.machine.machine_fingerprint`)."""
    return run_cached([compute], lambda _: key, _call, folder=folder, desc=desc)[0]
