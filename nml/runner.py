"""Run the notebooks in order, headlessly, through papermill.

Notebooks are discovered as ``notebooks/NN_*.ipynb`` and run in the order of ``NN``; a new
chapter is picked up by dropping a file there. Every notebook receives the same resolved params
file (written once, after validation) and the output directory for its figures and tables.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path

from nml._infra.cache import atomic_write_text
from nml._infra.paths import project_root
from nml._infra.progress import PROGRESS_ENV
from nml._infra.schema import ParamsError
from nml.chapters import CHAPTERS
from nml.config import Params, dump_params, load_params
from nml.models.throughput import (
    NotebookCost,
    ThroughputModel,
    Workload,
    bench_device,
    format_cost,
    load_throughput,
    throughput_models,
)
from nml.report.provenance import git_state, params_hash
from nml.report.status import (
    INTERRUPTED,
    NOT_RUN,
    OK,
    RUNNING,
    describe_failure,
    failure_entry,
    now_utc,
    update_run_status,
)

log = logging.getLogger("nml.runner")

NOTEBOOK_PATTERN = re.compile(r"^(\d{2})_[\w-]+\.ipynb$")
RESOLVED_PARAMS = "params.resolved.yaml"
NML_KERNEL = "nml"  # the Jupyter kernel `make setup` registers and the notebooks' metadata name
FALLBACK_KERNEL = "python3"  # this interpreter's own kernel (ipykernel), for installs without `make setup`


@dataclass(frozen=True)
class Notebook:
    number: str
    path: Path

    @property
    def name(self) -> str:
        return self.path.stem


@dataclass(frozen=True)
class RunPlan:
    params: Params
    notebooks: list[Notebook]
    executed_dir: Path
    figures_dir: Path


def discover_notebooks(directory: Path | None = None) -> list[Notebook]:
    """``NN_name.ipynb`` files in ``directory`` (default: the repo's notebooks/), by number."""
    directory = Path(directory) if directory else project_root() / "notebooks"
    if not directory.is_dir():
        raise FileNotFoundError(f"no notebooks folder at {directory}")
    found = []
    for path in sorted(directory.glob("*.ipynb")):
        match = NOTEBOOK_PATTERN.match(path.name)
        if match:
            found.append(Notebook(match.group(1), path))
    numbers = [nb.number for nb in found]
    duplicated = sorted({n for n in numbers if numbers.count(n) > 1})
    if duplicated:
        raise ValueError(f"two notebooks share the number(s) {duplicated} in {directory}")
    return found


def select_notebooks(notebooks: list[Notebook], only: str | None) -> list[Notebook]:
    """Keep the notebooks whose numbers are listed in ``only`` ("01,02" or "1,2")."""
    if not only:
        return notebooks
    wanted = []
    for token in only.split(","):
        token = token.strip()
        if not token.isdigit():
            raise ParamsError(f"--only {only!r}: expected comma-separated notebook numbers like 01,02")
        wanted.append(f"{int(token):02d}")
    known = {nb.number for nb in notebooks}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise ParamsError(f"--only: no notebook numbered {unknown}; there are {sorted(known)}")
    return [nb for nb in notebooks if nb.number in wanted]


def plan_run(
    *,
    profile: str | None = None,
    params_file: str | Path | None = None,
    overrides: list[str] | None = None,
    only: str | None = None,
    output_dir: str | Path | None = None,
    notebooks_dir: str | Path | None = None,
    require_data: bool = True,
) -> RunPlan:
    """Validate everything a run needs, before any notebook starts."""
    if profile is None and params_file is None:
        profile = "cpu"
    params = load_params(profile, params_file, overrides, require_data=require_data)
    notebooks = select_notebooks(discover_notebooks(notebooks_dir), only)
    if require_data and any(nb.number >= "03" for nb in notebooks):
        missing = params.missing_models()
        if missing:
            lines = [f"  - {name}: {what}" for name, what in missing.items()]
            raise ParamsError("models named in the params are missing on this machine:\n" + "\n".join(lines))
    if output_dir is not None:
        executed_dir = figures_dir = Path(output_dir).resolve()
    else:
        executed_dir = project_root() / "runs" / params.profile
        figures_dir = project_root() / "figures" / params.profile
    return RunPlan(params, notebooks, executed_dir, figures_dir)


def describe_plan(plan: RunPlan) -> str:
    """What a run would do, for ``--dry-run``: notebooks, grids, what is missing here."""
    p = plan.params
    lines = [
        f"profile: {p.profile}  ({p.description})" if p.description else f"profile: {p.profile}",
        f"executed notebooks -> {plan.executed_dir}",
        f"figures and tables -> {plan.figures_dir}",
        "notebooks:",
    ]
    rates = load_throughput(bench_device(p.device).type)
    for nb in plan.notebooks:
        lines.append(f"  {nb.path.name}")
        lines += [f"      {line}" for line in describe_grid(p, nb.number)]
        lines += [f"      {line}" for line in describe_cost(p, nb.number, rates)]
    missing = p.missing_datasets()
    lines.append("missing on this machine:" if missing else "missing on this machine: nothing")
    for name, what in missing.items():
        lines.append(f"  - {name}: {'; '.join(what)}")
    for name, what in p.missing_models().items():
        lines.append(f"  - model {name}: {what}")
    return "\n".join(lines)


def execute_plan(plan: RunPlan, *, kernel_name: str | None = None, log_output: bool = True) -> list[Path]:
    """Execute the planned notebooks with papermill; return the executed notebook paths.

    ``log_output`` streams each notebook's printed output and log lines (what is trained,
    cached or reused) to this process's log as it runs.

    Each notebook's outcome goes to ``run_status.json`` in the figures folder
    (:mod:`nml.report.status`) as it happens. A notebook that fails stops the run: papermill has
    already written the partially executed notebook (kept in the output folder), its entry says
    which cell failed with which error, the notebooks after it are "not run", and
    :class:`NotebookFailed` is raised.
    """
    import papermill

    plan.executed_dir.mkdir(parents=True, exist_ok=True)
    plan.figures_dir.mkdir(parents=True, exist_ok=True)
    resolved = atomic_write_text(plan.executed_dir / RESOLVED_PARAMS, dump_params(plan.params))
    kernel_name = choose_kernel(kernel_name)
    # the kernels inherit this: text bars in the papermill log instead of a frozen widget
    os.environ.setdefault(PROGRESS_ENV, "text")
    done = []
    started_cold = caches_empty()
    update_run_status(plan.figures_dir, {nb.name: {"status": NOT_RUN, "reason": "not reached yet"} for nb in plan.notebooks},
                      profile=plan.params.profile, params_hash=params_hash(plan.params), git_commit=git_state()[0])
    for i, nb in enumerate(plan.notebooks):
        out = plan.executed_dir / nb.path.name
        log.info("running %s -> %s", nb.path.name, out)
        start, started, start_wall = time.perf_counter(), now_utc(), time.time()
        update_run_status(plan.figures_dir, {nb.name: {"status": RUNNING, "started": started}})
        try:
            papermill.execute_notebook(
                str(nb.path),
                str(out),
                parameters={
                    "profile": plan.params.profile,
                    "params_path": str(resolved),
                    "output_dir": str(plan.figures_dir),
                },
                cwd=str(nb.path.parent),
                kernel_name=kernel_name,
                log_output=log_output,
                progress_bar=True,
            )
        except Exception as err:  # the notebook raised (papermill says which cell) or its kernel died
            raise _record_failure(plan, i, err, started, time.perf_counter() - start, out) from err
        except BaseException:  # Ctrl-C: the status says so, the report is not written
            update_run_status(plan.figures_dir, {nb.name: {"status": INTERRUPTED, "started": started}})
            raise
        seconds = time.perf_counter() - start
        log.info("finished %s in %.1f s", nb.path.name, seconds)
        record_timing(plan.figures_dir, nb.name, seconds,
                      run_kind(started_cold, notebook_cache_totals(plan.figures_dir, nb.number, since=start_wall)))
        update_run_status(plan.figures_dir, {nb.name: {"status": OK, "started": started, "seconds": round(seconds, 1)}})
        done.append(out)
    return done


class NotebookFailed(RuntimeError):
    """A notebook of a run failed: which one, at which cell, with which error (``entry``, as in
    ``run_status.json``), and where its partially executed copy is (``executed``)."""

    def __init__(self, notebook: str, entry: dict, executed: Path):
        self.notebook, self.entry, self.executed = notebook, entry, executed
        self.report: Path | None = None  # the run's report, once :func:`run_plan` has written it
        super().__init__(f"{describe_failure(notebook, entry)}; the partially executed notebook is {executed}")


def _record_failure(plan: RunPlan, index: int, err: Exception, started: str, seconds: float, out: Path) -> NotebookFailed:
    """Write the failed notebook's entry (and "not run" for the ones after it) to ``run_status.json``."""
    nb = plan.notebooks[index]
    entry = failure_entry(err, started=started, seconds=seconds, executed=out.name)
    later = {n.name: {"status": NOT_RUN, "reason": f"{nb.name} failed"} for n in plan.notebooks[index + 1:]}
    update_run_status(plan.figures_dir, {nb.name: entry, **later})
    failed = NotebookFailed(nb.name, entry, out)
    log.error("%s", failed)
    return failed


def run_plan(plan: RunPlan, *, kernel_name: str | None = None, log_output: bool = True) -> tuple[list[Path], Path | None]:
    """:func:`execute_plan`, then the run's report (``report.html`` and the rendered notebooks in
    the figures folder), also when a notebook failed: the report then marks that chapter failed
    and :class:`NotebookFailed` is raised once it is written. Returns the executed notebooks and
    the report (``None`` if the report itself failed, which is logged)."""
    try:
        done = execute_plan(plan, kernel_name=kernel_name, log_output=log_output)
    except NotebookFailed as failed:
        failed.report = write_run_report(plan)
        raise
    return done, write_run_report(plan)


def write_run_report(plan: RunPlan) -> Path | None:
    """``report.html`` of the plan's figures folder (:func:`nml.report.html.write_report`); ``None``
    (and an error logged) if it cannot be written — the run's results stand without it."""
    from nml.report.html import write_report

    try:
        return write_report(plan.figures_dir, plan.executed_dir,
                            notebooks_dir=plan.notebooks[0].path.parent if plan.notebooks else None)
    except Exception as err:
        log.error("the report could not be written: %s: %s", type(err).__name__, err)
        return None


def choose_kernel(kernel_name: str | None = None) -> str:
    """The kernel papermill starts: ``kernel_name`` when given; else ``nml`` when it is registered
    (``make setup`` does); else this interpreter's ``python3``, so that ``pip install -e .`` works too."""
    if kernel_name:
        return kernel_name
    from jupyter_client.kernelspec import KernelSpecManager

    if NML_KERNEL in KernelSpecManager().find_kernel_specs():
        return NML_KERNEL
    log.info("no Jupyter kernel named %r (`make setup` registers it); using %r, this Python's own",
             NML_KERNEL, FALLBACK_KERNEL)
    return FALLBACK_KERNEL


RUN_KINDS = ("cold", "warm", "partial")


def caches_empty() -> bool:
    """True when ``NML_HOME`` holds no computed cache entry yet (only fetched assets): a cold run."""
    from nml._infra.paths import checkpoints_dir, features_dir

    return not any(any(p.is_file() for p in d.rglob("*")) for d in (checkpoints_dir(), features_dir()) if d.is_dir())


def notebook_cache_totals(figures_dir: Path, number: str, *, since: float) -> dict[str, int] | None:
    """The cache entries notebook ``number`` reused and computed in its run: the largest
    ``cache_totals`` among the provenance sidecars of its tables written since ``since`` (epoch
    seconds); None when it wrote none."""
    import json

    best = None
    for sidecar in Path(figures_dir).glob(f"{number}_*.provenance.json"):
        if sidecar.stat().st_mtime < since:
            continue
        try:
            totals = json.loads(sidecar.read_text()).get("cache_totals")
        except (OSError, ValueError):
            continue
        if totals and (best is None or sum(totals.values()) > sum(best.values())):
            best = {"reused": int(totals["reused"]), "computed": int(totals["computed"])}
    return best


def run_kind(started_cold: bool, totals: dict[str, int] | None) -> str:
    """``cold`` (the run started from caches with nothing computed), ``warm`` (the notebook computed
    no cache entry) or ``partial``."""
    if started_cold:
        return "cold"
    if totals is not None and totals["computed"] == 0:
        return "warm"
    return "partial"


def record_timing(figures_dir: Path, notebook: str, seconds: float, kind: str = "partial") -> Path:
    """Put ``notebook``'s wall time into ``figures_dir/run_timings.csv``: one row per notebook and
    kind of run (:func:`run_kind`; a new run replaces the row of its kind), which the README's
    timings block is generated from (the cold and the warm time of each notebook)."""
    import datetime

    import pandas as pd

    if kind not in RUN_KINDS:
        raise ValueError(f"kind must be one of {RUN_KINDS}, got {kind!r}")
    path = Path(figures_dir) / "run_timings.csv"
    columns = ["notebook", "run", "seconds", "finished"]
    table = pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=columns)
    if "run" not in table:  # a file of the single-row-per-notebook format: those were cold runs
        table["run"] = "cold"
    finished = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    row = pd.DataFrame([{"notebook": notebook, "run": kind, "seconds": round(seconds, 1), "finished": finished}])
    keep = table[(table["notebook"] != notebook) | (table["run"] != kind)]
    table = pd.concat([keep[columns], row], ignore_index=True).sort_values(["notebook", "run"])
    return atomic_write_text(path, table.to_csv(index=False))


def describe_grid(params: Params, number: str) -> list[str]:
    """Notebook ``number``'s grid in words, from its chapter's ``dryrun.describe``."""
    package = CHAPTERS.get(number)
    if package is None:
        return ["(this notebook describes its own grid)"]
    return importlib.import_module(f"nml.chapters.{package}.dryrun").describe(params)


def notebook_cost(params: Params, number: str) -> NotebookCost | None:
    """Notebook ``number``'s workloads, from its chapter's ``dryrun.cost`` (``None``: it has none)."""
    package = CHAPTERS.get(number)
    cost = getattr(importlib.import_module(f"nml.chapters.{package}.dryrun"), "cost", None) if package else None
    return cost(params) if cost is not None else None


def describe_cost(params: Params, number: str, rates=None) -> list[str]:
    """Notebook ``number``'s estimated device-hours at the measured ``rates`` (``nml bench throughput``),
    over the devices the runtime uses, beside the hours its paper reports."""
    try:
        cost = notebook_cost(params, number)
    except Exception as err:  # the estimate is a courtesy: it never stops a dry-run
        log.warning("notebook %s: no cost estimate: %s: %s", number, type(err).__name__, err)
        return [f"estimated cost: not available ({type(err).__name__}: {err})"]
    if cost is None:
        return []
    runtime = getattr(params, "runtime", None)
    devices = runtime.nproc_per_node * runtime.nnodes if runtime is not None else 1
    return format_cost(cost, rates, devices=devices, device_type=bench_device(params.device).type,
                       bench_command=f"nml bench throughput --profile {params.profile}")


def profile_models(params: Params) -> list[ThroughputModel]:
    """Every image model the profile's notebooks run, at its size, with the roles it plays there:
    what ``nml bench throughput`` measures (and the dry-run's estimate reads): the pre-training model
    at its size, chapter 04's backbones, chapter 03's encoders, then any other model a notebook's
    workloads name."""
    from nml.chapters.ch01_pretraining.dryrun import pretrain_in_chans

    pre = params.pretrain
    checkpoint = Workload("", pre.model, pre.image_size, "train", 0, kind="backbone", in_chans=pretrain_in_chans(params),
                          role="01 pre-training")
    workloads = [checkpoint]
    turn = getattr(params, "turn", None)
    if turn is not None and turn.enabled:
        workloads += [replace(checkpoint, role="04 fine-tuning") if b.name == "checkpoint"
                      else Workload("", b.name, b.image_size, "train", 0, role="04 fine-tuning") for b in turn.backbones]
    r = params.nmtune.real_models
    if r.enabled:
        workloads += [Workload("", name, r.image_size.get(name), "extract", 0, role="03 Table 2 encoder") for name in r.encoders]
    for number in CHAPTERS:
        cost = notebook_cost(params, number)
        workloads += cost.workloads if cost is not None else []
    return throughput_models(workloads)
