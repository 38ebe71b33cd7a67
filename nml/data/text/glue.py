"""The ``paper`` profile's language tasks: the 8 GLUE tasks (ID) and their GLUE-X OOD test sets.

NMTune (Sec. B.3): "For ID evaluation, we use CoLA, SST-2, MRPC, STS-B, QQP, MNLI, QNLI, and RTE
tasks of GLUE. For OOD evaluation, following GLUE-X, we use Grammar Test for CoLA, IMDB for
SST-2, QQP for MRPC, MNLI mismatched, SNLI, SICK for MNLI, Reconstructed NewsQA for QNLI, SciTail
and HANS for RTE." Every loader returns :class:`~nml.data.text.tasks.TextTask`.

Decisions (each is data in :data:`GLUE_TASKS` / :data:`GLUE_X_OOD`, not code):

* **Test split.** GLUE hides its test labels, so a task's test split is GLUE's ``validation``
  (``validation_matched`` for MNLI); ``train`` is GLUE's ``train``.
* **Metrics.** CoLA: MCC; STS-B: Pearson; the rest: accuracy. An OOD set is scored with its ID
  task's metric (Grammar Test: MCC), recorded in ``TextTask.ood_metric``.
* **STS-B as a 5-class task.** The tuners are classifiers, so the 0–5 similarity score is binned
  into 5 classes, ``np.clip(np.floor(score), 0, 4)`` (:func:`stsb_bins`): class ``k`` holds
  scores in ``[k, k+1)``, class 4 holds ``[4, 5]``. The raw score is kept in ``TextSplit.scores``;
  the chapter reports Pearson between the predicted class and the gold score. The paper lists no
  GLUE-X OOD set for STS-B, so its task has ``ood={}``.
* **OOD splits.** As in GLUE-X's evaluation code, an OOD set concatenates the splits listed in
  its :class:`OodSpec` (e.g. IMDB train+test, SNLI train+validation+test), in that order. Labels
  are mapped into the ID task's class names; raw labels listed in ``drop_labels`` (SNLI's ``-1``,
  "no gold label") are dropped, any other unmapped label raises ``ValueError``.
* **Grammar Test and Reconstructed NewsQA** come from the GLUE-X release (Google Drive, no stable
  hub dataset), so they are read from a local file ``<data_root>/glue_x/<name>.<ext>`` with ext
  one of ``tsv`` (tab-separated, no quoting), ``csv``, ``jsonl`` (JSON lines) or ``parquet``.
  Columns: Grammar Test ``sentence``, ``label`` (0/1 or ``unacceptable``/``acceptable``);
  NewsQA ``question``, ``sentence``, ``label`` (``entailment``/``not_entailment`` as in the
  GLUE-X release, or 0/1). A missing file raises ``FileNotFoundError`` naming the expected paths.

Where the data come from, per split: if ``<data_root>/<local_dir>`` exists (``local_dir`` is
``glue/<config>`` for GLUE, e.g. ``glue/cola``), the split is read from the parquet files there in
the Hugging Face hub repo layout, ``<split>-*.parquet`` (``train-00000-of-00001.parquet``; how
``nyu-mll/glue`` stores them) or the parquet-conversion layout ``<split>/*.parquet``, with
``datasets.load_dataset("parquet", data_files=...)``; the folder existing without the split's
files is an error (never a silent download). Without that folder, the split is loaded from the hub
with ``datasets.load_dataset(hub_name, hub_config, split=split)`` (network; ``paper`` profile
only). The hub names below are validated offline (from the hub's dataset cards and the GLUE-X
code), not run here: ``jhu-cogsci/hans`` and ``RobZamp/sick`` were script-based repos, which
recent ``datasets`` releases refuse to run — if their hub load fails, put parquet files in the
local layout instead.

Capping (``max_train``/``max_test``/``max_ood``) keeps a seeded, label-stratified subset: class
quotas proportional to the class counts (largest remainders), indices kept in file order.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nml.data.text.tasks import TextSplit, TextTask

log = logging.getLogger("nml.data.text.glue")

__all__ = [
    "GLUE_TASKS", "GLUE_X_OOD", "GLUE_X_DIR", "LOCAL_SUFFIXES", "GlueTaskSpec", "OodSpec",
    "STSB_CLASSES", "load_glue_task", "load_glue_tasks", "local_ood_paths", "stratified_cap",
    "stsb_bins", "validate_glue_tasks",
]

GLUE_X_DIR = "glue_x"  # under data_root: the GLUE-X release files without a hub dataset
LOCAL_SUFFIXES = (".tsv", ".csv", ".jsonl", ".parquet")  # in the order they are looked for
STSB_CLASSES = ("[0,1)", "[1,2)", "[2,3)", "[3,4)", "[4,5]")


@dataclass(frozen=True)
class GlueTaskSpec:
    """One GLUE task: where it lives, how its rows read, how it is scored, its OOD sets.

    ``text_columns`` is one column (single-text task) or two (a pair, in that order);
    ``classes[k]`` names GLUE's label ``k``; ``test_split`` is the labelled split used as test
    (GLUE's test labels are hidden). ``score_column`` is set for STS-B only: the label column then
    holds a 0–5 score, binned by :func:`stsb_bins`. ``ood`` names entries of :data:`GLUE_X_OOD`.
    """

    name: str
    text_columns: tuple[str, ...]
    classes: tuple[str, ...]
    metric: str
    ood: tuple[str, ...] = ()
    hub_name: str = "nyu-mll/glue"
    train_split: str = "train"
    test_split: str = "validation"
    label_column: str = "label"
    score_column: str | None = None

    @property
    def hub_config(self) -> str:
        return self.name

    @property
    def local_dir(self) -> str:
        """Folder under ``data_root`` holding the hub repo's parquet files: ``glue/<config>``."""
        return f"{self.hub_name.split('/')[-1]}/{self.hub_config}"


@dataclass(frozen=True)
class OodSpec:
    """One GLUE-X OOD test set of ID task ``task``, labelled in that task's class names.

    ``label_map`` maps a raw label (as stored: an int or a string) to a class name of the ID task;
    raw labels in ``drop_labels`` are dropped. A hub set (``hub_name`` set) concatenates
    ``splits`` of ``hub_name``/``hub_config``, read locally from ``<data_root>/<local_dir>`` when
    that folder exists. A local set (``hub_name=None``) is the file
    ``<data_root>/glue_x/<name>.<ext>`` (see :func:`local_ood_paths`).
    """

    name: str
    task: str
    text_columns: tuple[str, ...]
    label_map: Mapping[int | str, str]
    metric: str
    hub_name: str | None = None
    hub_config: str | None = None
    splits: tuple[str, ...] = ()
    local_dir: str | None = None
    drop_labels: tuple[int | str, ...] = ()
    label_column: str = "label"
    note: str = ""


_NLI3 = ("entailment", "neutral", "contradiction")
_NLI2 = ("entailment", "not_entailment")

GLUE_TASKS: dict[str, GlueTaskSpec] = {
    "cola": GlueTaskSpec("cola", ("sentence",), ("unacceptable", "acceptable"), "mcc", ood=("grammar_test",)),
    "sst2": GlueTaskSpec("sst2", ("sentence",), ("negative", "positive"), "accuracy", ood=("imdb",)),
    "mrpc": GlueTaskSpec("mrpc", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"), "accuracy", ood=("qqp",)),
    "stsb": GlueTaskSpec("stsb", ("sentence1", "sentence2"), STSB_CLASSES, "pearson", score_column="label"),
    "qqp": GlueTaskSpec("qqp", ("question1", "question2"), ("not_duplicate", "duplicate"), "accuracy"),
    "mnli": GlueTaskSpec("mnli", ("premise", "hypothesis"), _NLI3, "accuracy",
                         ood=("mnli_mismatched", "snli", "sick"), test_split="validation_matched"),
    "qnli": GlueTaskSpec("qnli", ("question", "sentence"), _NLI2, "accuracy", ood=("newsqa",)),
    "rte": GlueTaskSpec("rte", ("sentence1", "sentence2"), _NLI2, "accuracy", ood=("scitail", "hans")),
}

GLUE_X_OOD: dict[str, OodSpec] = {
    "grammar_test": OodSpec(
        "grammar_test", "cola", ("sentence",),
        {0: "unacceptable", 1: "acceptable", "unacceptable": "unacceptable", "acceptable": "acceptable"},
        "mcc", note="GLUE-X release (cola_ood); local file only"),
    "imdb": OodSpec(
        "imdb", "sst2", ("text",), {0: "negative", 1: "positive"}, "accuracy",
        hub_name="stanfordnlp/imdb", hub_config="plain_text", splits=("train", "test"),
        local_dir="imdb/plain_text", note="the unlabelled 'unsupervised' split is not used"),
    "qqp": OodSpec(
        "qqp", "mrpc", ("question1", "question2"), {0: "not_equivalent", 1: "equivalent"}, "accuracy",
        hub_name="nyu-mll/glue", hub_config="qqp", splits=("train", "validation"), local_dir="glue/qqp",
        note="duplicate questions read as paraphrases"),
    "mnli_mismatched": OodSpec(
        "mnli_mismatched", "mnli", ("premise", "hypothesis"), dict(enumerate(_NLI3)), "accuracy",
        hub_name="nyu-mll/glue", hub_config="mnli", splits=("validation_mismatched",), local_dir="glue/mnli"),
    "snli": OodSpec(
        "snli", "mnli", ("premise", "hypothesis"), dict(enumerate(_NLI3)), "accuracy",
        hub_name="stanfordnlp/snli", hub_config="plain_text", splits=("train", "validation", "test"),
        local_dir="snli/plain_text", drop_labels=(-1,), note="label -1 (no gold label) dropped"),
    "sick": OodSpec(
        "sick", "mnli", ("sentence_A", "sentence_B"), dict(enumerate(_NLI3)), "accuracy",
        hub_name="RobZamp/sick", hub_config=None, splits=("train", "validation", "test"),
        local_dir="sick/data", note="the 3-way entailment label, not the relatedness score"),
    "newsqa": OodSpec(
        "newsqa", "qnli", ("question", "sentence"),
        {0: "entailment", 1: "not_entailment", "entailment": "entailment", "not_entailment": "not_entailment"},
        "accuracy", note="GLUE-X release (qnli_ood, reconstructed NewsQA); local file only"),
    "scitail": OodSpec(
        "scitail", "rte", ("premise", "hypothesis"), {"entails": "entailment", "neutral": "not_entailment"},
        "accuracy", hub_name="allenai/scitail", hub_config="tsv_format", splits=("train", "validation", "test"),
        local_dir="scitail/tsv_format"),
    "hans": OodSpec(
        "hans", "rte", ("premise", "hypothesis"), {0: "entailment", 1: "not_entailment"}, "accuracy",
        hub_name="jhu-cogsci/hans", hub_config="plain_text", splits=("train", "validation"),
        local_dir="hans/plain_text", note="HANS 'non-entailment' read as RTE's not_entailment"),
}


def validate_glue_tasks(names: str | Iterable[str]) -> list[str]:
    """``names`` as a list (a single string counts as one name), checked against :data:`GLUE_TASKS`.

    Raises ``ValueError`` naming every unknown task and the valid names; loads nothing.
    """
    names = [names] if isinstance(names, str) else list(names)
    unknown = [n for n in names if n not in GLUE_TASKS]
    if unknown:
        raise ValueError(f"unknown GLUE task(s) {unknown}; valid names are {list(GLUE_TASKS)}")
    return names


def stsb_bins(scores: np.ndarray) -> np.ndarray:
    """STS-B's 0–5 similarity scores as 5 classes: ``clip(floor(score), 0, 4)`` (int64)."""
    return np.clip(np.floor(np.asarray(scores, dtype=np.float64)), 0, 4).astype(np.int64)


def stratified_cap(labels: np.ndarray, cap: int | None, seed: int) -> np.ndarray:
    """Sorted indices of at most ``cap`` rows, stratified by label, drawn with ``seed``.

    Class ``c`` gets ``floor(cap * n_c / n)`` rows, the remaining rows going to the classes with
    the largest fractional parts (ties: smaller label first); rows within a class are a seeded
    permutation's prefix. ``cap=None`` or ``cap >= len(labels)`` keeps every row.
    """
    labels = np.asarray(labels)
    n = len(labels)
    if cap is None or cap >= n:
        return np.arange(n)
    if cap < 0:
        raise ValueError(f"cap must be non-negative, got {cap}")
    classes, counts = np.unique(labels, return_counts=True)
    exact = cap * counts / n
    quota = np.floor(exact).astype(np.int64)
    order = np.lexsort((np.arange(len(classes)), -(exact - quota)))
    quota[order[: cap - int(quota.sum())]] += 1
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in zip(classes, quota, strict=True)]
    return np.sort(np.concatenate(keep))


def local_ood_paths(name: str, data_root: str | Path | None) -> list[Path]:
    """Candidate files of a local GLUE-X set: ``<data_root>/glue_x/<name><suffix>`` per suffix."""
    root = Path(data_root) if data_root is not None else Path("<data_root>")
    return [root / GLUE_X_DIR / f"{name}{suffix}" for suffix in LOCAL_SUFFIXES]


def _read_local_file(path: Path, text_columns: tuple[str, ...]) -> pd.DataFrame:
    as_text = {c: str for c in text_columns}
    if path.suffix == ".tsv":
        return pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, dtype=as_text, keep_default_na=False)
    if path.suffix == ".csv":
        return pd.read_csv(path, dtype=as_text, keep_default_na=False)
    if path.suffix == ".jsonl":
        return pd.read_json(path, lines=True, dtype=False)
    return pd.read_parquet(path)


def _split_files(folder: Path, split: str) -> list[str]:
    files = sorted(folder.glob(f"{split}-*.parquet")) or sorted((folder / split).glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"{folder} exists but holds no parquet files for split {split!r} "
                                f"(expected {folder / f'{split}-*.parquet'} or {folder / split / '*.parquet'})")
    return [str(f) for f in files]


def _load_frame(hub_name: str, hub_config: str | None, split: str, local_dir: str,
                data_root: str | Path | None, cache_dir: str | Path | None) -> pd.DataFrame:
    """One split as a DataFrame: from ``<data_root>/<local_dir>`` if that folder exists, else the hub."""
    import datasets

    cache = None if cache_dir is None else str(cache_dir)
    folder = None if data_root is None else Path(data_root) / local_dir
    if folder is not None and folder.is_dir():
        files = _split_files(folder, split)
        log.info("reading %s/%s from %d local parquet file(s) in %s", local_dir, split, len(files), folder)
        ds = datasets.load_dataset("parquet", data_files={split: files}, split=split, cache_dir=cache)
    else:
        log.info("loading %s (%s) split %s from the Hugging Face hub", hub_name, hub_config, split)
        ds = datasets.load_dataset(hub_name, hub_config, split=split, cache_dir=cache)
    return ds.to_pandas()


def _require(df: pd.DataFrame, columns: Iterable[str], where: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{where}: missing columns {missing}; has {list(df.columns)}")


def _texts(df: pd.DataFrame, columns: tuple[str, ...]) -> list[str] | list[tuple[str, str]]:
    cols = [["" if v is None else str(v) for v in df[c].tolist()] for c in columns]
    return cols[0] if len(cols) == 1 else list(zip(*cols, strict=True))


def _raw_label(value: object) -> int | str | float:
    """A stored label as a dict key: integral numbers and digit strings become ``int``."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return int(value) if float(value).is_integer() else float(value)
    text = str(value).strip()
    return int(text) if text.lstrip("-").isdigit() else text


def _mapped_labels(raw: Iterable[object], label_map: Mapping[int | str, str], drop: tuple[int | str, ...],
                   classes: tuple[str, ...], where: str) -> tuple[np.ndarray, np.ndarray]:
    """(kept-row mask, class indices of the kept rows) of raw labels mapped through ``label_map``."""
    index = {c: k for k, c in enumerate(classes)}
    keep, labels, unknown = [], [], set()
    for value in raw:
        key = _raw_label(value)
        if key in drop:
            keep.append(False)
        elif key in label_map:
            keep.append(True)
            labels.append(index[label_map[key]])
        else:
            unknown.add(key)
    if unknown:
        raise ValueError(f"{where}: labels {sorted(map(str, unknown))} are neither mapped nor dropped "
                         f"(mapped: {sorted(map(str, label_map))}, dropped: {list(drop)})")
    return np.asarray(keep, dtype=bool), np.asarray(labels, dtype=np.int64)


def _capped(name: str, texts: list, labels: np.ndarray, scores: np.ndarray | None, cap: int | None,
            seed: int) -> TextSplit:
    idx = stratified_cap(labels, cap, seed)
    return TextSplit(name, [texts[i] for i in idx], labels[idx], scores=None if scores is None else scores[idx])


def _id_split(spec: GlueTaskSpec, split: str, role: str, data_root: str | Path | None, cap: int | None,
              seed: int, cache_dir: str | Path | None) -> TextSplit:
    where = f"{spec.hub_name}/{spec.hub_config}[{split}]"
    df = _load_frame(spec.hub_name, spec.hub_config, split, spec.local_dir, data_root, cache_dir)
    _require(df, [*spec.text_columns, spec.label_column], where)
    texts = _texts(df, spec.text_columns)
    if spec.score_column is not None:
        scores = df[spec.score_column].to_numpy(dtype=np.float64)
        if np.isnan(scores).any() or (scores < 0).any():
            raise ValueError(f"{where}: STS-B scores must be 0–5 (hidden test labels are -1)")
        return _capped(f"{spec.name}/{role}", texts, stsb_bins(scores), scores, cap, seed)
    keep, labels = _mapped_labels(df[spec.label_column], dict(enumerate(spec.classes)), (-1,), spec.classes, where)
    return _capped(f"{spec.name}/{role}", [t for t, k in zip(texts, keep, strict=True) if k], labels, None, cap, seed)


def _ood_frame(ood: OodSpec, data_root: str | Path | None, cache_dir: str | Path | None) -> pd.DataFrame:
    if ood.hub_name is None:
        paths = local_ood_paths(ood.name, data_root)
        found = [p for p in paths if p.is_file()] if data_root is not None else []
        if not found:
            raise FileNotFoundError(f"GLUE-X OOD set {ood.name!r} (for {ood.task}) is read from a local file, "
                                    f"expected one of: {', '.join(map(str, paths))} (from the GLUE-X release)")
        log.info("reading GLUE-X set %s from %s", ood.name, found[0])
        return _read_local_file(found[0], ood.text_columns)
    frames = [_load_frame(ood.hub_name, ood.hub_config, split, ood.local_dir or "", data_root, cache_dir)
              for split in ood.splits]
    return pd.concat(frames, ignore_index=True)


def _ood_split(ood: OodSpec, spec: GlueTaskSpec, data_root: str | Path | None, cap: int | None, seed: int,
               cache_dir: str | Path | None) -> TextSplit:
    where = f"OOD set {ood.name!r}"
    df = _ood_frame(ood, data_root, cache_dir)
    _require(df, [*ood.text_columns, ood.label_column], where)
    keep, labels = _mapped_labels(df[ood.label_column], ood.label_map, ood.drop_labels, spec.classes, where)
    texts = [t for t, k in zip(_texts(df, ood.text_columns), keep, strict=True) if k]
    return _capped(f"{spec.name}/{ood.name}", texts, labels, None, cap, seed)


def load_glue_task(name: str, data_root: str | Path | None, *, max_train: int | None = None,
                   max_test: int | None = None, max_ood: int | None = None, seed: int = 0,
                   ood: Iterable[str] | None = None, cache_dir: str | Path | None = None) -> TextTask:
    """GLUE task ``name`` with its GLUE-X OOD sets, as a :class:`TextTask`.

    ``train`` is GLUE's train split, ``test`` its validation split (``validation_matched`` for
    MNLI); ``ood`` maps each OOD set's name (``GLUE_TASKS[name].ood``, or the subset given by the
    ``ood`` argument, in registry order) to its split, labelled in the task's classes;
    ``ood_metric`` gives each OOD set's metric. Split names are ``<task>/train``, ``<task>/test``
    and ``<task>/<ood set>``. ``max_train``/``max_test``/``max_ood`` cap each split (per OOD set)
    by :func:`stratified_cap` with ``seed``. ``data_root`` holds the local layout (module
    docstring); ``None`` loads everything with a hub source from the hub. ``cache_dir`` is passed
    to ``datasets.load_dataset`` (its default cache when ``None``).

    Raises ``ValueError`` for an unknown task or OOD name, ``FileNotFoundError`` for a missing
    local GLUE-X file or a local folder lacking a split's files.
    """
    spec = GLUE_TASKS[validate_glue_tasks([name])[0]]
    wanted = spec.ood if ood is None else tuple(ood)
    bad = [o for o in wanted if o not in spec.ood]
    if bad:
        raise ValueError(f"task {name!r}: unknown OOD set(s) {bad}; its OOD sets are {list(spec.ood)}")
    train = _id_split(spec, spec.train_split, "train", data_root, max_train, seed, cache_dir)
    test = _id_split(spec, spec.test_split, "test", data_root, max_test, seed, cache_dir)
    ood_specs = [GLUE_X_OOD[o] for o in spec.ood if o in wanted]
    splits = {o.name: _ood_split(o, spec, data_root, max_ood, seed, cache_dir) for o in ood_specs}
    sources = ", ".join(f"{o.name} ({o.hub_name or 'GLUE-X file'})" for o in ood_specs) or "none"
    return TextTask(spec.name, list(spec.classes), spec.metric, train, test, ood=splits,
                    ood_metric={o.name: o.metric for o in ood_specs},
                    description=f"GLUE {spec.name} ({spec.hub_name}); test = {spec.test_split}; OOD: {sources}")


def load_glue_tasks(names: str | Iterable[str], data_root: str | Path | None, **kwargs: Any) -> dict[str, TextTask]:
    """:func:`load_glue_task` for each of ``names`` (all validated first), keyed by name."""
    return {n: load_glue_task(n, data_root, **kwargs) for n in validate_glue_tasks(names)}
