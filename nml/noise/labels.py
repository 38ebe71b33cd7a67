"""Synthetic label noise (image–text pair-swap noise is in :mod:`nml.noise.pairs`).

Label noise
-----------
:func:`inject_noise` corrupts an array of clean integer labels with one of four noise kinds and
returns a :class:`NoisyLabels` record (noisy labels, which samples changed, and the realized
clean→noisy transition matrix). Each kind is also a public function of its own:

==============  ==========================================================================
kind            what happens to the labels of clean class ``c`` (``n_c`` samples)
==============  ==========================================================================
``symmetric``   exactly ``round(ratio·n_c)`` of them move to a class drawn uniformly among
                the *other* ``C−1`` classes (NMTune, cleanlab "flip to another class").
``uniform``     exactly ``round(ratio·N)`` samples chosen over *all* classes are re-drawn
                uniformly over all ``C`` classes, so some keep their label (DivideMix /
                ELR "sym" noise).
``asymmetric``  exactly ``round(ratio·n_c)`` of them move to one fixed target class
                (``c → c+1 mod C`` by default, a mapping, or the next class in its
                CIFAR-100 superclass).
``instance``    each one flips with its own rate ``q_i ~ N(ratio, std²)`` truncated to
                ``[0, 1]``, towards classes chosen by a random projection of its features
                (part-/instance-dependent noise, Xia et al. 2020; Cheng et al. 2021).
==============  ==========================================================================

``round`` here always means rounding half up, ``floor(x + 0.5)``, so that e.g. 5 samples at
ratio 0.5 give 3 flips rather than Python's banker's-rounded 2.

Every function takes an explicit ``seed`` and draws from ``np.random.default_rng(seed)`` only:
same inputs and seed, same output.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import truncnorm

__all__ = [
    "CIFAR100_SUPERCLASSES",
    "CIFAR100_SUPERCLASS_NAMES",
    "NOISE_KINDS",
    "NoisyLabels",
    "asymmetric_noise",
    "inject_noise",
    "instance_noise",
    "superclass_mapping",
    "symmetric_noise",
    "transition_matrix",
    "uniform_noise",
]

NOISE_KINDS: tuple[str, ...] = ("symmetric", "uniform", "asymmetric", "instance")
"""Valid values of ``kind`` in :func:`inject_noise`."""

# Keyword arguments each kind accepts beyond (labels, ratio, seed, n_classes), and which of them
# are required; inject_noise validates **kind_args against this table.
_KIND_ARGS: dict[str, frozenset[str]] = {
    "symmetric": frozenset(),
    "uniform": frozenset(),
    "asymmetric": frozenset({"mapping", "superclasses"}),
    "instance": frozenset({"features", "std"}),
}
_KIND_REQUIRED: dict[str, frozenset[str]] = {
    "symmetric": frozenset(),
    "uniform": frozenset(),
    "asymmetric": frozenset(),
    "instance": frozenset({"features"}),
}

CIFAR100_SUPERCLASS_NAMES: tuple[str, ...] = (
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores", "medium_mammals", "non-insect_invertebrates", "people",
    "reptiles", "small_mammals", "trees", "vehicles_1", "vehicles_2",
)  # fmt: skip
"""Names of the 20 CIFAR-100 coarse classes, in coarse-label order (0..19)."""

# fmt: off
CIFAR100_SUPERCLASSES: tuple[tuple[int, ...], ...] = (
    (4, 30, 55, 72, 95),  # aquatic_mammals: beaver, dolphin, otter, seal, whale
    (1, 32, 67, 73, 91),  # fish: aquarium_fish, flatfish, ray, shark, trout
    (54, 62, 70, 82, 92),  # flowers: orchid, poppy, rose, sunflower, tulip
    (9, 10, 16, 28, 61),  # food_containers: bottle, bowl, can, cup, plate
    (0, 51, 53, 57, 83),  # fruit_and_vegetables: apple, mushroom, orange, pear, sweet_pepper
    (22, 39, 40, 86, 87),  # household_electrical_devices: clock, keyboard, lamp, telephone, television
    (5, 20, 25, 84, 94),  # household_furniture: bed, chair, couch, table, wardrobe
    (6, 7, 14, 18, 24),  # insects: bee, beetle, butterfly, caterpillar, cockroach
    (3, 42, 43, 88, 97),  # large_carnivores: bear, leopard, lion, tiger, wolf
    (12, 17, 37, 68, 76),  # large_man-made_outdoor_things: bridge, castle, house, road, skyscraper
    (23, 33, 49, 60, 71),  # large_natural_outdoor_scenes: cloud, forest, mountain, plain, sea
    (15, 19, 21, 31, 38),  # large_omnivores_and_herbivores: camel, cattle, chimpanzee, elephant, kangaroo
    (34, 63, 64, 66, 75),  # medium_mammals: fox, porcupine, possum, raccoon, skunk
    (26, 45, 77, 79, 99),  # non-insect_invertebrates: crab, lobster, snail, spider, worm
    (2, 11, 35, 46, 98),  # people: baby, boy, girl, man, woman
    (27, 29, 44, 78, 93),  # reptiles: crocodile, dinosaur, lizard, snake, turtle
    (36, 50, 65, 74, 80),  # small_mammals: hamster, mouse, rabbit, shrew, squirrel
    (47, 52, 56, 59, 96),  # trees: maple_tree, oak_tree, palm_tree, pine_tree, willow_tree
    (8, 13, 48, 58, 90),  # vehicles_1: bicycle, bus, motorcycle, pickup_truck, train
    (41, 69, 81, 85, 89),  # vehicles_2: lawn_mower, rocket, streetcar, tank, tractor
)
# fmt: on
"""The 20 CIFAR-100 superclasses as tuples of fine-label ids, in coarse-label order.

Fine ids follow the alphabetical order of the CIFAR-100 fine class names (``apple=0,
aquarium_fish=1, ..., worm=99``), as in the dataset's ``fine_label_names`` and torchvision's
``CIFAR100.classes``; within a group the ids are ascending. Passed as ``superclasses=`` to
:func:`asymmetric_noise` it gives the usual CIFAR-100 asymmetric noise: each class flips to the
next class of its superclass, cyclically.
"""


@dataclass(frozen=True, eq=False)
class NoisyLabels:
    """Labels after noise injection.

    Attributes
    ----------
    labels : np.ndarray of int64, shape (N,)
        The noisy labels.
    is_noisy : np.ndarray of bool, shape (N,)
        ``labels != clean_labels``: True exactly where a sample's label changed.
    transition : np.ndarray of float64, shape (C, C)
        Realized transition matrix computed from counts: ``transition[c, k]`` is the fraction of
        samples of clean class ``c`` whose noisy label is ``k``. Rows sum to 1; the row of a class
        absent from the clean labels is the identity row.
    kind : str
        The noise kind, one of :data:`NOISE_KINDS`.
    ratio : float
        The requested noise ratio (see each kind for what it means exactly).
    """

    labels: np.ndarray
    is_noisy: np.ndarray
    transition: np.ndarray
    kind: str
    ratio: float

    @property
    def realized_ratio(self) -> float:
        """Fraction of samples whose label changed, ``is_noisy.mean()`` (0.0 for no samples)."""
        return float(self.is_noisy.mean()) if self.is_noisy.size else 0.0

    @property
    def n_classes(self) -> int:
        """Number of classes ``C``."""
        return int(self.transition.shape[0])


def _round_half_up(x: float) -> int:
    # Python's round() rounds halves to even (round(2.5) == 2); "a ratio of the class" reads
    # more naturally with halves rounded up. The epsilon absorbs float error such as
    # 0.35 * 10 == 3.4999999999999996, which should count as a half.
    return int(math.floor(x + 0.5 + 1e-9))


def _check_ratio(ratio: Any, name: str = "ratio") -> float:
    if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real):
        raise ValueError(f"{name} must be a float in [0, 1), got {ratio!r}")
    value = float(ratio)
    if not (0.0 <= value < 1.0):  # also rejects NaN
        raise ValueError(f"{name} must be a float in [0, 1), got {ratio!r}")
    return value


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _check_labels(labels: Any) -> np.ndarray:
    if hasattr(labels, "detach") and hasattr(labels, "cpu"):  # a torch tensor
        labels = labels.detach().cpu().numpy()
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"labels must be a 1-D array, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError("labels must be non-empty, got 0 labels")
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {arr.dtype}")
    if arr.min() < 0:
        raise ValueError(f"labels must be non-negative, got minimum {int(arr.min())}")
    return arr.astype(np.int64)


def _check_n_classes(n_classes: Any, labels: np.ndarray) -> int:
    needed = int(labels.max()) + 1
    if n_classes is None:
        if needed < 2:
            raise ValueError(
                "n_classes must be >= 2; the labels only contain class 0, so pass n_classes"
            )
        return needed
    if isinstance(n_classes, bool) or not isinstance(n_classes, numbers.Integral):
        raise ValueError(f"n_classes must be an integer, got {n_classes!r}")
    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}")
    if n_classes < needed:
        raise ValueError(f"n_classes must be >= max(labels) + 1 = {needed}, got {n_classes}")
    return int(n_classes)


def _check_common(labels: Any, ratio: Any, seed: Any, n_classes: Any):
    y = _check_labels(labels)
    return y, _check_ratio(ratio), _check_seed(seed), _check_n_classes(n_classes, y)


def transition_matrix(clean: np.ndarray, noisy: np.ndarray, n_classes: int) -> np.ndarray:
    """Realized clean→noisy transition matrix from label counts.

    Parameters
    ----------
    clean, noisy : np.ndarray of int, shape (N,)
        Clean and noisy labels, both in ``[0, n_classes)``.
    n_classes : int
        Number of classes ``C``.

    Returns
    -------
    np.ndarray of float64, shape (C, C)
        ``T[c, k] = #{i : clean_i = c, noisy_i = k} / #{i : clean_i = c}``. Each row sums to 1;
        the row of a class absent from ``clean`` is the identity row (no evidence of flips).
    """
    clean = np.asarray(clean, dtype=np.int64)
    noisy = np.asarray(noisy, dtype=np.int64)
    if clean.shape != noisy.shape or clean.ndim != 1:
        raise ValueError(
            f"clean and noisy must be 1-D arrays of equal length, got shapes {clean.shape} and {noisy.shape}"
        )
    counts = np.zeros((n_classes, n_classes), dtype=np.float64)
    np.add.at(counts, (clean, noisy), 1.0)
    totals = counts.sum(axis=1)
    absent = totals == 0
    counts[absent, absent] = 1.0  # diagonal entries of empty rows
    return counts / counts.sum(axis=1, keepdims=True)


def _result(
    clean: np.ndarray, noisy: np.ndarray, n_classes: int, kind: str, ratio: float
) -> NoisyLabels:
    noisy = noisy.astype(np.int64, copy=False)
    return NoisyLabels(
        labels=noisy,
        is_noisy=noisy != clean,
        transition=transition_matrix(clean, noisy, n_classes),
        kind=kind,
        ratio=ratio,
    )


def _exact_per_class_draw(
    y: np.ndarray, ratio: float, n_classes: int, rng: np.random.Generator
) -> list[tuple[int, np.ndarray]]:
    """For each class c (ascending), the indices of round(ratio·n_c) of its samples, at random."""
    chosen = []
    for c in range(n_classes):
        members = np.flatnonzero(y == c)
        k = _round_half_up(ratio * members.size)
        chosen.append((c, rng.choice(members, size=k, replace=False) if k else members[:0]))
    return chosen


# --------------------------------------------------------------------------------------------
# the four label-noise kinds


def symmetric_noise(
    labels: Sequence[int] | np.ndarray,
    ratio: float,
    *,
    seed: int,
    n_classes: int | None = None,
) -> NoisyLabels:
    """Flip an exact ``ratio`` of each class to uniformly drawn *other* classes.

    The "flip to another class" noise of NMTune and cleanlab: within each clean class ``c`` with
    ``n_c`` samples, exactly ``round(ratio·n_c)`` samples (rounding half up), chosen uniformly at
    random, receive a label drawn uniformly from the ``C−1`` classes other than ``c``. A flipped
    label never equals the clean one, so the realized per-class noise ratio is exact (up to
    rounding) and the expected transition matrix is ``(1−ratio)·I + ratio/(C−1)·(J−I)``.
    Compare :func:`uniform_noise`, whose re-drawn labels may stay correct.

    Parameters
    ----------
    labels : array-like of int, shape (N,)
        Clean labels, non-negative integers.
    ratio : float
        Fraction of each class to flip, in ``[0, 1)``.
    seed : int
        Seed of ``np.random.default_rng``.
    n_classes : int, optional
        Number of classes ``C`` (>= 2 and >= ``max(labels) + 1``); default ``max(labels) + 1``.

    Returns
    -------
    NoisyLabels
    """
    y, ratio, seed, n_classes = _check_common(labels, ratio, seed, n_classes)
    rng = np.random.default_rng(seed)
    noisy = y.copy()
    for c, idx in _exact_per_class_draw(y, ratio, n_classes, rng):
        # An offset in 1..C-1 added mod C is a uniform draw over the classes other than c.
        noisy[idx] = (c + rng.integers(1, n_classes, size=idx.size)) % n_classes
    return _result(y, noisy, n_classes, "symmetric", ratio)


def uniform_noise(
    labels: Sequence[int] | np.ndarray,
    ratio: float,
    *,
    seed: int,
    n_classes: int | None = None,
) -> NoisyLabels:
    """Re-draw the labels of exactly ``round(ratio·N)`` samples uniformly over *all* classes.

    DivideMix / ELR "symmetric" noise: ``round(ratio·N)`` samples (rounding half up), chosen
    uniformly at random among all ``N`` samples whatever their class, each get a label drawn
    uniformly from all ``C`` classes, *including its own*. A re-drawn label stays correct with
    probability ``1/C``, so the expected fraction of wrong labels is ``ratio·(C−1)/C`` (e.g.
    0.45 instead of 0.5 for C = 10) and the count per class is random. ``NoisyLabels.is_noisy``
    marks only labels that actually changed. Use :func:`symmetric_noise` for an exact fraction of
    wrong labels in every class.

    Parameters
    ----------
    labels : array-like of int, shape (N,)
        Clean labels, non-negative integers.
    ratio : float
        Fraction of the samples whose label is re-drawn, in ``[0, 1)``.
    seed : int
        Seed of ``np.random.default_rng``.
    n_classes : int, optional
        Number of classes ``C`` (>= 2 and >= ``max(labels) + 1``); default ``max(labels) + 1``.

    Returns
    -------
    NoisyLabels
    """
    y, ratio, seed, n_classes = _check_common(labels, ratio, seed, n_classes)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(y.size, size=_round_half_up(ratio * y.size), replace=False)
    noisy = y.copy()
    noisy[chosen] = rng.integers(0, n_classes, size=chosen.size)
    return _result(y, noisy, n_classes, "uniform", ratio)


def superclass_mapping(superclasses: Sequence[Sequence[int]], n_classes: int) -> np.ndarray:
    """Class → target map that sends each class to the next class of its group, cyclically.

    Parameters
    ----------
    superclasses : sequence of sequences of int
        Disjoint groups of class ids in ``[0, n_classes)``, e.g. :data:`CIFAR100_SUPERCLASSES`.
        Within a group ``(a, b, c)`` the map is ``a→b, b→c, c→a``. Classes in no group, and
        groups of one class, map to themselves (they are never flipped).
    n_classes : int
        Number of classes ``C``.

    Returns
    -------
    np.ndarray of int64, shape (C,)
        ``mapping[c]`` is the target class of ``c``.
    """
    if isinstance(superclasses, (str, bytes)) or not isinstance(superclasses, Sequence):
        raise ValueError(
            f"superclasses must be a list of lists of class ids, got {type(superclasses).__name__}"
        )
    mapping = np.arange(n_classes, dtype=np.int64)
    seen: set[int] = set()
    for g, group in enumerate(superclasses):
        ids = np.asarray(group)
        if ids.ndim != 1 or (
            ids.size and (ids.dtype == np.bool_ or not np.issubdtype(ids.dtype, np.integer))
        ):
            raise ValueError(
                f"superclasses[{g}] must be a list of integer class ids, got {group!r}"
            )
        for c in ids.tolist():
            if not 0 <= c < n_classes:
                raise ValueError(f"superclasses[{g}] contains class {c}, outside [0, {n_classes})")
            if c in seen:
                raise ValueError(f"superclasses must be disjoint; class {c} appears twice")
            seen.add(c)
        mapping[ids] = np.roll(ids, -1)
    return mapping


def _check_mapping(mapping: Any, n_classes: int) -> np.ndarray:
    if isinstance(mapping, Mapping):
        out = np.arange(n_classes, dtype=np.int64)
        for src, dst in mapping.items():
            for what, c in (("key", src), ("value", dst)):
                if (
                    isinstance(c, bool)
                    or not isinstance(c, numbers.Integral)
                    or not 0 <= c < n_classes
                ):
                    raise ValueError(
                        f"mapping {what}s must be class ids in [0, {n_classes}), got {c!r}"
                    )
            out[int(src)] = int(dst)
        return out
    arr = np.asarray(mapping)
    if arr.shape != (n_classes,):
        raise ValueError(
            f"mapping must be a dict or an array of length n_classes = {n_classes}, got shape {arr.shape}"
        )
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"mapping must contain integer class ids, got dtype {arr.dtype}")
    if arr.min() < 0 or arr.max() >= n_classes:
        raise ValueError(f"mapping values must be class ids in [0, {n_classes})")
    return arr.astype(np.int64)


def asymmetric_noise(
    labels: Sequence[int] | np.ndarray,
    ratio: float,
    *,
    seed: int,
    n_classes: int | None = None,
    mapping: Mapping[int, int] | Sequence[int] | np.ndarray | None = None,
    superclasses: Sequence[Sequence[int]] | None = None,
) -> NoisyLabels:
    """Move an exact ``ratio`` of each class to one fixed target class (class-dependent noise).

    Within each clean class ``c`` with ``n_c`` samples and target ``t = mapping[c] != c``, exactly
    ``round(ratio·n_c)`` samples (rounding half up), chosen uniformly at random, get label ``t``;
    classes with ``t == c`` are untouched. The target map is, in order of precedence:

    * ``mapping``: a dict ``{class: target}`` (classes not in it map to themselves) or an array
      of length ``C``;
    * ``superclasses``: groups of classes; each class maps to the next class of its group,
      cyclically (:func:`superclass_mapping`; with :data:`CIFAR100_SUPERCLASSES` this is the
      usual CIFAR-100 asymmetric noise);
    * neither: ``c → (c + 1) mod C``.

    Parameters
    ----------
    labels : array-like of int, shape (N,)
        Clean labels, non-negative integers.
    ratio : float
        Fraction of each (non-fixed) class to move, in ``[0, 1)``.
    seed : int
        Seed of ``np.random.default_rng``.
    n_classes : int, optional
        Number of classes ``C`` (>= 2 and >= ``max(labels) + 1``); default ``max(labels) + 1``.
    mapping : dict or array-like of int, optional
        Target class of each class. Not together with ``superclasses``.
    superclasses : sequence of sequences of int, optional
        Disjoint groups of class ids. Not together with ``mapping``.

    Returns
    -------
    NoisyLabels
    """
    y, ratio, seed, n_classes = _check_common(labels, ratio, seed, n_classes)
    if mapping is not None and superclasses is not None:
        raise ValueError("pass either mapping or superclasses, not both")
    if mapping is not None:
        target = _check_mapping(mapping, n_classes)
    elif superclasses is not None:
        target = superclass_mapping(superclasses, n_classes)
    else:
        target = (np.arange(n_classes, dtype=np.int64) + 1) % n_classes
    rng = np.random.default_rng(seed)
    noisy = y.copy()
    for c, idx in _exact_per_class_draw(y, ratio, n_classes, rng):
        noisy[idx] = target[c]  # a no-op for fixed classes, which then count as clean
    return _result(y, noisy, n_classes, "asymmetric", ratio)


def instance_noise(
    labels: Sequence[int] | np.ndarray,
    ratio: float,
    *,
    seed: int,
    features: np.ndarray,
    n_classes: int | None = None,
    std: float = 0.1,
) -> NoisyLabels:
    """Instance-dependent noise: flip rates and targets that depend on each sample's features.

    The generator of Xia et al. (2020, "Part-dependent label noise") and Cheng et al. (2021),
    used in TURN (App. A.2.1), following the reference implementation
    (``get_instance_noisy_label``):

    1. each sample draws a flip rate ``q_i ~ N(ratio, std²)`` truncated to ``[0, 1]``;
    2. a projection ``W`` of shape ``(C, L, C)`` with i.i.d. ``N(0, 1)`` entries is drawn -- one
       ``L×C`` matrix per clean class;
    3. sample ``i`` with clean label ``y_i`` and features ``x_i`` gets scores
       ``s = x_i · W[y_i]`` (length ``C``); with ``s[y_i] = −inf``,
       ``p = q_i · softmax(s)`` spreads mass ``q_i`` over the other classes and
       ``p[y_i] = 1 − q_i``;
    4. the noisy label is drawn from ``p``.

    The realized ratio is random with expectation ``E[q_i]``, which is ≈ ``ratio`` when ``ratio``
    is at least ~2 ``std`` away from 0 and 1 (truncation biases it towards 0.5 otherwise).
    Deviation from the reference: ``ratio == 0`` returns the clean labels (all ``q_i = 0``),
    whereas the reference would still flip ~``0.8·std`` of them through the truncated normal.
    Features are used as given; their scale sets how peaked the target distribution is.

    Parameters
    ----------
    labels : array-like of int, shape (N,)
        Clean labels, non-negative integers.
    ratio : float
        Mean flip rate, in ``[0, 1)``.
    seed : int
        Seed of ``np.random.default_rng`` (for ``q``, ``W`` and the draws).
    features : array-like of float, shape (N, L)
        One feature vector per sample (e.g. flattened images), finite.
    n_classes : int, optional
        Number of classes ``C`` (>= 2 and >= ``max(labels) + 1``); default ``max(labels) + 1``.
    std : float, default 0.1
        Standard deviation of the flip-rate normal before truncation, > 0.

    Returns
    -------
    NoisyLabels
    """
    y, ratio, seed, n_classes = _check_common(labels, ratio, seed, n_classes)
    if features is None:
        raise ValueError("features is required for instance noise: an (N, L) float array")
    if hasattr(features, "detach") and hasattr(features, "cpu"):  # a torch tensor
        features = features.detach().cpu().numpy()
    x = np.asarray(features)
    if x.ndim != 2 or x.shape[0] != y.size or x.shape[1] == 0:
        raise ValueError(
            f"features must be an (N, L) array with N = len(labels) = {y.size} and L >= 1, got shape {x.shape}"
        )
    if not np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_:
        raise ValueError(f"features must be numeric, got dtype {x.dtype}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("features must be finite (no NaN or inf)")
    if (
        isinstance(std, bool)
        or not isinstance(std, numbers.Real)
        or not (math.isfinite(std) and std > 0)
    ):
        raise ValueError(f"std must be a positive float, got {std!r}")
    std = float(std)

    if ratio == 0.0:
        return _result(y, y.copy(), n_classes, "instance", ratio)

    rng = np.random.default_rng(seed)
    # truncnorm takes its bounds in units of std around loc.
    flip_rate = truncnorm.rvs(
        (0.0 - ratio) / std,
        (1.0 - ratio) / std,
        loc=ratio,
        scale=std,
        size=y.size,
        random_state=rng,
    )
    projection = rng.standard_normal((n_classes, x.shape[1], n_classes))
    scores = np.empty((y.size, n_classes))
    for c in range(n_classes):  # one matmul per class instead of an (N, L, C) gather
        members = y == c
        scores[members] = x[members] @ projection[c]
    rows = np.arange(y.size)
    scores[rows, y] = -np.inf
    scores -= scores.max(axis=1, keepdims=True)  # stable softmax; exp(-inf) = 0 for the true class
    probs = np.exp(scores)
    probs *= (flip_rate / probs.sum(axis=1))[:, None]
    probs[rows, y] = 1.0 - flip_rate
    # Inverse-CDF draw, one uniform per sample; the clip guards against cumsum ending at 1 - 1e-16.
    u = rng.random(y.size)
    noisy = np.minimum((np.cumsum(probs, axis=1) <= u[:, None]).sum(axis=1), n_classes - 1)
    return _result(y, noisy, n_classes, "instance", ratio)


_KIND_FUNCTIONS = {
    "symmetric": symmetric_noise,
    "uniform": uniform_noise,
    "asymmetric": asymmetric_noise,
    "instance": instance_noise,
}


def inject_noise(
    labels: Sequence[int] | np.ndarray,
    kind: str,
    ratio: float,
    *,
    seed: int,
    n_classes: int | None = None,
    **kind_args: Any,
) -> NoisyLabels:
    """Corrupt clean labels with synthetic noise of a given kind.

    Dispatches to :func:`symmetric_noise`, :func:`uniform_noise`, :func:`asymmetric_noise` or
    :func:`instance_noise`; see those for the exact semantics of ``ratio`` per kind.

    Parameters
    ----------
    labels : array-like of int, shape (N,)
        Clean labels, non-negative integers.
    kind : {"symmetric", "uniform", "asymmetric", "instance"}
        Noise kind.
    ratio : float
        Noise ratio in ``[0, 1)``.
    seed : int
        Seed of ``np.random.default_rng``; same seed, same noisy labels.
    n_classes : int, optional
        Number of classes ``C`` (>= 2 and >= ``max(labels) + 1``); default ``max(labels) + 1``.
    **kind_args
        ``asymmetric``: ``mapping=`` or ``superclasses=`` (optional).
        ``instance``: ``features=`` (required), ``std=`` (optional, default 0.1).
        ``symmetric``, ``uniform``: none.

    Returns
    -------
    NoisyLabels

    Raises
    ------
    ValueError
        For an unknown ``kind``, missing or unexpected kind arguments, or invalid labels,
        ratio, seed or n_classes.

    Examples
    --------
    >>> noisy = inject_noise([0, 0, 1, 1, 2, 2], "symmetric", 0.5, seed=0)
    >>> noisy.realized_ratio
    0.5
    """
    if kind not in _KIND_FUNCTIONS:
        raise ValueError(f"kind must be one of {list(NOISE_KINDS)}, got {kind!r}")
    unexpected = sorted(set(kind_args) - _KIND_ARGS[kind])
    if unexpected:
        accepted = sorted(_KIND_ARGS[kind]) or "none"
        raise ValueError(
            f"unexpected argument(s) {unexpected} for kind {kind!r}; it accepts: {accepted}"
        )
    missing = sorted(_KIND_REQUIRED[kind] - set(kind_args))
    if missing:
        raise ValueError(f"kind {kind!r} requires the argument(s) {missing}")
    return _KIND_FUNCTIONS[kind](labels, ratio, seed=seed, n_classes=n_classes, **kind_args)
