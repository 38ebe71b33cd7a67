"""Clean-sample selection from per-sample losses, and how well a selection finds noisy labels.

TURN (SPEC §2) fits, for each class ``c``, a two-component 1-D Gaussian mixture to the losses of
the samples labelled ``c`` and keeps those whose posterior of the low-mean component exceeds
``τ``; DivideMix fits one mixture to all losses. Both use scikit-learn's ``GaussianMixture``.
"""

from __future__ import annotations

import logging

import numpy as np
from sklearn.mixture import GaussianMixture

log = logging.getLogger("nml.estimators.noisy_labels.cleansing")


def _low_component_posterior(losses: np.ndarray, seed: int, reg_covar: float, max_iter: int) -> np.ndarray:
    """Posterior of the lower-mean component of a 2-component GMM on min-max normalised losses."""
    span = float(losses.max() - losses.min()) if losses.size else 0.0
    if losses.size < 2 or span <= 0.0:
        # nothing to separate: one value (or one sample) is taken as clean
        return np.ones(losses.size, dtype=np.float64)
    x = ((losses - losses.min()) / span).reshape(-1, 1)
    gmm = GaussianMixture(n_components=2, max_iter=max_iter, tol=1e-3, reg_covar=reg_covar, random_state=seed)
    gmm.fit(x)
    return gmm.predict_proba(x)[:, int(np.argmin(gmm.means_.ravel()))]


def gmm_clean_probability(
    losses: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    seed: int = 0,
    reg_covar: float = 5e-4,
    max_iter: int = 100,
) -> np.ndarray:
    """Probability that each sample's label is clean, from its training loss.

    Parameters
    ----------
    losses : (N,) per-sample losses (e.g. cross-entropy of the current model on the noisy labels).
    labels : (N,) noisy labels. Given: one mixture per class, fitted to that class's losses
        (TURN). ``None``: one mixture for all samples (DivideMix).
    seed : ``random_state`` of every ``GaussianMixture``.
    reg_covar, max_iter : passed to ``GaussianMixture`` (DivideMix uses ``reg_covar=5e-4``). The
        1-D mixture is fitted to convergence (tol 1e-3; DivideMix stops after 10 iterations at
        tol 1e-2), so the selection depends on the losses rather than on the initialisation.

    Returns
    -------
    (N,) float64 posteriors in [0, 1] of the low-loss component. Losses are min-max normalised
    per group first (as DivideMix does), which leaves posteriors unchanged but makes
    ``reg_covar`` scale-free. A group with fewer than 2 samples or identical losses gets 1.0.
    """
    losses = np.asarray(losses, dtype=np.float64).ravel()
    if not np.all(np.isfinite(losses)):
        raise ValueError("losses must be finite")
    if labels is None:
        return _low_component_posterior(losses, seed, reg_covar, max_iter)
    labels = np.asarray(labels).ravel()
    if labels.shape != losses.shape:
        raise ValueError(f"labels shape {labels.shape} does not match losses shape {losses.shape}")
    prob = np.empty_like(losses)
    for c in np.unique(labels):
        members = labels == c
        prob[members] = _low_component_posterior(losses[members], seed, reg_covar, max_iter)
    return prob


def class_balanced_subset(mask: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
                          n_classes: int | None = None) -> np.ndarray:
    """Indices of ``N = min_c |{i : mask_i, labels_i = c}|`` samples drawn uniformly from each class.

    TURN's class-balanced sampling of the cleansed set. The minimum runs over every class that
    has at least one sample in ``labels`` (or over ``range(n_classes)`` when given). When some
    class has no selected sample, ``N`` would be 0 and nothing could be trained on: the minimum
    is then taken over the classes that do have selected samples (a warning is logged), so
    those classes stay balanced and the empty ones contribute nothing.

    Returns sorted int64 indices.
    """
    mask = np.asarray(mask, dtype=bool).ravel()
    labels = np.asarray(labels).ravel()
    if mask.shape != labels.shape:
        raise ValueError(f"mask shape {mask.shape} does not match labels shape {labels.shape}")
    classes = np.arange(n_classes) if n_classes is not None else np.unique(labels)
    members = [np.flatnonzero(mask & (labels == c)) for c in classes]
    counts = np.array([len(m) for m in members])
    if counts.size == 0 or counts.max() == 0:
        return np.zeros(0, dtype=np.int64)
    n = int(counts.min())
    if n == 0:
        empty = [int(c) for c, k in zip(classes, counts, strict=True) if k == 0]
        n = int(counts[counts > 0].min())
        log.warning("no clean sample selected in classes %s: balancing the other classes at %d each", empty, n)
    picked = [rng.choice(m, size=n, replace=False) for m in members if len(m) >= n and n > 0]
    return np.sort(np.concatenate(picked)).astype(np.int64)


def detection_scores(flagged: np.ndarray, is_noisy: np.ndarray) -> dict[str, float]:
    """Precision, recall and F1 of ``flagged`` (predicted noisy) against the true ``is_noisy``.

    precision = |flagged ∧ noisy| / |flagged|, recall = |flagged ∧ noisy| / |noisy|
    (NaN where the denominator is 0).
    """
    flagged = np.asarray(flagged, dtype=bool).ravel()
    is_noisy = np.asarray(is_noisy, dtype=bool).ravel()
    if flagged.shape != is_noisy.shape:
        raise ValueError(f"flagged shape {flagged.shape} does not match is_noisy shape {is_noisy.shape}")
    hits = float((flagged & is_noisy).sum())
    precision = hits / flagged.sum() if flagged.any() else float("nan")
    recall = hits / is_noisy.sum() if is_noisy.any() else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else float("nan")
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1),
            "n_flagged": int(flagged.sum()), "n_noisy": int(is_noisy.sum())}
