"""Run many independent fits, in parallel, each result cached on disk under its content key.

A chapter describes its work as a list of picklable jobs and a module-level function that does
one job. Results already on disk are read, never recomputed, so an interrupted run resumes at the
next unfinished job and a warm run only reads. Writes are atomic (``nml._infra.cache``).

Jobs that are cheaper done together (many small heads trained as one model) also name a
``group`` (jobs of one group can be done together) and a ``work_many`` (does a list of them). The
jobs of a group are cut into units of at most ``max_group`` in job order, over *all* the jobs,
cached or not: a unit is always the same set of jobs, so a result does not depend on what an
interrupted run had already cached (a unit with one result missing is recomputed whole).

Where the units run is the process-wide executor (:func:`configure_executor`, set by
:func:`nml.notebook.setup` from the params' ``executor`` section; :func:`use_executor` for a block):

* ``joblib`` (the default): in this process when ``n_jobs`` is 1 or one unit is to do, else in
  ``n_jobs`` worker processes of this machine.
* ``ray``: every unit is one Ray task (``cpus_per_job``, ``gpus_per_job``), whatever ``n_jobs`` —
  a caller's ``n_jobs`` is how many fits it runs side by side here, while a cluster may have room
  for many more (or hold the GPU). ``n_jobs`` still sizes the local Ray instance started when no
  cluster address is given. Callers that must run here (a timing measured on this machine) pass
  ``local=True``.

Either way a unit runs on one CPU thread (:func:`_single_threaded`), so every number is the same
on both executors. A unit that raises is run again ``retries`` times; if it still fails, the run
stops with :class:`JobFailed` naming the job, after caching every result that had arrived.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import torch

from nml._infra.cache import atomic_write_bytes, record_cache_use
from nml._infra.paths import features_dir
from nml._infra.progress import tqdm
from nml._infra.runtime_config import ExecutorConfig

log = logging.getLogger("nml._infra.jobs")

J = TypeVar("J")


def result_path(folder: str, key: str) -> Path:
    return features_dir() / folder / f"{key}.pkl"


# --------------------------------------------------------------------------------------------
# the executor

_executor = ExecutorConfig()


def configure_executor(cfg: ExecutorConfig | None) -> ExecutorConfig:
    """Make ``cfg`` (a copy; None: the default, joblib) the executor of every :func:`run_cached`
    of this process from now on; returns the one it replaces."""
    global _executor
    previous, _executor = _executor, (cfg.model_copy(deep=True) if cfg is not None else ExecutorConfig())
    return previous


def current_executor() -> ExecutorConfig:
    return _executor


@contextmanager
def use_executor(cfg: ExecutorConfig | None) -> Iterator[ExecutorConfig]:
    """``cfg`` as the executor inside the block, the previous one after it."""
    previous = configure_executor(cfg)
    try:
        yield current_executor()
    finally:
        configure_executor(previous)


class JobFailed(RuntimeError):
    """A job (a unit of jobs done together) still raised after its retries. The message names the
    run (``desc``), the jobs' cache keys, the job and the last error; the error is chained."""


def _failure(desc: str, keys: Sequence[str], arg: Any, attempts: int, err: BaseException) -> str:
    what = f"job {keys[0]}" if len(keys) == 1 else f"unit of {len(keys)} jobs {', '.join(keys)}"
    job = arg[0] if isinstance(arg, list) and arg else arg
    try:
        shown = str(job)[:200]
    except Exception:  # a job that cannot say what it is still gets named by its key
        shown = f"<{type(job).__name__}>"
    tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
    return f"{desc}: {what} failed after {tries} ({type(err).__name__}: {err}); job: {shown}"


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


def _attempts(work: Callable[[Any], Any], arg: Any, retries: int, desc: str, keys: Sequence[str]) -> Any:
    """``_single_threaded(work, arg)``, run again up to ``retries`` times while it raises; then
    :class:`JobFailed`. Runs where the unit runs (this process, a joblib worker, a Ray task), so the
    error that comes back is already named."""
    for attempt in range(retries + 1):
        try:
            return _single_threaded(work, arg)
        except Exception as err:
            if attempt == retries:
                raise JobFailed(_failure(desc, keys, arg, attempt + 1, err)) from err
            log.warning("%s: %s raised %s: %s; running it again (%d of %d)", desc, keys[0], type(err).__name__, err,
                        attempt + 1, retries)
    raise AssertionError("unreachable")


def _numbered(position: int, work: Callable[[Any], Any], arg: Any, retries: int, desc: str,
              keys: Sequence[str]) -> tuple[int, Any]:
    """A joblib unit: its place in the to-do list with its result (they arrive as they finish)."""
    return position, _attempts(work, arg, retries, desc, keys)


def _ray_unit(work: Callable[[Any], Any], arg: Any, retries: int, desc: str, keys: Sequence[str],
              home: str | None) -> Any:
    """A Ray task: :func:`_attempts` with the driver's ``NML_HOME`` (a worker started before the
    driver changed it would otherwise read and write another cache)."""
    saved = os.environ.get("NML_HOME")
    if home is None:
        os.environ.pop("NML_HOME", None)
    else:
        os.environ["NML_HOME"] = home
    try:
        return _attempts(work, arg, retries, desc, keys)
    finally:
        if saved is None:
            os.environ.pop("NML_HOME", None)
        else:
            os.environ["NML_HOME"] = saved


_local_ray_cpus: int | None = None  # CPUs of the local Ray instance this process started, if any
_ray_task: Any = None


def _ray(cfg: ExecutorConfig, n_jobs: int) -> Any:
    """The ``ray`` module, initialised: connected to ``cfg.address`` (or ``RAY_ADDRESS``), else a
    local instance of ``n_jobs`` jobs (``n_jobs × cpus_per_job`` CPUs, no dashboard, a small object
    store, workers' output not forwarded). A local instance this process started is restarted
    larger when a later caller asks for more jobs at a time; one started by someone else is used
    as it is."""
    global _local_ray_cpus
    import ray

    address = cfg.address or os.environ.get("RAY_ADDRESS") or None
    cpus = max(1, math.ceil(max(1, n_jobs) * cfg.cpus_per_job))
    if ray.is_initialized():
        if _local_ray_cpus is None or address is not None or cpus <= _local_ray_cpus:
            return ray
        log.info("restarting the local Ray instance with %d CPUs (was %d)", cpus, _local_ray_cpus)
        ray.shutdown()
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING, "ignore_reinit_error": True}
    if address is not None:
        log.info("connecting to the Ray cluster at %s", address)
        ray.init(address=address, **quiet)
        _local_ray_cpus = None
    else:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a local instance reports nothing
        log.info("starting a local Ray instance (%d CPUs)", cpus)
        # Ray's default token authentication stays on; only its notice that it is on is silenced
        notice = logging.getLogger("ray._private.authentication.authentication_token_setup")
        level = notice.level
        notice.setLevel(logging.ERROR)
        try:
            ray.init(address="local", num_cpus=cpus, include_dashboard=False, object_store_memory=256 * 1024**2,
                     **quiet)
        finally:
            notice.setLevel(level)
        _local_ray_cpus = cpus
    return ray


def _run_on_ray(cfg: ExecutorConfig, n_jobs: int, units: list[tuple[Callable[[Any], Any], Any, list[str]]],
                desc: str, arrived: Callable[[int, Any], None]) -> None:
    """Each unit ``(function, argument, keys)`` as one Ray task; ``arrived(position, value)`` as
    each finishes. At most twice as many tasks as the cluster can run at once are submitted
    (their arguments are in the object store while they wait). On a failure the tasks still
    running are cancelled, the ones already finished are handed over, then :class:`JobFailed`."""
    global _ray_task
    ray = _ray(cfg, n_jobs)
    total = ray.cluster_resources()
    fits = [total.get("CPU", 0.0) / cfg.cpus_per_job]
    if cfg.gpus_per_job > 0:
        fits.append(total.get("GPU", 0.0) / cfg.gpus_per_job)
    at_once = int(min(fits))
    if at_once < 1:
        msg = (f"{desc}: a job asks Ray for {cfg.cpus_per_job:g} CPUs and {cfg.gpus_per_job:g} GPUs; the cluster "
               f"has {total.get('CPU', 0.0):g} and {total.get('GPU', 0.0):g}")
        if _local_ray_cpus is not None:
            raise ValueError(msg + " (executor.cpus_per_job / gpus_per_job)")
        log.warning("%s: waiting for the cluster to grow", msg)
    if _ray_task is None:
        _ray_task = ray.remote(_ray_unit)
    task = _ray_task.options(num_cpus=cfg.cpus_per_job, num_gpus=cfg.gpus_per_job, max_retries=cfg.retries,
                             retry_exceptions=False, name=desc)
    home = os.environ.get("NML_HOME")
    limit = 2 * max(1, at_once)
    pending: dict[Any, int] = {}
    submitted = 0

    def submit() -> None:
        nonlocal submitted
        while submitted < len(units) and len(pending) < limit:
            work, arg, keys = units[submitted]
            pending[task.remote(work, arg, cfg.retries, desc, keys, home)] = submitted
            submitted += 1

    def fetch(ref: Any) -> tuple[int, Any]:
        position = pending.pop(ref)
        try:
            return position, ray.get(ref)
        except ray.exceptions.RayTaskError as err:  # the unit raised: JobFailed, already named
            cause = getattr(err, "cause", None)
            if isinstance(cause, JobFailed):
                raise JobFailed(str(cause)) from err
            # raised outside the retried call (e.g. its arguments could not be unpickled there)
            message = _failure(desc, units[position][2], units[position][1], 1, cause or err)
            raise JobFailed(message) from err
        except ray.exceptions.RayError as err:  # its worker or node died (Ray retried it), an object was lost
            raise JobFailed(_failure(desc, units[position][2], units[position][1], cfg.retries + 1, err)) from err

    try:
        submit()
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                arrived(*fetch(ref))
            submit()
    except BaseException as failure:  # a unit failed, or the caller was interrupted: stop the rest
        finished, running = ray.wait(list(pending), num_returns=len(pending), timeout=0) if pending else ([], [])
        for ref in running:
            ray.cancel(ref)
        if isinstance(failure, JobFailed):
            for ref in finished:  # cached too, so a re-run resumes after them
                try:
                    arrived(*fetch(ref))
                except JobFailed:
                    pass  # the first failure is the one reported
        raise


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
               work_many: Callable[[list[J]], list[Any]] | None = None, max_group: int = 16,
               local: bool = False) -> list[Any]:
    """``[work(job) for job in jobs]``, reading results cached under ``folder/<key(job)>.pkl``.

    ``work`` (and ``work_many``) must be module-level functions (they are pickled to worker
    processes when ``n_jobs > 1``, and to Ray tasks). A torn or unreadable cache file is ignored
    and the job runs again. Jobs with equal keys are done once. Each result read or computed is
    recorded as ``<folder>/<key>`` (:func:`nml._infra.cache.record_cache_use`).

    With ``group`` and ``work_many``: the units of :func:`work_units` with a result missing are
    done by ``work_many(unit's jobs)`` (one result per job, in order) instead of job by job.

    The units run on the current executor (:func:`configure_executor`; ``local=True``: in this
    process whatever it is). A unit that raises is run again ``executor.retries`` times, then
    :class:`JobFailed` is raised, every result that arrived before it cached.
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

    executor = current_executor()
    retries = executor.retries

    with tqdm(total=n_todo, desc=bar, disable=not todo) as progress:

        def arrived(position: int, value: Any) -> None:
            unit = todo[position]
            done(unit, as_list(value))
            progress.update(sum(i not in cached for i in unit))

        if todo and executor.kind == "ray" and not local:
            _run_on_ray(executor, n_jobs, [(*task(unit), [keys[i] for i in unit]) for unit in todo], desc, arrived)
        elif n_jobs > 1 and len(todo) > 1 and not local:
            from joblib import Parallel, delayed

            # results in the order they finish, each cached as it arrives: a failed unit stops the
            # run with every result that finished before it on disk
            outputs = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
                delayed(_numbered)(p, *task(unit), retries, desc, [keys[i] for i in unit])
                for p, unit in enumerate(todo))
            for position, value in outputs:
                arrived(position, value)
        else:
            for p, unit in enumerate(todo):
                arrived(p, _attempts(*task(unit), retries, desc, [keys[i] for i in unit]))
    if todo:
        log.debug("%s: cached %d results in %s", desc, n_todo, result_path(folder, "x").parent)
    first = {k: i for i, k in reversed(list(enumerate(keys)))}
    return [results[first[k]] for k in keys]


T = TypeVar("T")


def _call(compute: Callable[[], T]) -> T:
    return compute()


def cached_result(folder: str, key: str, compute: Callable[[], T], *, desc: str) -> T:
    """``compute()`` once per ``key``, in this process (whatever the executor), then read from
    ``folder/<key>.pkl`` (written atomically, recorded like every cached result). ``key`` must hold
    everything the result depends on — for a measured time, the machine
    (:func:`nml._infra.machine.machine_fingerprint`)."""
    return run_cached([compute], lambda _: key, _call, folder=folder, desc=desc, local=True)[0]
