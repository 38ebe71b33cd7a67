"""What every notebook does first: read its params and know where its outputs go; and how a
notebook shows what it saves and what it reads from the caches.

* :func:`setup` — the params, the output folder, and nml's log lines on stdout, one brief line
  each (JupyterLab styles stderr as an error; ``nml run`` streams the notebook's stdout into its
  log). Routine lines are INFO; per-file cache lines are DEBUG
  (``logging.getLogger("nml").setLevel(logging.DEBUG)`` shows them).
* After every cell that read or wrote a cache entry, one INFO line says what was reused and
  what was computed (:func:`cache_summary`).
* :func:`show_figure` — save a figure and show it, once, in place.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nml._infra.cache import cache_log_position, cache_uses_since
from nml._infra.jobs import configure_executor
from nml._infra.paths import project_root
from nml.config import Params, load_params
from nml.report import figures
from nml.report.figures import set_provenance

log = logging.getLogger("nml.notebook")

HANDLER_NAME = "nml.notebook"
"""The name of the stdout handler :func:`setup` puts on the ``nml`` logger (replaced, never doubled)."""

CACHE_LABELS = {"checkpoints": "checkpoints", "features": "feature sets", "evaluations": "probe results",
                "tuning": "tuner fits", "language": "tuner fits", "turn": "TURN runs", "text": "text embeddings"}
"""How :func:`cache_summary` names the entries of each cache (the first part of a cache key)."""


class BriefFormatter(logging.Formatter):
    """INFO and DEBUG: the message alone. WARNING and above: the level first and the logger after."""

    def __init__(self) -> None:
        super().__init__("%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return f"{record.levelname}: {text} [{record.name}]" if record.levelno >= logging.WARNING else text


def log_to_stdout(level: int = logging.INFO) -> logging.Handler:
    """Send the ``nml`` loggers to stdout, one brief line each (:class:`BriefFormatter`), at ``level``.

    Called again (a re-run setup cell), it replaces its handler instead of adding a second one.
    The ``nml`` logger stops propagating to the root logger, so no line is printed twice."""
    logger = logging.getLogger("nml")
    for old in [h for h in logger.handlers if h.get_name() == HANDLER_NAME]:
        logger.removeHandler(old)
    handler = logging.StreamHandler(sys.stdout)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(BriefFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return handler


def cache_summary(uses: Mapping[str, bool]) -> str:
    """One line for the cache entries a step touched (``{key: reused}``,
    :func:`nml._infra.cache.cache_uses_since`): ``cache: 6 checkpoints, 54 feature sets reused;
    3 feature sets computed``. Empty when nothing was touched."""
    if not uses:
        return ""
    counts: Counter[tuple[str, bool]] = Counter()
    for key, reused in uses.items():
        kind = key.split("/", 1)[0]
        counts[CACHE_LABELS.get(kind, f"{kind} results"), reused] += 1
    labels = list(dict.fromkeys(label for label, _ in counts))

    def part(reused: bool) -> str:
        items = [f"{n} {label if n > 1 else label.removesuffix('s')}" for label in labels if (n := counts[label, reused])]
        return ", ".join(items) if items else "nothing"

    return f"cache: {part(True)} reused; {part(False)} computed"


_cell_hooks: dict[str, Any] = {}


def summarize_cache_per_cell() -> bool:
    """After every cell of this IPython kernel that touched a cache entry, log :func:`cache_summary`
    of what it touched. Idempotent; False outside IPython (nothing to hook)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    for event, hook in _cell_hooks.items():
        try:
            shell.events.unregister(event, hook)
        except ValueError:
            pass
    start = [cache_log_position()]

    def pre_run_cell(info: Any) -> None:
        start[0] = cache_log_position()

    def post_run_cell(result: Any) -> None:
        line = cache_summary(cache_uses_since(start[0]))
        if line:
            log.info(line)

    _cell_hooks.clear()
    _cell_hooks.update(pre_run_cell=pre_run_cell, post_run_cell=post_run_cell)
    for event, hook in _cell_hooks.items():
        shell.events.register(event, hook)
    return True


class SavedFigure:
    """A PNG written by :func:`nml.report.figures.save_figure`: the image in a notebook, its file
    name in a text log (papermill's)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def _repr_png_(self) -> bytes:
        return self.path.read_bytes()

    def __repr__(self) -> str:
        return f"[figure {self.path.name}]"


def show_figure(fig: Any, out: str | Path, name: str) -> None:
    """Save ``fig`` as ``out/name.png`` (:func:`nml.report.figures.save_figure`), show the saved PNG
    here, once, and close ``fig`` (so the inline backend does not show it a second time).

    The same under any matplotlib backend: inline in JupyterLab, Agg under the tests."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    path = figures.save_figure(fig, out, name)
    plt.close(fig)
    display(SavedFigure(path))


def setup(profile: str = "cpu", params_path: str | None = None, output_dir: str | None = None) -> tuple[Params, Path]:
    """Load the params (the runner's resolved file, or a profile) and create the output folder.

    Opened in JupyterLab without papermill, a notebook runs on ``profile`` and writes its
    figures to ``figures/<profile>/``; under ``nml run`` it gets the run's resolved params and
    output folder. nml's log lines go to stdout (:func:`log_to_stdout`), and every cell that
    reads or computes cache entries ends with one line saying which (:func:`summarize_cache_per_cell`).
    The params' ``executor`` section becomes where the notebook's cached fit grids run
    (:func:`nml._infra.jobs.configure_executor`: joblib here, or a Ray cluster).
    """
    log_to_stdout(logging.INFO)
    summarize_cache_per_cell()
    params = load_params(path=params_path) if params_path else load_params(profile)
    configure_executor(params.executor)  # every run_cached of this kernel: joblib, or tasks on Ray
    out = Path(output_dir) if output_dir else project_root() / "figures" / params.profile
    out.mkdir(parents=True, exist_ok=True)
    set_provenance(params)  # every figure and table saved from here on carries the run's provenance
    return params, out
