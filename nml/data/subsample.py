"""Seeded, class-stratified subsampling shared by the image and text chapters."""

from __future__ import annotations

import numpy as np


def cap_per_class(labels: np.ndarray, cap: int | None, seed: int, idx: np.ndarray | None = None) -> np.ndarray:
    """Sorted entries of ``idx`` keeping at most ``cap`` of each label, drawn uniformly with ``seed``.

    Parameters
    ----------
    labels : array, shape (N,)
        Labels of every sample; ``labels[i]`` is the label of index ``i``.
    cap : int or None
        Samples kept per label; None keeps ``idx`` whole.
    seed : int
        Seeds the draw: same inputs, same indices.
    idx : array of int, optional
        The candidate indices (default: all of ``0..N-1``).
    """
    labels = np.asarray(labels)
    idx = np.arange(len(labels)) if idx is None else np.asarray(idx)
    if cap is None:
        return idx
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(idx[labels[idx] == c])[:cap] for c in np.unique(labels[idx])]
    return np.sort(np.concatenate(keep)) if keep else idx[:0]
