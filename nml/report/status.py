"""``run_status.json``: how each notebook of the last run(s) into a figures folder ended.

``nml run`` writes it (``nml.runner.execute_plan``) and the report reads it, so a chapter whose
notebook failed is shown as failed — where, and with which error — rather than as its older
outputs. One entry per notebook, keyed by the notebook's name (``02_spectral_analysis``)::

    {"notebooks": {
        "01_pretraining": {"status": "ok", "started": "2026-12-01T10:00:00+00:00", "seconds": 12.3},
        "02_spectral_analysis": {"status": "failed", "started": "...", "seconds": 4.1,
                                 "cell_index": 7, "execution_count": 5, "ename": "ValueError",
                                 "evalue": "...", "source": "the failing cell's code",
                                 "executed": "02_spectral_analysis.ipynb"},
        "03_nmtune": {"status": "not run", "reason": "02_spectral_analysis failed"}},
     "profile": "cpu", "params_hash": "...", "git_commit": "...", "updated": "..."}

``status`` is one of :data:`STATUSES`: ``running`` is what a run killed mid-notebook leaves.
A run updates only the notebooks it plans (``nml run --only 03`` keeps the entries of the others).
``cell_index`` counts the executed notebook's cells from 0 (papermill's injected-parameters cell
included); ``execution_count`` is the ``In [n]`` the rendered notebook shows.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from nml._infra.cache import atomic_write_json

RUN_STATUS = "run_status.json"
OK, FAILED, NOT_RUN, RUNNING, INTERRUPTED = "ok", "failed", "not run", "running", "interrupted"
STATUSES = (OK, FAILED, NOT_RUN, RUNNING, INTERRUPTED)


def now_utc() -> str:
    """The current time, ISO 8601 in UTC to the second."""
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def read_run_status(figures_dir: str | Path) -> dict[str, Any]:
    """The folder's run status; ``{"notebooks": {}}`` when there is none or it cannot be read."""
    path = Path(figures_dir) / RUN_STATUS
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"notebooks": {}}
    data.setdefault("notebooks", {})
    return data


def update_run_status(figures_dir: str | Path, notebooks: dict[str, dict[str, Any]] | None = None,
                      **run: Any) -> dict[str, Any]:
    """Replace the entries of ``notebooks`` (name -> entry) and set run-level fields; write atomically."""
    for entry in (notebooks or {}).values():
        if entry.get("status") not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {entry.get('status')!r}")
    data = read_run_status(figures_dir)
    data["notebooks"].update(notebooks or {})
    data.update(run)
    data["updated"] = now_utc()
    atomic_write_json(Path(figures_dir) / RUN_STATUS, data)
    return data


def failure_entry(err: BaseException, *, started: str, seconds: float, executed: str) -> dict[str, Any]:
    """The ``failed`` entry for ``err``: papermill's ``PapermillExecutionError`` gives the cell and
    the notebook's error; any other exception (a dead kernel, a missing kernel) only its type and text."""
    entry: dict[str, Any] = {"status": FAILED, "started": started, "seconds": round(seconds, 1), "executed": executed}
    if hasattr(err, "cell_index") and hasattr(err, "ename"):
        source = getattr(err, "source", "") or ""
        entry.update({"cell_index": err.cell_index, "execution_count": getattr(err, "exec_count", None),
                      "ename": err.ename, "evalue": str(err.evalue), "source": source})
    else:
        entry.update({"cell_index": None, "execution_count": None, "ename": type(err).__name__,
                      "evalue": str(err), "source": ""})
    return entry


def describe_failure(notebook: str, entry: dict[str, Any]) -> str:
    """One line: which notebook, which cell, the error."""
    where = (f"cell In [{entry['execution_count']}]" if entry.get("execution_count") is not None
             else f"cell #{entry['cell_index']}" if entry.get("cell_index") is not None else "before any cell ran")
    evalue = (entry.get("evalue") or "").strip().splitlines()
    return f"{notebook} failed at {where}: {entry.get('ename')}" + (f": {evalue[-1]}" if evalue else "")
