"""Where a saved figure or table came from: the run context of the notebook that saved it and the
cache entries it was computed from.

**The run context** is set once per notebook (``nml.notebook.setup`` calls :func:`set_provenance`
with the notebook's params) and holds

* ``profile`` — the params' profile (``smoke`` results are *not evidence*, see :data:`NOT_EVIDENCE`);
* ``git_commit`` and ``git_dirty`` — ``git rev-parse HEAD`` of the checkout nml runs from, and
  whether tracked files other than the outputs under ``figures/`` differ from it (a run rewrites
  figures, which must not make the next notebook look dirty); ``"unknown"`` outside a checkout;
* ``params_hash`` — :func:`params_hash`, the content hash of the resolved params (the same params
  give the same hash whatever file or overrides they came from);
* ``nml_version``, ``packages`` (torch, timm, transformers, scikit-learn, numpy, pandas) and
  ``machine`` (platform, Python, CPU count, RAM).

Without :func:`set_provenance` (a chapter function called from a script, ``nml select``) a context
with ``profile`` and ``params_hash`` ``None`` is made on the first save.

**Cache keys.** Every on-disk cache records the entries it reads or computes in a process-level
log (:func:`nml._infra.cache.record_cache_use`: ``features/<key>``, ``checkpoints/<track>/<name>``,
``<job folder>/<key>``). Each saved result carries ``cache_keys``: the entries touched *since the
previous save of the same notebook* (or since :func:`set_provenance` for the first save), each
marked ``reused`` or ``computed``. It is what the cells between two saves read or computed, not a
dependency trace: a figure drawn in a later cell from a table already in memory carries no keys
(``[]``), and its inputs' keys are on the result saved right after they were computed. Each
result also carries ``cache_totals``: the distinct entries the notebook touched so far, reused vs
computed, so the last result of a notebook tells which caches the whole notebook reused; and
``save_index``, the number of the save within the notebook. Not recorded: the text-embedding cache
of ``nml.models.text_encoders`` (chapter 05's encoders), which does not call the log yet.

**Where it is stored.** A PNG carries the provenance as PNG text chunks (``nml:provenance``, the
JSON, plus ``nml:profile``, ``nml:git_commit``, ``nml:params_hash`` for a quick look with any PNG
tool); a CSV gets a sidecar ``<name>.csv.provenance.json`` (the CSV itself is untouched, so
``pd.read_csv`` and byte-for-byte comparisons of tables are unaffected). :func:`read_provenance`
reads either. The record has no timestamp: a warm re-run at the same commit rewrites the same
provenance.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

from nml._infra.cache import cache_log_position, cache_uses_since, stable_hash
from nml._infra.paths import project_root

NOT_EVIDENCE = ("smoke",)
"""Profiles whose results only show that the code runs: tiny data, no verdict means anything."""

PACKAGES = ("torch", "timm", "transformers", "scikit-learn", "numpy", "pandas")
"""The packages whose versions every result carries."""

PNG_KEY = "nml:provenance"
SIDECAR_SUFFIX = ".provenance.json"


def params_hash(params: Any) -> str:
    """Content hash of resolved params (a pydantic model or a plain mapping); key order does not matter."""
    data = params.model_dump(mode="json") if hasattr(params, "model_dump") else dict(params)
    return stable_hash(data, length=16)


def run_git(*args: str, timeout: float = 60) -> str | None:
    """``git -C <project root> <args>``'s stdout, or None when git is missing, fails or times out."""
    try:
        done = subprocess.run(["git", "-C", str(project_root()), *args], capture_output=True, text=True,
                              timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def git_state() -> tuple[str, bool | None]:
    """``(commit, dirty)`` of the checkout nml runs from; ``("unknown", None)`` outside one.

    ``dirty``: tracked files differ from the commit, the run's outputs under ``figures/`` aside.
    """
    commit = (run_git("rev-parse", "HEAD", timeout=20) or "").strip()
    if not commit:
        return "unknown", None
    status = run_git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)figures", timeout=20)
    return commit, (bool(status.strip()) if status is not None else None)


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed versions (``importlib.metadata``; nothing is imported); ``"not installed"`` if absent."""
    from importlib import metadata

    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def machine() -> dict[str, Any]:
    """Platform, Python, CPU count and RAM (GiB) of this machine."""
    ram = None
    try:
        ram = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "ram_gib": ram}


@lru_cache(maxsize=1)
def _static_context() -> dict[str, Any]:
    # what does not change within a process; git is asked again for each notebook (set_provenance)
    return {"nml_version": package_versions(("nml",))["nml"], "packages": package_versions(), "machine": machine()}


class _Run:
    """The context of the notebook currently saving results, and where its cache log starts."""

    def __init__(self, context: dict[str, Any]):
        self.context = context
        self.start = self.last = cache_log_position()
        self.saves = 0

    def next_record(self) -> dict[str, Any]:
        now = cache_log_position()
        since = cache_uses_since(self.last)
        total = cache_uses_since(self.start)
        self.last = now
        self.saves += 1
        reused = sum(total.values())
        return {
            **self.context,
            "save_index": self.saves,
            "cache_keys": {k: ("reused" if r else "computed") for k, r in sorted(since.items())},
            "cache_totals": {"reused": reused, "computed": len(total) - reused},
        }


_RUN: _Run | None = None


def set_provenance(params: Any = None, *, profile: str | None = None, notebook: str | None = None) -> dict[str, Any]:
    """Start the provenance of a notebook's results: every figure and table saved from now on
    carries this context (see the module docstring). Returns the context.

    ``params`` are the notebook's resolved params (their ``profile`` and :func:`params_hash`);
    ``profile`` overrides the params' profile; ``notebook`` names the notebook (optional: the
    report finds the cell that saved a result by its name).
    """
    global _RUN
    commit, dirty = git_state()
    context = {
        "profile": profile or getattr(params, "profile", None),
        "params_hash": params_hash(params) if params is not None else None,
        "git_commit": commit,
        "git_dirty": dirty,
        "notebook": notebook,
        **_static_context(),
    }
    _RUN = _Run(context)
    return dict(context)


def next_record() -> dict[str, Any]:
    """The provenance of the result being saved now (advances the notebook's cache-log mark)."""
    global _RUN
    if _RUN is None:
        set_provenance()
    assert _RUN is not None
    return _RUN.next_record()


def png_metadata(record: dict[str, Any]) -> dict[str, str]:
    """PNG text chunks for ``record`` (``fig.savefig(..., metadata=...)``)."""
    return {
        PNG_KEY: json.dumps(record, sort_keys=True, default=str),
        "nml:profile": str(record.get("profile")),
        "nml:git_commit": str(record.get("git_commit")),
        "nml:params_hash": str(record.get("params_hash")),
    }


def sidecar_path(path: str | Path) -> Path:
    """``<name>.csv.provenance.json`` beside ``<name>.csv``."""
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def read_provenance(path: str | Path) -> dict[str, Any] | None:
    """The provenance a saved result carries: PNG text chunks, or the sidecar of any other file;
    ``None`` when it has none (saved before provenance existed) or it cannot be read."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".png":
            from PIL import Image

            with Image.open(path) as img:
                text = getattr(img, "text", None) or img.info
                raw = text.get(PNG_KEY)
        else:
            side = sidecar_path(path)
            raw = side.read_text() if side.is_file() else None
        return json.loads(raw) if raw else None
    except (OSError, ValueError):
        return None


def is_evidence(record: dict[str, Any] | None, profile: str | None = None) -> bool:
    """False for results of a profile in :data:`NOT_EVIDENCE` (from the record, else ``profile``)."""
    name = (record or {}).get("profile") or profile
    return name not in NOT_EVIDENCE
