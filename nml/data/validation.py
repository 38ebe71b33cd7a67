"""A validation split carved from a training split: what every choice is made on, never the test set.

A practitioner with a noisy training set has no clean labels to tune on: the validation labels
are taken from the training labels as they are (noisy where those are noisy). Hyper-parameters,
epochs and "best" checkpoints are chosen on this split; test labels are only ever scored.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import GroupShuffleSplit, train_test_split


def validation_split(labels: np.ndarray, fraction: float, seed: int,
                     groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(fit, validation)`` of a seeded split of ``range(len(labels))``.

    Parameters
    ----------
    labels : array, shape (N,)
        Training labels (noisy ones if the training set is noisy): the split is stratified by
        them, so every class keeps its share on both sides.
    fraction : float in (0, 1)
        Share of the samples that go to validation (at least one per class when stratified).
    seed : int
        Same labels, fraction and seed, same split.
    groups : array, shape (N,), optional
        Keep every group (a movie, a speaker) on one side only, as the test split does; the
        split is then by groups (not stratified) with ``fraction`` of the groups held out.

    Returns
    -------
    (fit_idx, val_idx) : sorted int64 arrays, disjoint, together ``0..N-1``.
    """
    labels = np.asarray(labels)
    n = len(labels)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction!r}")
    if n < 2:
        raise ValueError(f"need at least 2 samples to carve a validation split, got {n}")
    idx = np.arange(n)
    if groups is not None:
        groups = np.asarray(groups)
        if len(groups) != n:
            raise ValueError(f"groups must have one entry per label: {len(groups)} groups for {n} labels")
        if len(np.unique(groups)) < 2:
            raise ValueError("a group-disjoint validation split needs at least 2 groups")
        fit, val = next(GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed).split(idx, labels, groups))
        return np.sort(fit).astype(np.int64), np.sort(val).astype(np.int64)
    _, counts = np.unique(labels, return_counts=True)
    if counts.min() < 2:
        raise ValueError(f"a stratified validation split needs at least 2 samples per class; the smallest class has {counts.min()}")
    n_val = max(int(round(fraction * n)), len(counts))
    fit, val = train_test_split(idx, test_size=n_val, stratify=labels, random_state=seed)
    return np.sort(fit).astype(np.int64), np.sort(val).astype(np.int64)
