"""Spectral metrics of feature matrices and classification / correlation metrics.

Spectral metrics (NMTune, Sec. 3)
---------------------------------
For a feature matrix ``F`` (``N×D``, one row per sample) with singular values
``σ_1 >= σ_2 >= ... >= 0`` and normalized spectrum ``p_i = σ_i / Σ_j σ_j``:

* singular value entropy ``SVE = −Σ_i p_i log p_i`` (natural log, ``0 log 0 = 0``): how evenly
  the feature variance spreads over directions; ``0`` for a rank-1 matrix, ``log min(N, D)`` for
  a flat spectrum;
* largest singular value ratio ``LSVR = −log(σ_1 / Σ_i σ_i) = −log p_1``: ``0`` when one direction
  dominates, larger when the top direction carries less of the spectrum.

Both are invariant to scaling ``F`` by a positive constant. :func:`singular_value_entropy` and
:func:`largest_singular_value_ratio` take a feature matrix; :func:`sve` and :func:`lsvr` take
singular values already computed with :func:`singular_values` (compute them once, reuse them).

Classification metrics
----------------------
:func:`accuracy`, :func:`mean_per_class_accuracy`, :func:`macro_f1`, :func:`mcc` and
:func:`pearson` all return Python floats; accuracies and F1 are **fractions in [0, 1]**, not
percentages (multiply by 100 to compare with the papers' tables). :data:`METRICS` maps names to
these functions, :func:`get_metric` looks one up.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.stats import pearsonr
from sklearn.metrics import f1_score, matthews_corrcoef

__all__ = [
    "METRICS",
    "SPECTRUM_VARIANTS",
    "accuracy",
    "get_metric",
    "largest_singular_value_ratio",
    "lsvr",
    "macro_f1",
    "mcc",
    "mean_per_class_accuracy",
    "normalized_spectrum",
    "pearson",
    "singular_value_entropy",
    "singular_values",
    "spectrum_groups",
    "sve",
]


def _to_numpy(x: Any) -> np.ndarray:
    # Duck-typed so that importing this module does not import torch.
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


# --------------------------------------------------------------------------------------------
# spectral metrics


SPECTRUM_VARIANTS: tuple[str, ...] = ("authors", "raw", "centered")
"""How a feature matrix is prepared before its singular values are taken (see :func:`singular_values`)."""


def singular_values(features: Any, *, variant: str = "authors") -> np.ndarray:
    """Singular values of a feature matrix, in descending order.

    Parameters
    ----------
    features : np.ndarray or torch.Tensor, shape (N, D)
        One feature vector per row; non-empty and finite. Computed in float64.
    variant : {"authors", "raw", "centered"}, default "authors"
        What the matrix is before the SVD:

        * ``"authors"`` — the NMTune authors' analysis code (SPEC §3): each row L2-normalised,
          then each row's own mean over its ``D`` entries subtracted (``x_i ← u_i − mean(u_i)``
          with ``u_i = x_i/‖x_i‖``; an all-zero row stays zero), then all singular values (their
          code uses scikit-learn ``TruncatedSVD``; the values are the same). The paper's text
          does not describe this; the code does, so it is the default everywhere.
        * ``"raw"`` — the features as they are (the second-moment spectrum).
        * ``"centered"`` — column means subtracted (the spectrum of the covariance).

    Returns
    -------
    np.ndarray of float64, shape (min(N, D),)
        ``σ_1 >= σ_2 >= ... >= 0``, from ``np.linalg.svd(..., compute_uv=False)``.
    """
    x = _to_numpy(features)
    if x.ndim != 2:
        raise ValueError(f"features must be a 2-D (N, D) array, got shape {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"features must be non-empty, got shape {x.shape}")
    if x.dtype == np.bool_ or not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"features must be numeric, got dtype {x.dtype}")
    if variant not in SPECTRUM_VARIANTS:
        raise ValueError(f"variant must be one of {list(SPECTRUM_VARIANTS)}, got {variant!r}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("features must be finite (no NaN or inf)")
    if variant == "authors":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
        x = x - x.mean(axis=1, keepdims=True)
    elif variant == "centered":
        x = x - x.mean(axis=0, keepdims=True)
    return np.linalg.svd(x, compute_uv=False)


def _check_sigma(sigma: Any) -> np.ndarray:
    s = _to_numpy(sigma)
    if s.ndim != 1:
        raise ValueError(
            f"sigma must be a 1-D array of singular values, got shape {s.shape}; for a feature "
            "matrix use singular_value_entropy / largest_singular_value_ratio"
        )
    if s.size == 0:
        raise ValueError("sigma must be non-empty")
    if s.dtype == np.bool_ or not np.issubdtype(s.dtype, np.number):
        raise ValueError(f"sigma must be numeric, got dtype {s.dtype}")
    s = s.astype(np.float64)
    if not np.all(np.isfinite(s)):
        raise ValueError("sigma must be finite (no NaN or inf)")
    if s.min() < 0:
        raise ValueError(f"sigma must be non-negative, got minimum {s.min()}")
    if s.sum() <= 0:
        raise ValueError(
            "sigma must not be all zero: the spectrum of a zero matrix has no distribution"
        )
    return s


def normalized_spectrum(sigma: Any) -> np.ndarray:
    """Singular values divided by their sum, ``p_i = σ_i / Σ_j σ_j``.

    Parameters
    ----------
    sigma : array-like, shape (K,)
        Non-negative singular values, not all zero.

    Returns
    -------
    np.ndarray of float64, shape (K,)
        Non-negative, sums to 1, same order as ``sigma``.
    """
    s = _check_sigma(sigma)
    return s / s.sum()


def sve(sigma: Any) -> float:
    """Singular value entropy of a spectrum, ``−Σ p_i log p_i`` with ``p = σ / Σσ``.

    Natural logarithm; zero singular values contribute 0. Ranges from 0 (one non-zero singular
    value) to ``log K`` (all ``K`` equal).

    Parameters
    ----------
    sigma : array-like, shape (K,)
        Non-negative singular values (e.g. from :func:`singular_values`), not all zero.

    Returns
    -------
    float
    """
    p = normalized_spectrum(sigma)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def lsvr(sigma: Any) -> float:
    """Largest singular value ratio of a spectrum, ``−log(σ_1 / Σ σ_i)``.

    ``σ_1`` is the largest value (the input need not be sorted). 0 when a single direction
    holds the whole spectrum; ``log K`` for ``K`` equal values.

    Parameters
    ----------
    sigma : array-like, shape (K,)
        Non-negative singular values (e.g. from :func:`singular_values`), not all zero.

    Returns
    -------
    float
    """
    p = normalized_spectrum(sigma)
    # max(0, .) turns the -0.0 of a rank-1 spectrum into 0.0.
    return float(max(0.0, -np.log(p.max())))


def singular_value_entropy(features: Any, *, variant: str = "authors") -> float:
    """SVE of a feature matrix: :func:`sve` of its :func:`singular_values` (same ``variant``).

    Parameters
    ----------
    features : np.ndarray or torch.Tensor, shape (N, D)
        Non-empty, finite, not all zero.
    variant : {"authors", "raw", "centered"}, default "authors"
        How the matrix is prepared; see :func:`singular_values`.

    Returns
    -------
    float
    """
    return sve(singular_values(features, variant=variant))


def largest_singular_value_ratio(features: Any, *, variant: str = "authors") -> float:
    """LSVR of a feature matrix: :func:`lsvr` of its :func:`singular_values` (same ``variant``).

    Parameters
    ----------
    features : np.ndarray or torch.Tensor, shape (N, D)
        Non-empty, finite, not all zero.
    variant : {"authors", "raw", "centered"}, default "authors"
        How the matrix is prepared; see :func:`singular_values`.

    Returns
    -------
    float
    """
    return lsvr(singular_values(features, variant=variant))


def spectrum_groups(sigma: Any, edges: tuple[int, int] = (20, 500)) -> dict[str, np.ndarray]:
    """Split a spectrum by index into a top, middle and rest group.

    Parameters
    ----------
    sigma : array-like, shape (K,)
        Singular values in descending order (or their :func:`normalized_spectrum`); used as
        given, so normalize first if the groups should be comparable across matrices.
    edges : (int, int), default (20, 500)
        ``(a, b)`` with ``0 <= a <= b``: ``top = sigma[:a]``, ``middle = sigma[a:b]``,
        ``rest = sigma[b:]``; groups beyond ``K`` are empty.

    Returns
    -------
    dict[str, np.ndarray]
        Keys ``"top"``, ``"middle"``, ``"rest"`` (in that order), float64 copies.
    """
    s = _to_numpy(sigma)
    if s.ndim != 1:
        raise ValueError(f"sigma must be a 1-D array, got shape {s.shape}")
    s = s.astype(np.float64)
    try:
        a, b = edges
    except (TypeError, ValueError):
        raise ValueError(f"edges must be a pair of integers (a, b), got {edges!r}") from None
    if not all(isinstance(e, (int, np.integer)) and not isinstance(e, bool) for e in (a, b)):
        raise ValueError(f"edges must be a pair of integers (a, b), got {edges!r}")
    if not 0 <= a <= b:
        raise ValueError(f"edges must satisfy 0 <= a <= b, got {edges!r}")
    return {"top": s[:a].copy(), "middle": s[a:b].copy(), "rest": s[b:].copy()}


# --------------------------------------------------------------------------------------------
# classification and correlation metrics


def _check_pair(
    a: Any, b: Any, names: tuple[str, str] = ("y_true", "y_pred")
) -> tuple[np.ndarray, np.ndarray]:
    x, y = _to_numpy(a), _to_numpy(b)
    for name, arr in zip(names, (x, y), strict=True):
        if arr.ndim != 1:
            raise ValueError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if x.size != y.size:
        raise ValueError(
            f"{names[0]} and {names[1]} must have equal lengths, got {x.size} and {y.size}"
        )
    if x.size == 0:
        raise ValueError(f"{names[0]} and {names[1]} must be non-empty")
    return x, y


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Fraction of predictions equal to the true label, in [0, 1].

    Parameters
    ----------
    y_true, y_pred : array-like, shape (N,)
        True and predicted labels, non-empty, equal lengths.

    Returns
    -------
    float
    """
    t, p = _check_pair(y_true, y_pred)
    return float(np.mean(t == p))


def mean_per_class_accuracy(y_true: Any, y_pred: Any) -> float:
    """Mean over the classes present in ``y_true`` of the per-class recall, in [0, 1].

    Each class weighs the same however many samples it has (balanced accuracy), which is the
    headline metric of e.g. Caltech-101, Flowers and Pets. Classes that only occur in
    ``y_pred`` do not enter the mean.

    Parameters
    ----------
    y_true, y_pred : array-like, shape (N,)
        True and predicted labels, non-empty, equal lengths.

    Returns
    -------
    float
    """
    t, p = _check_pair(y_true, y_pred)
    classes, codes = np.unique(t, return_inverse=True)
    codes = codes.reshape(-1)
    correct = np.bincount(codes, weights=(t == p).astype(np.float64), minlength=classes.size)
    return float(np.mean(correct / np.bincount(codes, minlength=classes.size)))


def macro_f1(y_true: Any, y_pred: Any) -> float:
    """Unweighted mean of per-class F1, in [0, 1] (``sklearn.metrics.f1_score(average="macro")``).

    The classes are those in ``y_true`` or ``y_pred``; a class with no true and no predicted
    sample would be 0/0 and counts as 0 (``zero_division=0``, scikit-learn's default value).

    Parameters
    ----------
    y_true, y_pred : array-like, shape (N,)
        True and predicted labels, non-empty, equal lengths.

    Returns
    -------
    float
    """
    t, p = _check_pair(y_true, y_pred)
    return float(f1_score(t, p, average="macro", zero_division=0))


def mcc(y_true: Any, y_pred: Any) -> float:
    """Matthews correlation coefficient, in [-1, 1] (``sklearn.metrics.matthews_corrcoef``).

    Multi-class form (Gorodkin's R_K); 0 when either labelling is constant.

    Parameters
    ----------
    y_true, y_pred : array-like, shape (N,)
        True and predicted labels, non-empty, equal lengths.

    Returns
    -------
    float
    """
    t, p = _check_pair(y_true, y_pred)
    with warnings.catch_warnings():
        # scikit-learn warns when y_true and y_pred hold one single label; MCC is then 0 by
        # definition and the warning (about confusion-matrix shape) does not apply.
        warnings.filterwarnings("ignore", message="A single label was found", category=UserWarning)
        return float(matthews_corrcoef(t, p))


def pearson(x: Any, y: Any) -> float:
    """Pearson correlation coefficient of two samples, in [-1, 1] (``scipy.stats.pearsonr``).

    Parameters
    ----------
    x, y : array-like of float, shape (N,)
        Paired finite observations, equal lengths, N >= 2.

    Returns
    -------
    float
        The correlation; NaN (without a warning) when ``x`` or ``y`` is constant, where it is
        undefined.
    """
    a, b = _check_pair(x, y, names=("x", "y"))
    if a.size < 2:
        raise ValueError(f"x and y need at least 2 observations for a correlation, got {a.size}")
    a, b = a.astype(np.float64), b.astype(np.float64)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("x and y must be finite (no NaN or inf)")
    if np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    return float(pearsonr(a, b).statistic)


METRICS: dict[str, Callable[[Any, Any], float]] = {
    "accuracy": accuracy,
    "mean_per_class_accuracy": mean_per_class_accuracy,
    "macro_f1": macro_f1,
    "mcc": mcc,
    "pearson": pearson,
}
"""Metric name → function of ``(y_true, y_pred)`` (``(x, y)`` for ``pearson``) returning a float."""


def get_metric(name: str) -> Callable[[Any, Any], float]:
    """Look up a metric of :data:`METRICS` by name.

    Parameters
    ----------
    name : str
        One of ``"accuracy"``, ``"mean_per_class_accuracy"``, ``"macro_f1"``, ``"mcc"``,
        ``"pearson"``.

    Returns
    -------
    callable
    """
    try:
        return METRICS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown metric {name!r}; valid names: {list(METRICS)}") from None
