"""Scores of many fits with their test-set resamples, and per-seed effects with a confidence interval.

Every claim compares numbers that carry two kinds of chance:

* the **seed** — pre-training and tuning randomness. Seeds are the replicates we have; the
  claim's statistic is computed per seed and averaged;
* the **test set** — a few hundred to a few thousand test samples stand for a whole domain. The
  test set is the same for every seed, so the spread over seeds does not contain this error.

:class:`Scores` holds one row per scored unit (a fit scored on one test set) with its metric on
the actual test set and under ``B`` bootstrap resamples of that test set
(:func:`resample_counts`). A resample depends only on the test set's id and size, so every
method, checkpoint and seed scored on one test set sees the *same* resamples: differences are
paired over test samples as well as over seeds.

:func:`interval` turns a per-seed statistic (``S`` seeds × ``1 + B`` columns) into an
:class:`Estimate`::

    effect   = mean over seeds of the statistic on the actual test sets
    se²      = s²_seed / S  +  v_test
    interval = effect ± t(1 − α/2, S − 1) · se

with ``s²_seed`` the variance over seeds and ``v_test`` the variance, over the ``B`` test-set
resamples, of the seed-mean statistic. Student's t with ``S − 1`` degrees of freedom keeps the
interval honest for the 3–5 seeds a CPU affords (a percentile bootstrap over 3 seeds would have
only 10 distinct draws and be far too narrow). Statistics that involve no test samples (SVE on
the features, the purity of a selected subset) have ``B = 0`` and ``v_test = 0``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from nml._infra.cache import atomic_write, stable_hash
from nml._infra.paths import features_dir
from nml.report.verdict import CONFIDENCE

N_BOOT = 1000
"""Test-set resamples per test set."""

REPLICATE_METRICS = ("accuracy", "macro_f1", "mean_per_class_accuracy", "mcc", "pearson")


# --------------------------------------------------------------------------------------------
# test-set resamples


@functools.lru_cache(maxsize=64)
def _counts(test_id: str, n: int, n_boot: int) -> np.ndarray:
    key = stable_hash({"test_set": test_id, "n": n, "n_boot": n_boot})
    # drawn once per test set and kept on disk: the draw (a multinomial over n samples, n_boot
    # times) costs more than reading it, and every notebook scores the same test sets
    path = features_dir() / "resamples" / f"{key}-v{RESAMPLES_CODE_VERSION}.npy"
    counts = None
    if path.exists():
        try:
            counts = np.load(path).astype(np.float32)
        except Exception:  # torn or foreign file: draw again
            counts = None
        if counts is not None and counts.shape != (n_boot, n):
            counts = None
    if counts is None:
        rng = np.random.default_rng(int(key, 16))
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float32)
        small = counts.astype(np.uint16 if n < 2**16 else np.uint32)  # counts are integers <= n
        atomic_write(path, lambda fh: np.save(fh, small))
    counts.setflags(write=False)
    return counts


RESAMPLES_CODE_VERSION = 1
"""Bump if :func:`resample_counts` draws other resamples: it invalidates those kept on disk."""


def resample_counts(test_id: str, n: int, n_boot: int = N_BOOT) -> np.ndarray:
    """How often each of the ``n`` samples of a test set is drawn in each of ``n_boot`` resamples.

    A bootstrap resample draws ``n`` samples with replacement; its counts (``n_boot × n``, rows
    sum to ``n``) are seeded by ``(test_id, n, n_boot)`` only, so every caller — every method,
    checkpoint and seed scored on that test set, on any machine — gets the same resamples.
    """
    if n < 1:
        raise ValueError(f"a test set needs at least one sample, got n={n}")
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    return _counts(str(test_id), int(n), int(n_boot))


def _class_counts(y_true: np.ndarray, y_pred: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, ...]:
    """Weighted true positives, false positives and false negatives per class (classes × rows of w)."""
    classes = np.union1d(np.unique(y_true), np.unique(y_pred))
    tp, fp, fn = [], [], []
    for c in classes:
        t, p = y_true == c, y_pred == c
        tp.append(w @ (t & p).astype(np.float32))
        fp.append(w @ (~t & p).astype(np.float32))
        fn.append(w @ (t & ~p).astype(np.float32))
    return np.asarray(tp, np.float64), np.asarray(fp, np.float64), np.asarray(fn, np.float64)


def metric_replicates(metric: str, y_true: np.ndarray, y_pred: np.ndarray, counts: np.ndarray,
                      scores: np.ndarray | None = None) -> np.ndarray:
    """``metric`` on the test set as it is and on each resample: an array of ``1 + B`` values.

    Column 0 equals the plain metric of :mod:`nml.metrics` (accuracy, macro-F1, mean per-class
    accuracy, MCC; Pearson of the prediction with ``scores``, or with ``y_true`` when None). The
    resampled values weight each sample by how often the resample drew it.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D of equal length, got {y_true.shape} and {y_pred.shape}")
    n = len(y_true)
    if counts.shape[1:] != (n,):
        raise ValueError(f"counts must be (B, {n}), got {counts.shape}")
    return _replicates(metric, y_true, y_pred, _weights(counts), scores)


def _weights(counts: np.ndarray) -> np.ndarray:
    """Sample weights of the test set itself (row 0, all ones) and of each resample (rows 1..B)."""
    return np.vstack([np.ones((1, counts.shape[1]), np.float32), counts])


def _replicates(metric: str, y_true: np.ndarray, y_pred: np.ndarray, w: np.ndarray,
                scores: np.ndarray | None = None) -> np.ndarray:
    """:func:`metric_replicates` with the weights of :func:`_weights` given."""
    n = len(y_true)
    if metric == "accuracy":
        return (w @ (y_true == y_pred).astype(np.float32)).astype(np.float64) / n
    if metric in ("macro_f1", "mean_per_class_accuracy", "mcc"):
        tp, fp, fn = _class_counts(y_true, y_pred, w)
        if metric == "macro_f1":
            den = 2 * tp + fp + fn
            present = den > 0
            f1 = np.divide(2 * tp, den, out=np.zeros_like(tp), where=present)
            return f1.sum(0) / np.maximum(present.sum(0), 1)
        if metric == "mean_per_class_accuracy":
            support = tp + fn
            present = support > 0
            recall = np.divide(tp, support, out=np.zeros_like(tp), where=present)
            return recall.sum(0) / np.maximum(present.sum(0), 1)
        # multi-class MCC (Gorodkin) from the weighted confusion counts
        s = w.sum(1).astype(np.float64)
        t_k, p_k = tp + fn, tp + fp
        c = tp.sum(0)
        num = c * s - (t_k * p_k).sum(0)
        den = np.sqrt((s**2 - (p_k**2).sum(0)) * (s**2 - (t_k**2).sum(0)))
        return np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    if metric == "pearson":
        x = y_pred.astype(np.float64)
        y = (y_true if scores is None else np.asarray(scores)).astype(np.float64)
        ws = w.astype(np.float64)
        tot = ws.sum(1, keepdims=True)
        mx, my = (ws @ x)[:, None] / tot, (ws @ y)[:, None] / tot
        cov = (ws * (x - mx) * (y - my)).sum(1)
        vx, vy = (ws * (x - mx) ** 2).sum(1), (ws * (y - my) ** 2).sum(1)
        den = np.sqrt(vx * vy)
        # a constant prediction has no correlation: 0, as the chapters score it
        return np.divide(cov, den, out=np.zeros_like(cov), where=den > 0)
    raise ValueError(f"unknown metric {metric!r}; expected one of {REPLICATE_METRICS}")


# --------------------------------------------------------------------------------------------
# scored units


def _replicates_many(metric: str, y_true: np.ndarray, preds: np.ndarray, w: np.ndarray) -> np.ndarray:
    """:func:`_replicates` of every row of ``preds`` (R × n) on one test set: an R × (1 + B) array.

    One matrix product per class for all rows. The weights are resample counts (integers) and the
    sums stay below 2**24, so every float32 sum is exact whatever its order; a class that a row
    never predicts (nor the truth holds) adds exact zeros. The result equals the row-by-row one
    bit for bit.
    """
    n = len(y_true)
    if metric == "accuracy":
        return (w @ (preds == y_true).astype(np.float32).T).T.astype(np.float64) / n
    classes = np.union1d(np.unique(y_true), np.unique(preds))
    tp, fp, fn = [], [], []
    for c in classes:
        t, pc = y_true == c, preds == c
        tp.append(w @ (t & pc).astype(np.float32).T)
        fp.append(w @ (~t & pc).astype(np.float32).T)
        fn.append(w @ (t & ~pc).astype(np.float32).T)
    tp, fp, fn = (np.asarray(a, np.float64) for a in (tp, fp, fn))  # classes × (1 + B) × R
    if metric == "macro_f1":
        den = 2 * tp + fp + fn
        present = den > 0
        f1 = np.divide(2 * tp, den, out=np.zeros_like(tp), where=present)
        out = f1.sum(0) / np.maximum(present.sum(0), 1)
    elif metric == "mean_per_class_accuracy":
        support = tp + fn
        present = support > 0
        recall = np.divide(tp, support, out=np.zeros_like(tp), where=present)
        out = recall.sum(0) / np.maximum(present.sum(0), 1)
    elif metric == "mcc":
        s = w.sum(1).astype(np.float64)[:, None]
        t_k, p_k = tp + fn, tp + fp
        c = tp.sum(0)
        num = c * s - (t_k * p_k).sum(0)
        den = np.sqrt((s**2 - (p_k**2).sum(0)) * (s**2 - (t_k**2).sum(0)))
        out = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    else:
        raise ValueError(f"unknown metric {metric!r}; expected one of {REPLICATE_METRICS}")
    return out.T


@dataclass
class Scores:
    """One row of ``table`` per scored unit; ``reps[i]`` = its metric on the test set (column 0)
    and on each test-set resample (columns 1..B). ``B = 0`` for values without test samples."""

    table: pd.DataFrame
    reps: np.ndarray
    metric: str = ""

    def __post_init__(self) -> None:
        self.table = self.table.reset_index(drop=True)
        self.reps = np.asarray(self.reps, dtype=np.float64)
        if self.reps.ndim != 2 or len(self.reps) != len(self.table):
            raise ValueError(f"reps must be (units, 1 + B) with one row per table row; got {self.reps.shape} "
                             f"for {len(self.table)} rows")

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_predictions(cls, rows: pd.DataFrame, truth: Mapping[str, np.ndarray], metric: str, *,
                         pred: str = "pred", test_id: str = "test_id", n_boot: int = N_BOOT,
                         gold_scores: Mapping[str, np.ndarray] | None = None) -> Scores:
        """Score every row's predictions (column ``pred``) against ``truth[row[test_id]]``."""
        if rows.empty:
            return cls(rows.drop(columns=[pred], errors="ignore"), np.zeros((0, 1 + n_boot)), metric)
        missing = sorted(set(rows[test_id]) - set(truth))
        if missing:
            raise KeyError(f"no true labels for test sets {missing[:3]}")
        reps = np.empty((len(rows), 1 + n_boot))
        tids, preds = rows[test_id].to_numpy(), rows[pred].to_numpy()
        for tid in dict.fromkeys(tids):  # the weights of one test set's resamples, built once
            y = np.asarray(truth[tid])
            w = _weights(resample_counts(tid, len(y), n_boot))
            at = np.flatnonzero(tids == tid)
            p = [np.asarray(preds[i]) for i in at]
            if any(pi.shape != y.shape or pi.ndim != 1 for pi in p):
                bad = next(pi for pi in p if pi.shape != y.shape or pi.ndim != 1)
                raise ValueError(f"predictions on test set {tid!r} must be 1-D of length {len(y)}, got {bad.shape}")
            if metric != "pearson":
                reps[at] = _replicates_many(metric, y, np.stack(p), w)
                continue
            gold = None if gold_scores is None else gold_scores.get(tid)
            for i, pi in zip(at, p, strict=True):
                reps[i] = _replicates(metric, y, pi, w, gold)
        return cls(rows.drop(columns=[pred]), reps, metric)

    @classmethod
    def from_values(cls, rows: pd.DataFrame, column: str) -> Scores:
        """A value per row with no test-set resamples (B = 0), e.g. SVE or a subset's purity."""
        return cls(rows.drop(columns=[column]), rows[[column]].to_numpy(np.float64), column)

    # ---------------------------------------------------------------- selection and aggregation
    @property
    def value(self) -> np.ndarray:
        """The metric on the actual test sets (column 0)."""
        return self.reps[:, 0]

    def where(self, mask: pd.Series | np.ndarray | None = None, **equal: object) -> Scores:
        """Rows where ``mask`` holds and every ``column == value`` of ``equal``."""
        keep = np.ones(len(self.table), bool) if mask is None else np.asarray(mask, bool)
        for col, val in equal.items():
            keep &= (self.table[col] == val).to_numpy()
        return Scores(self.table[keep], self.reps[keep], self.metric)

    def mean_by(self, keys: Sequence[str]) -> Scores:
        """The mean over rows of each group of ``keys`` (in order of first appearance)."""
        keys = list(keys)
        if not keys:
            return Scores(pd.DataFrame(index=[0]), self.reps.mean(0, keepdims=True), self.metric)
        codes, uniques = pd.MultiIndex.from_frame(self.table[keys]).factorize()
        sums = np.zeros((len(uniques), self.reps.shape[1]))
        np.add.at(sums, codes, self.reps)
        sizes = np.bincount(codes, minlength=len(uniques))[:, None]
        return Scores(pd.DataFrame(list(uniques), columns=keys), sums / sizes, self.metric)

    def keyed(self, keys: Sequence[str]) -> dict[tuple, np.ndarray]:
        """``{key tuple: reps row}`` (keys must be unique)."""
        idx = [tuple(r) for r in self.table[list(keys)].itertuples(index=False)]
        if len(set(idx)) != len(idx):
            raise ValueError(f"keys {list(keys)} do not identify rows uniquely")
        return dict(zip(idx, self.reps, strict=True))


def paired(a: Scores, b: Scores, on: Sequence[str], op: Callable[[np.ndarray, np.ndarray], np.ndarray] = np.subtract) -> Scores:
    """``op(a, b)`` of the rows of ``a`` and ``b`` that share the values of ``on`` (inner join)."""
    ka, kb = a.keyed(on), b.keyed(on)
    common = [k for k in ka if k in kb]
    table = pd.DataFrame(common, columns=list(on))
    width = max(a.reps.shape[1], b.reps.shape[1])
    reps = np.stack([np.broadcast_to(op(ka[k], kb[k]), (width,)) for k in common]) if common else np.zeros((0, width))
    return Scores(table, reps, a.metric)


# --------------------------------------------------------------------------------------------
# per-seed statistics


def slope_by(scores: Scores, x: str, keys: Sequence[str]) -> Scores:
    """Least-squares slope of the metric on column ``x`` within each group of ``keys``."""
    out_rows, out = [], []
    for key, idx in scores.table.groupby(list(keys), sort=False).indices.items():
        xs = scores.table[x].to_numpy(np.float64)[idx]
        if len(np.unique(xs)) < 2:
            continue
        xc = xs - xs.mean()
        ys = scores.reps[idx]
        out.append((xc[:, None] * (ys - ys.mean(0))).sum(0) / (xc**2).sum())
        out_rows.append(key if isinstance(key, tuple) else (key,))
    return Scores(pd.DataFrame(out_rows, columns=list(keys)), np.asarray(out).reshape(len(out), -1)
                  if out else np.zeros((0, scores.reps.shape[1])), f"slope of {scores.metric} on {x}")


def correlation_by(scores: Scores, x: str, keys: Sequence[str], method: str = "pearson") -> Scores:
    """Correlation of the metric with column ``x`` within each group of ``keys`` (``pearson`` or
    ``spearman``; a group where either side is constant gives 0, not NaN)."""
    out_rows, out = [], []
    for key, idx in scores.table.groupby(list(keys), sort=False).indices.items():
        if len(idx) < 3:
            continue
        xs = scores.table[x].to_numpy(np.float64)[idx]
        ys = scores.reps[idx]
        if method == "spearman":
            xs = stats.rankdata(xs)
            ys = np.apply_along_axis(stats.rankdata, 0, ys)
        elif method != "pearson":
            raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}")
        xc, yc = xs - xs.mean(), ys - ys.mean(0)
        den = np.sqrt((xc**2).sum() * (yc**2).sum(0))
        r = np.divide((xc[:, None] * yc).sum(0), den, out=np.zeros(ys.shape[1]), where=den > 0)
        out.append(r)
        out_rows.append(key if isinstance(key, tuple) else (key,))
    return Scores(pd.DataFrame(out_rows, columns=list(keys)), np.asarray(out).reshape(len(out), -1)
                  if out else np.zeros((0, scores.reps.shape[1])), f"{method} r of {scores.metric} with {x}")


# --------------------------------------------------------------------------------------------
# the interval


@dataclass(frozen=True)
class Estimate:
    """A claim-signed effect: mean over seeds, its interval, and what went into it."""

    effect: float
    ci_low: float
    ci_high: float
    n_seeds: int
    se_seed: float
    se_test: float
    per_seed: tuple[float, ...] = field(default=())

    def scaled(self, factor: float) -> Estimate:
        """The same estimate times ``factor`` (> 0), e.g. fractions to percentage points."""
        if not factor > 0:
            raise ValueError("factor must be positive (a negative one would swap the interval)")
        return Estimate(self.effect * factor, self.ci_low * factor, self.ci_high * factor, self.n_seeds,
                        self.se_seed * factor, self.se_test * factor, tuple(v * factor for v in self.per_seed))

    def negated(self) -> Estimate:
        """The effect with the opposite sign (for claims whose paper direction is "falls")."""
        return Estimate(-self.effect, -self.ci_high, -self.ci_low, self.n_seeds, self.se_seed, self.se_test,
                        tuple(-v for v in self.per_seed))


def interval(per_seed: np.ndarray | Scores, confidence: float = CONFIDENCE) -> Estimate:
    """The estimate of a per-seed statistic: ``S × (1 + B)`` values (see the module docstring).

    With a single seed the interval is undefined (NaN bounds); rows with a NaN statistic on the
    actual test set are dropped first.
    """
    reps = per_seed.reps if isinstance(per_seed, Scores) else np.asarray(per_seed, dtype=np.float64)
    if reps.ndim != 2:
        raise ValueError(f"per_seed must be (seeds, 1 + B), got shape {reps.shape}")
    reps = reps[np.isfinite(reps[:, 0])]
    s = len(reps)
    if s == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0, float("nan"), float("nan"))
    values = reps[:, 0]
    effect = float(values.mean())
    se_seed = float(values.std(ddof=1) / math.sqrt(s)) if s > 1 else float("nan")
    boot = reps[:, 1:]
    se_test = float(np.nanstd(boot.mean(0), ddof=1)) if boot.shape[1] > 1 else 0.0
    if s < 2:
        return Estimate(effect, float("nan"), float("nan"), s, se_seed, se_test, tuple(values))
    se = math.sqrt(se_seed**2 + se_test**2)
    half = float(stats.t.ppf(0.5 + confidence / 2, df=s - 1)) * se
    return Estimate(effect, effect - half, effect + half, s, se_seed, se_test, tuple(float(v) for v in values))
