"""Image–text pair-swap noise (the noisy pairs of contrastive pre-training).

:func:`pair_swap_noise` mismatches a ``ratio`` fraction of image–text pairs by permuting their
texts among themselves, optionally only across groups (classes) so that every mismatch is
semantic; it returns a :class:`PairSwap` record. Same inputs and seed, same output.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nml.noise.labels import _check_ratio, _check_seed, _round_half_up


@dataclass(frozen=True, eq=False)
class PairSwap:
    """Which text each image–text pair receives after pair-swap noise.

    Attributes
    ----------
    text_index : np.ndarray of int64, shape (N,)
        A permutation of ``0..N-1``: pair ``i`` now carries the text of pair ``text_index[i]``.
        Apply it as ``texts[text_index]``.
    is_swapped : np.ndarray of bool, shape (N,)
        ``text_index != arange(N)``: True exactly for the mismatched pairs.
    ratio : float
        The requested fraction of mismatched pairs.
    """

    text_index: np.ndarray
    is_swapped: np.ndarray
    ratio: float

    @property
    def n_swapped(self) -> int:
        """Number of mismatched pairs."""
        return int(self.is_swapped.sum())

    @property
    def realized_ratio(self) -> float:
        """Fraction of mismatched pairs, ``is_swapped.mean()`` (0.0 for no pairs)."""
        return float(self.is_swapped.mean()) if self.is_swapped.size else 0.0


def pair_swap_noise(
    n_pairs: int,
    ratio: float,
    *,
    seed: int,
    groups: Sequence[Any] | np.ndarray | None = None,
) -> PairSwap:
    """Mismatch a ``ratio`` fraction of image–text pairs by permuting their texts.

    Exactly ``k = round(ratio·n_pairs)`` pairs (rounding half up) are chosen and their texts
    are permuted among themselves with no fixed point, so each of them carries another pair's
    text; every other pair keeps its own. ``text_index`` is a permutation of ``0..n_pairs-1``.

    Without ``groups``, the ``k`` pairs are a uniformly random subset, put in random order and
    rotated by one (each receives the text of the next): one ``k``-cycle.

    With ``groups`` (e.g. class labels), every mismatched pair receives the text of a pair from a
    *different* group, so each mismatch is semantic rather than a harmless swap of two captions
    of the same class. Construction: the subset is sorted by group (random order within a
    group) and rotated by ``m``, the size of its largest group; when ``m <= k/2`` no element
    lands in its own group. To guarantee that, pairs are taken in a random order while skipping
    any pair whose group already has ``floor(k/2)`` members in the subset -- identical to a
    uniformly random subset whenever no group fills up.

    Parameters
    ----------
    n_pairs : int
        Number of pairs ``N`` (>= 0).
    ratio : float
        Fraction of pairs to mismatch, in ``[0, 1)``.
    seed : int
        Seed of ``np.random.default_rng``.
    groups : array-like, shape (N,), optional
        Group (e.g. class) of each pair; any hashable, sortable values.

    Returns
    -------
    PairSwap

    Raises
    ------
    ValueError
        If ``k == 1`` (a single pair cannot be mismatched within a permutation; choose a ratio
        giving 0 or at least 2 pairs), or if with ``groups`` no subset of ``k`` pairs can be
        mismatched across groups (some group would need more than half of the subset, e.g.
        all pairs in one group), or for invalid arguments.
    """
    if isinstance(n_pairs, bool) or not isinstance(n_pairs, numbers.Integral) or n_pairs < 0:
        raise ValueError(f"n_pairs must be a non-negative integer, got {n_pairs!r}")
    n_pairs = int(n_pairs)
    ratio = _check_ratio(ratio)
    seed = _check_seed(seed)
    k = _round_half_up(ratio * n_pairs)
    if k == 1:
        raise ValueError(
            f"ratio={ratio} of n_pairs={n_pairs} gives 1 pair to swap, and a single pair cannot "
            "be mismatched by permuting texts; choose a ratio giving 0 or at least 2 pairs"
        )
    group_code = None
    if groups is not None:
        if hasattr(groups, "detach") and hasattr(groups, "cpu"):  # a torch tensor
            groups = groups.detach().cpu().numpy()
        g = np.asarray(groups)
        if g.shape != (n_pairs,):
            raise ValueError(
                f"groups must be a 1-D array of length n_pairs = {n_pairs}, got shape {g.shape}"
            )
        _, group_code = np.unique(g, return_inverse=True)
        group_code = group_code.reshape(-1)
        cap = k // 2
        capacity = int(np.minimum(np.bincount(group_code), cap).sum())
        if k and capacity < k:
            raise ValueError(
                f"cannot mismatch {k} pairs across groups: in any subset of {k} pairs, some group "
                f"would hold more than half of them (at most {capacity} pairs fit with <= {cap} "
                "per group); lower ratio or use more balanced groups"
            )

    rng = np.random.default_rng(seed)
    text_index = np.arange(n_pairs, dtype=np.int64)
    if k:
        order = rng.permutation(n_pairs)
        if group_code is None:
            subset = order[:k]  # already in random order
            shift = 1
        else:
            # Rank of each pair within its group, in the random order; keep ranks < floor(k/2).
            code_in_order = group_code[order]
            by_group = np.argsort(code_in_order, kind="stable")
            sorted_codes = code_in_order[by_group]
            first_of_group = np.searchsorted(sorted_codes, sorted_codes, side="left")
            rank = np.empty(n_pairs, dtype=np.int64)
            rank[by_group] = np.arange(n_pairs) - first_of_group
            subset = order[rank < k // 2][:k]
            # Sort by group; the stable sort keeps the random order within each group.
            subset = subset[np.argsort(group_code[subset], kind="stable")]
            shift = int(np.bincount(group_code[subset]).max())
        text_index[subset] = np.roll(subset, -shift)
    is_swapped = text_index != np.arange(n_pairs)
    return PairSwap(text_index=text_index, is_swapped=is_swapped, ratio=ratio)
