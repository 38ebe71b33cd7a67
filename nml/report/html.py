"""``figures/<profile>/report.html``: one self-contained page of a run, written from its files.

``nml report`` (and ``nml run`` when it ends, failed or not) reads a figures folder — the PNGs
and CSVs the notebooks saved, their provenance (:mod:`nml.report.provenance`), the claims tables,
``run_timings.csv`` and ``run_status.json`` — and the papers' transcribed tables
(:func:`nml.report.reference.paper_table`), and writes one HTML page with every image embedded
(``data:image/png;base64``) and nothing fetched:

* **a header** with the run's provenance: profile, git commit(s), params hash(es), nml and package
  versions (torch, timm, transformers, scikit-learn, numpy, pandas), machine (platform, CPUs, RAM)
  — as the results recorded them, each distinct value once — and per notebook its status in the
  last run, wall time and how many cache entries it reused vs computed;
* **per chapter** (``NN_`` of the file names; ``selection_NN_*`` / ``selection_turn_*`` go with
  their chapter): the status (a failed notebook shows the cell, the error and a link to the
  partially executed notebook; results older than the failed run are marked stale), the claims
  with their verdicts, every paper table in scope — ours beside the paper's (:data:`PAPER_TABLES`)
  —, every figure, and the chapter's other tables folded; under each result its provenance line:
  profile, commit, params hash, the cache entries it was computed from, the notebook cell that
  saved it and the ``nml`` function that made it (:func:`nml.report.cells.find_producer`);
* results of the ``smoke`` profile carry a *not evidence* label, and the page a banner.

The papers' figures are not stored (only their tables were transcribed), so a figure of ours
stands alone; the paper tables that no output of this run corresponds to are listed at the end.

The executed notebooks (``runs/<profile>/NN_*.ipynb``, or the run's output folder) are rendered
with nbconvert (images embedded) to ``figures/<profile>/notebooks/NN_name.html`` and linked, so a
reader without a kernel sees every output; when there are none, the report links the notebooks
rendered before, or says they are missing.

Nothing here runs a chapter: the report is a pure function of the folder's files (plus the
notebooks, for the cell of each result), so it can be regenerated at any time.
"""

from __future__ import annotations

import base64
import datetime
import html
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from nml._infra.cache import atomic_write_text
from nml._infra.paths import project_root
from nml.report.cells import Producer, find_producer
from nml.report.display import effect_cell
from nml.report.provenance import (
    NOT_EVIDENCE,
    git_state,
    machine,
    package_versions,
    read_provenance,
)
from nml.report.readme import CLAIMS_TABLES, TIMINGS
from nml.report.reference import paper_table
from nml.report.status import (
    FAILED,
    INTERRUPTED,
    NOT_RUN,
    OK,
    RUNNING,
    describe_failure,
    read_run_status,
)
from nml.report.verdict import COLUMNS, VERDICTS

log = logging.getLogger("nml.report.html")

REPORT = "report.html"
NOTEBOOKS_DIR = "notebooks"
MAX_ROWS = 60
"""Longer tables show their first rows and say how many more the CSV has."""

_NN = re.compile(r"^(\d{2})_")
_SELECTION = re.compile(r"^selection_(\d{2}|turn)_")
_SELECTION_CHAPTER = {"turn": "04"}


def _pivot(index: list[str], columns: list[str] | str, values: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda d: d.pivot_table(index=index, columns=columns, values=values, aggfunc="first", sort=False)


def _turn_table2(d: pd.DataFrame) -> pd.DataFrame:
    d = d.assign(v=d["best"].astype(str) + " / " + d["last"].astype(str),
                 noise=d["noise_type"] + " " + d["noise_ratio"].astype(str))
    return d.pivot_table(index=["architecture", "tuning", "method"], columns="noise", values="v", aggfunc="first")


PAPER_TABLES: dict[str, tuple[tuple[str, str, Callable[[pd.DataFrame], pd.DataFrame] | None], ...]] = {
    "01_table3_pretrain_accuracy": (("nmtune_table3_pretrain", "NMTune Table 3 (ResNet-50; ImageNet-1K val / YFCC15M zero-shot accuracy %)",
                                     _pivot(["pretrain_method", "pretrain_data", "model", "metric"], "noise_ratio_pct", "value")),),
    "03_table2_real_models": (("nmtune_table2_vision", "NMTune Table 2, vision (14 ID datasets, DomainNet OOD; F1 on a 0–1 scale)",
                               _pivot(["model", "pretrain_data", "method"], ["split", "metric"], "value")),),
    "03_tables15_16_ablation": (
        ("nmtune_table15_mlp_ablation", "NMTune Table 15 (ResNet-50, ID accuracy %)",
         _pivot(["mlp_layers", "activation"], ["pretrain_data", "pretrain_noise_ratio_pct"], "id_acc")),
        ("nmtune_table16_loss_ablation", "NMTune Table 16 (weights: consistency / covariance / dominant SV)",
         _pivot(["w_consistency_mse", "w_covariance", "w_dominant_sv"], ["pretrain_data", "pretrain_noise_ratio_pct"], "id_acc")),
    ),
    "03_table14_runtime": (("nmtune_table14_runtime", "NMTune Table 14 (GPU hours)",
                            _pivot(["modality", "split"], "method", "gpu_hours")),),
    "04_table1_cost": (("turn_table1_cost", "TURN Table 1 (minutes, from scratch, CIFAR-100 symmetric 0.6)", None),),
    "04_table2_best_last": (("turn_table2_cifar100", "TURN Table 2 (CIFAR-100; best / last test accuracy %)", _turn_table2),),
    "04_table4_components": (("turn_table4_components", "TURN Table 4 (CIFAR-100, symmetric 0.9)", None),),
    "04_table9_purity": (("turn_table9_cleansing", "TURN Table 9 (CIFAR-100)", None),),
    "05_table2_language": (("nmtune_table2_language", "NMTune Table 2, language (GLUE ID / GLUE-X OOD average)",
                            _pivot(["model", "method"], ["split", "benchmark"], "value")),),
    "05_table12_13_per_task": (
        ("nmtune_table12_glue", "NMTune Table 12 (GLUE, ID)", _pivot(["model", "method"], "task", "value")),
        ("nmtune_table13_gluex", "NMTune Table 13 (GLUE-X, OOD)", _pivot(["model", "method"], "task", "value")),
    ),
}
"""Our table (file stem) -> the paper tables it reproduces: (reference name, caption, view). The
view pivots the transcription (one number a row) as the notebooks display it; ``None`` shows it as is."""

UNMATCHED_PAPER_TABLES = {
    "turn_table3_real": "real-world noisy datasets (Clothing1M, WebVision, …): no offline stand-in in this project",
    "turn_table8_hparams": "the paper's hyperparameters; ours are chosen on validation data (`nml select`, the selection_* tables)",
}


@dataclass
class Result:
    """One saved figure or table of the folder."""

    path: Path
    kind: str  # "figure" | "table"
    chapter: str | None
    provenance: dict[str, Any] | None
    mtime: float
    producer: Producer | None = None
    notebook: str | None = None  # the rendered notebook's file name, for links

    @property
    def name(self) -> str:
        return self.path.stem


@dataclass
class Chapter:
    number: str
    title: str
    notebook: str | None = None  # NN_name
    status: dict[str, Any] = field(default_factory=dict)
    seconds: float | None = None
    finished: str | None = None
    rendered: Path | None = None
    results: list[Result] = field(default_factory=list)


def chapter_of(name: str) -> str | None:
    """``"02"`` for ``02_results.csv`` or ``selection_02_probe.csv``; ``"04"`` for ``selection_turn_*``."""
    m = _NN.match(name)
    if m:
        return m.group(1)
    m = _SELECTION.match(name)
    return _SELECTION_CHAPTER.get(m.group(1), m.group(1)) if m else None


def _notebooks_in(folder: Path | None) -> dict[str, Path]:
    if folder is None or not Path(folder).is_dir():
        return {}
    return {p.name[:2]: p for p in sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))}


def _read_nb(path: Path) -> Any | None:
    import nbformat

    try:
        return nbformat.read(path, as_version=4)
    except Exception as err:  # an unreadable notebook costs the cell links, not the report
        log.warning("cannot read %s (%s)", path, err)
        return None


def _title(nb: Any | None, fallback: str) -> str:
    for cell in (nb.cells if nb is not None else []):
        if cell.get("cell_type") == "markdown":
            for line in "".join(cell.get("source", "")).splitlines():
                if line.startswith("# "):
                    return re.sub(r"^\d{2}\s*[—–:-]\s*", "", line[2:].strip())
    return fallback


def render_notebooks(executed_dir: str | Path | None, figures_dir: str | Path) -> dict[str, Path]:
    """Render every executed ``NN_*.ipynb`` of ``executed_dir`` to ``figures_dir/notebooks/NN_name.html``
    (nbconvert's HTML exporter, images embedded). Returns number -> rendered file."""
    notebooks = _notebooks_in(Path(executed_dir) if executed_dir else None)
    if not notebooks:
        return {}
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(embed_images=True)
    out = Path(figures_dir) / NOTEBOOKS_DIR
    rendered = {}
    quiet = exporter.log.level  # nbconvert warns about every image without alt text
    exporter.log.setLevel(logging.ERROR)
    try:
        for number, path in notebooks.items():
            nb = _read_nb(path)
            if nb is None:
                continue
            body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": path.stem}})
            rendered[number] = atomic_write_text(out / f"{path.stem}.html", body)
            log.info("rendered %s", rendered[number])
    finally:
        exporter.log.setLevel(quiet)
    return rendered


# ---- formatting -------------------------------------------------------------------------------
def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        if not math.isfinite(x):
            return ""
        return f"{x:.4g}" if abs(x) < 1e6 else f"{x:.3e}"
    return str(x)


def _table_html(df: pd.DataFrame, *, max_rows: int = MAX_ROWS, index: bool = False) -> str:
    more = len(df) - max_rows
    shown = df.head(max_rows) if more > 0 else df
    text = shown.to_html(index=index, border=0, classes="data", na_rep="", float_format=_fmt, escape=True)
    if more > 0:
        text += f'<p class="note">… {more} more rows in the CSV.</p>'
    return f'<div class="scroll">{text}</div>'


def _short_commit(record: dict[str, Any]) -> str:
    commit = str(record.get("git_commit") or "unknown")
    short = commit[:10] if commit != "unknown" else commit
    return short + (" (uncommitted changes)" if record.get("git_dirty") else "")


def _not_evidence(record: dict[str, Any] | None, profile: str | None) -> bool:
    name = (record or {}).get("profile") or profile
    return name in NOT_EVIDENCE


def _stale(result: Result, chapter: Chapter) -> str | None:
    """Why a result may not belong to the last run of its notebook, if it may not."""
    started = chapter.status.get("started")
    if not started or result.name.startswith("selection_"):  # `nml select` writes those, not the notebook
        return None
    try:
        t0 = datetime.datetime.fromisoformat(started).timestamp()
    except ValueError:
        return None
    if result.mtime >= t0 - 1:
        return "written by the failed run before it stopped" if chapter.status.get("status") == FAILED else None
    return "stale: saved by an earlier run, not rewritten by the last run of this notebook"


def _provenance_html(result: Result, chapter: Chapter, profile: str | None) -> str:
    parts = []
    rec = result.provenance
    if _not_evidence(rec, profile):
        parts.append('<span class="notevidence">smoke profile: not evidence</span>')
    stale = _stale(result, chapter)
    if stale:
        parts.append(f'<span class="stale">{_e(stale)}</span>')
    if rec is None:
        parts.append("no provenance recorded (saved before nml recorded it)")
    else:
        keys = rec.get("cache_keys") or {}
        n_reused = sum(1 for v in keys.values() if v == "reused")
        parts.append(f"profile <b>{_e(rec.get('profile'))}</b> · commit <code>{_e(_short_commit(rec))}</code>"
                     f" · params <code>{_e(rec.get('params_hash'))}</code>")
        if keys:
            items = "".join(f"<li><code>{_e(k)}</code> {_e(v)}</li>" for k, v in keys.items())
            parts.append(f"<details><summary>computed from {len(keys)} cache entries ({n_reused} reused, "
                         f"{len(keys) - n_reused} computed) since the notebook's previous save</summary>"
                         f"<ul class='keys'>{items}</ul></details>")
        else:
            parts.append("no cache entry touched since the notebook's previous save (made from data in memory)")
        if rec.get("sha256") and result.kind == "table":
            import hashlib

            if hashlib.sha256(result.path.read_bytes()).hexdigest() != rec["sha256"]:
                parts.append('<span class="stale">the CSV was changed after it was saved: its provenance does not vouch for it</span>')
    nb = chapter.notebook or f"notebook {chapter.number}"
    if result.producer is not None:
        cell = f"notebook {chapter.number}, cell {result.producer.cell_label()}"
        if result.notebook and result.producer.cell_id:
            cell = f'<a href="{NOTEBOOKS_DIR}/{_e(result.notebook)}#cell-id={_e(result.producer.cell_id)}">{_e(cell)}</a>'
        else:
            cell = _e(cell)
        fn = f", <code>{_e(result.producer.function)}</code>" if result.producer.function else ""
        parts.append(f"made by {cell}{fn}")
    elif result.name.startswith("selection_"):
        parts.append("made by <code>nml select</code> (<code>nml.selection</code>)")
    elif chapter.notebook:
        parts.append(f"no cell of {_e(nb)} saves this name")
    return '<div class="prov">' + " · ".join(parts) + "</div>"


# ---- collecting -------------------------------------------------------------------------------
def collect(figures_dir: Path, executed_dir: Path | None, notebooks_dir: Path | None,
            rendered: dict[str, Path]) -> tuple[dict[str, Chapter], list[Result]]:
    """The folder's chapters (with their status, timings, results) and the results of no chapter."""
    status = read_run_status(figures_dir)
    executed = _notebooks_in(executed_dir)
    sources = _notebooks_in(notebooks_dir)
    timings = pd.read_csv(figures_dir / TIMINGS) if (figures_dir / TIMINGS).is_file() else pd.DataFrame()
    files = sorted(p for p in figures_dir.iterdir() if p.is_file() and p.suffix.lower() in (".png", ".csv")
                   and p.name != TIMINGS)
    numbers = {chapter_of(p.name) for p in files} | set(executed) | set(sources) | {
        n[:2] for n in status["notebooks"] if _NN.match(n)}
    numbers.discard(None)
    chapters: dict[str, Chapter] = {}
    cells: dict[str, Any] = {}
    for number in sorted(numbers):
        path = executed.get(number) or sources.get(number)
        nb = _read_nb(path) if path else None
        cells[number] = nb.cells if nb is not None else None
        name = path.stem if path else next((n for n in status["notebooks"] if n.startswith(f"{number}_")), None)
        ch = Chapter(number, _title(nb, name or f"Chapter {number}"), notebook=name)
        ch.status = status["notebooks"].get(name, {}) if name else {}
        if not timings.empty and name in set(timings["notebook"]):
            row = timings[timings["notebook"] == name].iloc[-1]
            ch.seconds, ch.finished = float(row["seconds"]), str(row["finished"])
        ch.rendered = rendered.get(number)
        chapters[number] = ch
    loose = []
    for p in files:
        kind = "figure" if p.suffix.lower() == ".png" else "table"
        number = chapter_of(p.name)
        r = Result(p, kind, number, read_provenance(p), p.stat().st_mtime)
        if number in chapters:
            ch = chapters[number]
            if cells.get(number) is not None and not p.name.startswith("selection_"):
                r.producer = find_producer(cells[number], p.stem, kind)
            r.notebook = ch.rendered.name if ch.rendered else None
            ch.results.append(r)
        else:
            loose.append(r)
    for ch in chapters.values():  # in the notebook's order
        ch.results.sort(key=lambda r: (r.producer.cell_index if r.producer else 10**9, r.name))
    return chapters, loose


def _latest_record(results: list[Result]) -> dict[str, Any] | None:
    with_prov = [r for r in results if r.provenance]
    return max(with_prov, key=lambda r: (r.mtime, r.provenance.get("save_index", 0))).provenance if with_prov else None


# ---- sections ---------------------------------------------------------------------------------
def _header(figures_dir: Path, chapters: dict[str, Chapter], results: list[Result], profile: str | None,
            executed_dir: Path | None, status: dict[str, Any]) -> str:
    records = [r.provenance for r in results if r.provenance]
    out = [f"<h1>nml report — <code>{_e(figures_dir.name)}</code></h1>"]
    if profile in NOT_EVIDENCE:
        out.append('<div class="banner notevidence">Profile <b>smoke</b>: tiny data to check that every notebook '
                   "runs. Not evidence: no number or verdict on this page says anything about the papers.</div>")
    failed = [(n, e) for n, e in status["notebooks"].items() if e.get("status") in (FAILED, INTERRUPTED, RUNNING)]
    for name, entry in failed:
        text = describe_failure(name, entry) if entry.get("status") == FAILED else f"{name}: {entry.get('status')} (the run stopped)"
        out.append(f'<div class="banner failed">{_e(text)}</div>')

    def distinct(values: list[Any]) -> str:
        seen = list(dict.fromkeys(str(v) for v in values))
        return ", ".join(f"<code>{_e(v)}</code>" for v in seen) if seen else "<i>not recorded</i>"

    rows = [("profile", distinct([r.get("profile") for r in records]) if records else _e(profile or "unknown"))]
    if records:
        rows += [("git commit", distinct([_short_commit(r) for r in records])),
                 ("params hash", distinct([r.get("params_hash") for r in records])),
                 ("nml", distinct([r.get("nml_version") for r in records]))]
        packages = {}
        for r in records:
            for k, v in (r.get("packages") or {}).items():
                packages.setdefault(k, []).append(v)
        rows += [(k, distinct(v)) for k, v in packages.items()]
        rows.append(("machine", distinct([_machine_text(r.get("machine") or {}) for r in records])))
        missing = sum(1 for r in results if not r.provenance)
        if missing:
            rows.append(("without provenance", f"{missing} of {len(results)} results (saved before nml recorded it)"))
        where = "Commit, params, versions and machine as the results recorded them, each distinct value once"
    else:
        commit, dirty = git_state()
        rows += [("git commit (now)", f"<code>{_e(_short_commit({'git_commit': commit, 'git_dirty': dirty}))}</code>")]
        rows += [(k, f"<code>{_e(v)}</code>") for k, v in package_versions().items()]
        rows.append(("machine (now)", f"<code>{_e(_machine_text(machine()))}</code>"))
        where = ("<b>no result in this folder carries provenance</b> (saved before nml recorded it): commit, versions "
                 "and machine are those of the environment writing this report, not necessarily the run's")
    out.append(f"<h2>Provenance</h2><p class='note'>{where}.</p><table class='kv'>"
               + "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows) + "</table>")

    head = "<tr><th>notebook</th><th>status (last run)</th><th>wall time</th><th>finished (UTC)</th><th>cache entries reused / computed</th><th>rendered</th></tr>"
    body = []
    total = 0.0
    for ch in chapters.values():
        st = ch.status.get("status", "")
        label = {OK: "ok", FAILED: "FAILED", NOT_RUN: "not run", RUNNING: "running or killed", INTERRUPTED: "interrupted"}.get(st, "no record")
        seconds = ch.seconds if st != FAILED else ch.status.get("seconds")
        total += seconds or 0.0
        rec = _latest_record([r for r in ch.results if not r.name.startswith("selection_")])
        caches = (f"{rec['cache_totals']['reused']} / {rec['cache_totals']['computed']}"
                  if rec and rec.get("cache_totals") else "not recorded")
        link = (f'<a href="{NOTEBOOKS_DIR}/{_e(ch.rendered.name)}">{_e(ch.rendered.name)}</a>' if ch.rendered else "missing")
        body.append(f"<tr class='st-{_e(label.split()[0].lower())}'><td><a href='#ch{ch.number}'>{_e(ch.notebook or ch.number)}</a></td>"
                    f"<td>{_e(label)}</td><td>{_e(_duration(seconds))}</td><td>{_e(ch.finished or '')}</td>"
                    f"<td>{_e(caches)}</td><td>{link}</td></tr>")
    body.append(f"<tr><th>all</th><td></td><th>{_e(_duration(total))}</th><td></td><td></td><td></td></tr>")
    out.append("<h2>Notebooks</h2><table class='data'>" + head + "".join(body) + "</table>")
    out.append("<p class='note'>Wall time from <code>run_timings.csv</code> (a failed notebook: until it failed); "
               "cache entries: the distinct feature, checkpoint and fit-result entries the notebook read from disk "
               "vs computed, as its last saved result recorded them.</p>")
    if not any(ch.rendered for ch in chapters.values()):
        where = executed_dir if executed_dir else "the run's folder"
        out.append(f"<p class='note'>Rendered notebooks missing: no executed notebooks in <code>{_e(where)}</code> "
                   "(<code>nml run</code> writes them; <code>nml report --executed-dir DIR</code> reads them from elsewhere).</p>")
    return "\n".join(out)


def _machine_text(m: dict[str, Any]) -> str:
    if not m:
        return "unknown"
    return f"{m.get('platform')}, Python {m.get('python')}, {m.get('cpus')} CPUs, {m.get('ram_gib')} GiB RAM"


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return ""
    minutes, s = divmod(int(round(seconds)), 60)
    return f"{minutes} min {s:02d} s"


def _status_html(ch: Chapter) -> str:
    st = ch.status.get("status")
    if st == FAILED:
        source = ch.status.get("source") or ""
        link = ""
        if ch.rendered:
            link = (f' — <a href="{NOTEBOOKS_DIR}/{_e(ch.rendered.name)}#papermill-error-cell">the partially executed notebook, '
                    f"at the failing cell</a>")
        kept = ch.status.get("executed")
        kept = f" (kept as <code>{_e(kept)}</code>)" if kept else ""
        return (f'<div class="banner failed"><b>FAILED</b> in the last run: {_e(describe_failure(ch.notebook or ch.number, ch.status))}'
                f"{link}{kept}. Results below marked stale are from an earlier run."
                + (f"<pre>{_e(source)}</pre>" if source else "") + "</div>")
    if st == NOT_RUN:
        return (f'<div class="banner stale">Not run in the last run ({_e(ch.status.get("reason", ""))}); '
                "the results below are from an earlier run.</div>")
    if st in (RUNNING, INTERRUPTED):
        return f'<div class="banner failed">The last run of this notebook did not finish ({_e(st)}).</div>'
    return ""


def _claims_html(path: Path) -> str:
    claims = pd.read_csv(path)
    if not set(COLUMNS) <= set(claims.columns):
        return _table_html(claims)
    counts = claims["verdict"].value_counts()
    summary = ", ".join(f"{int(counts[v])} {v}" for v in VERDICTS if v in counts)
    rows = []
    for r in claims.itertuples(index=False):
        rows.append(f"<tr><td><b>{_e(r.claim)}</b></td><td>{_e(r.statement)}</td><td>{_e(r.scope)}</td>"
                    f"<td class='v-{_e(str(r.verdict).replace(' ', '-'))}'>{_e(r.verdict)}</td>"
                    f"<td class='num'>{_e(effect_cell(r.effect, r.ci_low, r.ci_high, r.unit))}</td>"
                    f"<td class='num'>{_e(int(r.n_seeds))}</td><td class='ev'>{_e(r.evidence)}</td></tr>")
    return (f"<p>{len(claims)} claims: {_e(summary)}.</p><table class='data claims'><tr><th>claim</th><th>statement</th>"
            "<th>scope</th><th>verdict</th><th>effect [95% interval]</th><th>seeds</th><th>evidence</th></tr>"
            + "".join(rows) + "</table>")


def _paper_html(name: str, caption: str, view: Callable[[pd.DataFrame], pd.DataFrame] | None) -> str:
    try:
        table = paper_table(name)
    except KeyError:
        return f"<p class='note'>paper table {_e(name)} is not in nml/report/reference</p>"
    shown, index = table, False
    if view is not None:
        try:
            shown, index = view(table), True
        except (KeyError, ValueError) as err:
            log.warning("paper table %s: view failed (%s); shown as transcribed", name, err)
    return (f"<h4>Paper: {_e(caption)}</h4><p class='note'><code>nml/report/reference/{_e(name)}.csv</code></p>"
            + _table_html(shown, index=index, max_rows=200))


def _chapter_html(ch: Chapter, profile: str | None, used_paper: set[str]) -> str:
    out = [f"<section id='ch{ch.number}'><h2>{_e(ch.number)} — {_e(ch.title)}</h2>"]
    meta = [f"notebook <code>{_e(ch.notebook)}</code>" if ch.notebook else ""]
    if ch.rendered:
        meta.append(f'<a href="{NOTEBOOKS_DIR}/{_e(ch.rendered.name)}">rendered notebook</a>')
    if ch.seconds is not None:
        meta.append(f"wall time {_e(_duration(ch.seconds))}")
    out.append("<p class='note'>" + " · ".join(m for m in meta if m) + "</p>")
    out.append(_status_html(ch))
    by_name = {(r.name, r.kind): r for r in ch.results}
    claim_files = [r for r in ch.results if r.kind == "table" and "_claims" in r.name]
    main_claims = {name for number, _, name in CLAIMS_TABLES if number == ch.number}
    if claim_files:
        out.append("<h3>Claims</h3>")
        for r in sorted(claim_files, key=lambda r: (r.path.name not in main_claims, r.name)):
            out.append(f"<h4><code>{_e(r.path.name)}</code></h4>"
                       + (_claims_html(r.path) if r.path.name in main_claims else _table_html(pd.read_csv(r.path)))
                       + _provenance_html(r, ch, profile))
    tables = [r for r in ch.results if r.kind == "table" and r not in claim_files and _in_scope(r.name)]
    if tables:
        out.append("<h3>Tables</h3>")
    for r in tables:
        ours = _table_html(pd.read_csv(r.path))
        papers = PAPER_TABLES.get(r.name, ())
        used_paper.update(name for name, _, _ in papers)
        paper = "".join(_paper_html(*p) for p in papers)
        out.append(f"<h4><code>{_e(r.path.name)}</code></h4>"
                   + (f"<div class='pair'><div><h4>Ours</h4>{ours}</div><div>{paper}</div></div>" if paper else ours)
                   + _provenance_html(r, ch, profile))
    figures = [r for r in ch.results if r.kind == "figure"]
    if figures:
        out.append("<h3>Figures</h3>")
    for r in figures:
        data = base64.b64encode(r.path.read_bytes()).decode("ascii")
        table = by_name.get((r.name, "table"))
        also = f" <span class='note'>(its numbers: <code>{_e(table.path.name)}</code>)</span>" if table else ""
        out.append(f"<figure><figcaption><code>{_e(r.path.name)}</code>{also}</figcaption>"
                   f"<img alt='{_e(r.name)}' src='data:image/png;base64,{data}'>{_provenance_html(r, ch, profile)}</figure>")
    others = [r for r in ch.results if r.kind == "table" and r not in claim_files and r not in tables]
    if others:
        items = []
        for r in others:
            n = sum(1 for _ in r.path.open()) - 1
            items.append(f"<details><summary><code>{_e(r.path.name)}</code> — {n} rows</summary>"
                         f"{_table_html(pd.read_csv(r.path), max_rows=20)}{_provenance_html(r, ch, profile)}</details>")
        out.append("<h3>Other tables</h3><p class='note'>per-fit rows, data behind the figures, validation "
                   "sweeps (<code>nml select</code>): folded.</p>" + "".join(items))
    if not ch.results:
        out.append("<p class='note'>No figure or table of this chapter in the folder.</p>")
    out.append("</section>")
    return "\n".join(out)


def _in_scope(name: str) -> bool:
    """A paper table or figure's numbers (``NN_tableK…``, ``NN_figK…``), not per-fit rows or points."""
    return (bool(re.match(r"^\d{2}_(table|fig)", name)) and not name.endswith(("_rows", "_points"))) or name in PAPER_TABLES


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1500px;padding:0 1em;color:#222}
code{font-size:.9em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table.data{border-collapse:collapse;font-size:.85em;margin:.5em 0}table.data td,table.data th{border:1px solid #ddd;padding:2px 6px;text-align:right;vertical-align:top}
table.data th{background:#f4f4f4}table.claims td{text-align:left}table.claims td.num{text-align:right;white-space:nowrap}td.ev{font-size:.9em;color:#444}
table.kv th{text-align:left;padding-right:1em;vertical-align:top}
.scroll{overflow-x:auto;max-width:100%}.pair{display:flex;gap:2em;flex-wrap:wrap;align-items:flex-start}.pair>div{overflow-x:auto;max-width:100%}
figure{margin:1.5em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{margin-bottom:.3em}
.prov{font-size:.8em;color:#555;margin:.3em 0 1em}.prov details{display:inline}ul.keys{columns:2;font-size:.95em}
.note{color:#666;font-size:.85em}.banner{padding:.6em 1em;margin:.8em 0;border-radius:4px}
.notevidence{background:#fde2e1;color:#8a1c13;font-weight:600;padding:0 .3em}.banner.notevidence{padding:.6em 1em}
.failed{background:#fde2e1;border:1px solid #e0a19c}.stale{background:#fff3cd;color:#6b5200;padding:0 .3em}.banner.stale{padding:.6em 1em}
.v-holds{background:#d9f2d9}.v-does-not-hold{background:#f8d7d5}.v-inconclusive{background:#f3f3f3}
tr.st-failed td{background:#fde2e1}pre{white-space:pre-wrap;font-size:.85em;background:#fff;padding:.5em}
"""


def build_report(figures_dir: str | Path, executed_dir: str | Path | None = None, *,
                 notebooks_dir: str | Path | None = None, rendered: dict[str, Path] | None = None,
                 profile: str | None = None) -> str:
    """The report page (HTML text) of ``figures_dir``; see the module docstring.

    ``rendered``: number -> rendered notebook (default: those already in ``figures_dir/notebooks``);
    ``notebooks_dir``: the source notebooks (default: the repository's), for titles and cells when
    there is no executed notebook; ``profile``: default the one the results or the run status
    record, else the folder's name.
    """
    figures_dir = Path(figures_dir)
    executed = Path(executed_dir) if executed_dir else None
    sources = Path(notebooks_dir) if notebooks_dir else project_root() / "notebooks"
    if rendered is None:
        rendered = {p.name[:2]: p for p in sorted((figures_dir / NOTEBOOKS_DIR).glob("[0-9][0-9]_*.html"))}
    chapters, loose = collect(figures_dir, executed, sources, rendered)
    results = [r for ch in chapters.values() for r in ch.results] + loose
    status = read_run_status(figures_dir)
    if profile is None:
        recorded = [r.provenance.get("profile") for r in results if r.provenance and r.provenance.get("profile")]
        profile = status.get("profile") or (max(set(recorded), key=recorded.count) if recorded else figures_dir.name)
    used: set[str] = set()
    sections = [_chapter_html(ch, profile, used) for ch in chapters.values()]
    if loose:
        sections.append("<section><h2>Other files</h2>" + "".join(
            f"<details><summary><code>{_e(r.path.name)}</code></summary>{_provenance_html(r, Chapter('', ''), profile)}</details>"
            for r in loose) + "</section>")
    unmatched = sorted(set(UNMATCHED_PAPER_TABLES) | {n for ps in PAPER_TABLES.values() for n, _, _ in ps} - used)
    if unmatched:
        sections.append("<section><h2>Paper tables without a counterpart in this folder</h2><ul>" + "".join(
            f"<li><code>{_e(n)}</code>{(' — ' + _e(UNMATCHED_PAPER_TABLES[n])) if n in UNMATCHED_PAPER_TABLES else ' — its table was not saved in this run'}</li>"
            for n in unmatched) + "</ul></section>")
    commit, dirty = git_state()
    toc = " · ".join(f"<a href='#ch{ch.number}'>{_e(ch.number)} {_e(ch.title)}</a>" for ch in chapters.values())
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>nml report — {_e(figures_dir.name)}</title><style>{CSS}</style></head><body>"
            + _header(figures_dir, chapters, results, profile, executed, status)
            + f"<p>{toc}</p>" + "\n".join(sections)
            + f"<footer class='note'><hr>Written by <code>nml report</code> from <code>{_e(figures_dir)}</code> "
            f"at commit <code>{_e(_short_commit({'git_commit': commit, 'git_dirty': dirty}))}</code>.</footer>"
            "</body></html>")


def write_report(figures_dir: str | Path, executed_dir: str | Path | None = None, *,
                 notebooks_dir: str | Path | None = None, render: bool = True) -> Path:
    """Render the executed notebooks (``render``) and write ``figures_dir/report.html``; returns its path."""
    figures_dir = Path(figures_dir)
    if not figures_dir.is_dir():
        raise FileNotFoundError(f"no figures folder {figures_dir}")
    rendered = render_notebooks(executed_dir, figures_dir) if render else {}
    earlier = {p.name[:2]: p for p in sorted((figures_dir / NOTEBOOKS_DIR).glob("[0-9][0-9]_*.html"))}
    page = build_report(figures_dir, executed_dir, notebooks_dir=notebooks_dir, rendered={**earlier, **rendered})
    path = atomic_write_text(figures_dir / REPORT, page)
    log.info("wrote %s", path)
    return path
