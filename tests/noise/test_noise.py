"""Tests of nml.noise: the four label-noise kinds and image–text pair swap."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from nml.noise import (
    CIFAR100_SUPERCLASS_NAMES,
    CIFAR100_SUPERCLASSES,
    NOISE_KINDS,
    NoisyLabels,
    PairSwap,
    asymmetric_noise,
    inject_noise,
    instance_noise,
    pair_swap_noise,
    superclass_mapping,
    symmetric_noise,
    transition_matrix,
    uniform_noise,
)

FAST = settings(max_examples=50, deadline=None)


def n_expected(ratio: float, n: int) -> int:
    """round(ratio·n), halves up (as documented in nml.noise)."""
    return math.floor(ratio * n + 0.5 + 1e-9)


@st.composite
def label_problems(draw, max_n: int = 120, max_classes: int = 7):
    """(labels, n_classes, ratio, seed): labels may miss some classes."""
    n_classes = draw(st.integers(2, max_classes))
    n = draw(st.integers(1, max_n))
    labels = np.array(
        draw(st.lists(st.integers(0, n_classes - 1), min_size=n, max_size=n)), dtype=np.int64
    )
    ratio = draw(st.floats(0.0, 0.99, allow_nan=False))
    seed = draw(st.integers(0, 2**32 - 1))
    return labels, n_classes, ratio, seed


def kind_args(kind: str, n: int, seed: int = 0) -> dict:
    if kind == "instance":
        return {"features": np.random.default_rng(seed).standard_normal((n, 6))}
    return {}


def counted_transition(clean: np.ndarray, noisy: np.ndarray, n_classes: int) -> np.ndarray:
    """Independent, loop-based version of the realized transition matrix."""
    t = np.eye(n_classes)
    for c in range(n_classes):
        members = clean == c
        if members.any():
            t[c] = [np.mean(noisy[members] == k) for k in range(n_classes)]
    return t


def check_invariants(
    out: NoisyLabels, clean: np.ndarray, n_classes: int, kind: str, ratio: float
) -> None:
    assert isinstance(out, NoisyLabels)
    assert out.labels.shape == clean.shape and out.labels.dtype == np.int64
    assert out.is_noisy.shape == clean.shape and out.is_noisy.dtype == np.bool_
    assert out.labels.min() >= 0 and out.labels.max() < n_classes
    np.testing.assert_array_equal(out.is_noisy, out.labels != clean)
    assert out.transition.shape == (n_classes, n_classes)
    np.testing.assert_allclose(out.transition.sum(axis=1), 1.0)
    np.testing.assert_allclose(out.transition, counted_transition(clean, out.labels, n_classes))
    assert out.kind == kind and out.ratio == ratio and isinstance(out.ratio, float)
    assert out.realized_ratio == pytest.approx(np.mean(out.labels != clean))
    assert out.n_classes == n_classes


# ------------------------------------------------------------------------------------------
# properties shared by every kind


@pytest.mark.parametrize("kind", NOISE_KINDS)
@FAST
@given(problem=label_problems())
def test_invariants_every_kind(kind, problem):
    labels, n_classes, ratio, seed = problem
    out = inject_noise(
        labels, kind, ratio, seed=seed, n_classes=n_classes, **kind_args(kind, labels.size)
    )
    check_invariants(out, labels, n_classes, kind, ratio)


@pytest.mark.parametrize("kind", NOISE_KINDS)
@FAST
@given(problem=label_problems())
def test_ratio_zero_leaves_labels_unchanged(kind, problem):
    labels, n_classes, _, seed = problem
    out = inject_noise(
        labels, kind, 0.0, seed=seed, n_classes=n_classes, **kind_args(kind, labels.size)
    )
    np.testing.assert_array_equal(out.labels, labels)
    assert not out.is_noisy.any()
    np.testing.assert_allclose(out.transition, np.eye(n_classes))


@pytest.mark.parametrize("kind", NOISE_KINDS)
@FAST
@given(problem=label_problems())
def test_same_seed_same_labels(kind, problem):
    labels, n_classes, ratio, seed = problem
    args = kind_args(kind, labels.size)
    a = inject_noise(labels, kind, ratio, seed=seed, n_classes=n_classes, **args)
    b = inject_noise(labels, kind, ratio, seed=seed, n_classes=n_classes, **args)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.transition, b.transition)


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_different_seeds_differ(kind):
    labels = np.repeat(np.arange(10), 100)
    args = kind_args(kind, labels.size)
    a = inject_noise(labels, kind, 0.4, seed=0, **args)
    b = inject_noise(labels, kind, 0.4, seed=1, **args)
    assert not np.array_equal(a.labels, b.labels)


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_public_function_matches_inject_noise(kind):
    labels = np.repeat(np.arange(5), 40)
    args = kind_args(kind, labels.size)
    func = {
        "symmetric": symmetric_noise,
        "uniform": uniform_noise,
        "asymmetric": asymmetric_noise,
        "instance": instance_noise,
    }[kind]
    np.testing.assert_array_equal(
        func(labels, 0.3, seed=7, **args).labels,
        inject_noise(labels, kind, 0.3, seed=7, **args).labels,
    )


def test_does_not_modify_input_and_accepts_lists_and_torch():
    torch = pytest.importorskip("torch")
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    before = labels.copy()
    out = symmetric_noise(labels, 0.5, seed=0)
    np.testing.assert_array_equal(labels, before)
    np.testing.assert_array_equal(symmetric_noise(labels.tolist(), 0.5, seed=0).labels, out.labels)
    np.testing.assert_array_equal(
        symmetric_noise(torch.as_tensor(labels), 0.5, seed=0).labels, out.labels
    )


def test_transition_matrix_absent_class_is_identity_row():
    t = transition_matrix(np.array([0, 0, 0, 0]), np.array([0, 1, 1, 2]), 4)
    np.testing.assert_allclose(t[0], [0.25, 0.5, 0.25, 0.0])
    np.testing.assert_allclose(t[1:], np.eye(4)[1:])


# ------------------------------------------------------------------------------------------
# symmetric


@FAST
@given(problem=label_problems())
def test_symmetric_exact_per_class_count_never_own_class(problem):
    labels, n_classes, ratio, seed = problem
    out = symmetric_noise(labels, ratio, seed=seed, n_classes=n_classes)
    for c in range(n_classes):
        members = labels == c
        assert out.is_noisy[members].sum() == n_expected(ratio, int(members.sum()))
    # "flip" means to another class: every changed label differs, so is_noisy counts all flips.
    assert np.all(out.labels[out.is_noisy] != labels[out.is_noisy])


def test_symmetric_rounds_half_up():
    out = symmetric_noise(np.array([0] * 5 + [1] * 5), 0.5, seed=0)
    assert out.is_noisy[:5].sum() == 3 and out.is_noisy[5:].sum() == 3


def test_symmetric_targets_uniform_over_other_classes():
    labels = np.repeat(np.arange(5), 4000)
    out = symmetric_noise(labels, 0.5, seed=3)
    t = out.transition
    np.testing.assert_allclose(np.diag(t), 0.5)
    off = t[~np.eye(5, dtype=bool)]
    # each off-diagonal entry ≈ 0.5 / 4 = 0.125 (2000 flips per row: sd ≈ 0.005)
    np.testing.assert_allclose(off, 0.125, atol=0.025)


# ------------------------------------------------------------------------------------------
# uniform


def test_uniform_realized_ratio_and_class_balance():
    n_classes, ratio = 10, 0.5
    labels = np.repeat(np.arange(n_classes), 2000)
    out = uniform_noise(labels, ratio, seed=11)
    # a re-drawn label keeps its class with probability 1/C
    assert out.realized_ratio == pytest.approx(ratio * (n_classes - 1) / n_classes, abs=0.015)
    freq = np.bincount(out.labels, minlength=n_classes) / labels.size
    np.testing.assert_allclose(freq, 1 / n_classes, atol=0.01)
    np.testing.assert_allclose(np.diag(out.transition), 1 - ratio + ratio / n_classes, atol=0.04)


@FAST
@given(problem=label_problems())
def test_uniform_redraws_exactly_round_ratio_n_samples(problem):
    labels, n_classes, ratio, seed = problem
    out = uniform_noise(labels, ratio, seed=seed, n_classes=n_classes)
    # the same draw as the generator: round(ratio·N) distinct samples over all classes
    rng = np.random.default_rng(seed)
    chosen = rng.choice(labels.size, size=n_expected(ratio, labels.size), replace=False)
    redrawn = np.zeros(labels.size, bool)
    redrawn[chosen] = True
    assert redrawn.sum() == n_expected(ratio, labels.size)
    # only re-drawn samples may change, and a re-drawn label is any of the C classes
    assert not np.any(out.is_noisy & ~redrawn)
    assert out.labels.min() >= 0 and out.labels.max() < n_classes
    assert out.is_noisy.sum() <= n_expected(ratio, labels.size)


def test_uniform_count_is_exact_not_bernoulli():
    labels = np.repeat(np.arange(10), 100)
    for seed in range(5):
        out = uniform_noise(labels, 0.6, seed=seed)
        # 600 re-drawn of 1,000, of which about 1/10 keep their label: never more than 600 wrong
        assert out.is_noisy.sum() <= 600
        assert 600 * 0.9 - 40 <= out.is_noisy.sum()


# ------------------------------------------------------------------------------------------
# asymmetric


@FAST
@given(problem=label_problems(), data=st.data())
def test_asymmetric_only_to_target_with_exact_counts(problem, data):
    labels, n_classes, ratio, seed = problem
    target = np.array(
        data.draw(st.lists(st.integers(0, n_classes - 1), min_size=n_classes, max_size=n_classes))
    )
    as_dict = data.draw(st.booleans())
    mapping = {c: int(t) for c, t in enumerate(target) if t != c} if as_dict else target
    out = asymmetric_noise(labels, ratio, seed=seed, n_classes=n_classes, mapping=mapping)
    np.testing.assert_array_equal(out.labels[out.is_noisy], target[labels[out.is_noisy]])
    for c in range(n_classes):
        members = labels == c
        expected = 0 if target[c] == c else n_expected(ratio, int(members.sum()))
        assert out.is_noisy[members].sum() == expected


@FAST
@given(problem=label_problems())
def test_asymmetric_default_is_next_class(problem):
    labels, n_classes, ratio, seed = problem
    out = asymmetric_noise(labels, ratio, seed=seed, n_classes=n_classes)
    np.testing.assert_array_equal(out.labels[out.is_noisy], (labels[out.is_noisy] + 1) % n_classes)
    for c in range(n_classes):
        assert out.is_noisy[labels == c].sum() == n_expected(ratio, int((labels == c).sum()))


@FAST
@given(ratio=st.floats(0.0, 0.99), seed=st.integers(0, 2**32 - 1))
def test_cifar100_superclass_noise_stays_in_group(ratio, seed):
    labels = np.repeat(np.arange(100), 6)
    out = asymmetric_noise(labels, ratio, seed=seed, superclasses=CIFAR100_SUPERCLASSES)
    coarse = np.empty(100, dtype=int)
    for g, group in enumerate(CIFAR100_SUPERCLASSES):
        coarse[list(group)] = g
    np.testing.assert_array_equal(coarse[out.labels], coarse[labels])
    nxt = superclass_mapping(CIFAR100_SUPERCLASSES, 100)
    np.testing.assert_array_equal(out.labels[out.is_noisy], nxt[labels[out.is_noisy]])
    assert out.is_noisy.sum() == 100 * n_expected(ratio, 6)


def test_superclass_mapping_is_cyclic_within_groups():
    mapping = superclass_mapping([[0, 3, 5], [1, 4], [2]], 7)
    np.testing.assert_array_equal(mapping, [3, 4, 2, 5, 1, 0, 6])


# Independent reference: CIFAR-100 fine names (fine id = alphabetical rank) and the members of
# each coarse class by name, and the widely used fine→coarse array (``sparse2coarse``).
CIFAR100_FINE_NAMES = sorted(
    """
apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly
camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile
cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp
lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree
orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy porcupine possum
rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail snake spider
squirrel streetcar sunflower sweet_pepper table tank telephone television tiger tractor train
trout tulip turtle wardrobe whale willow_tree wolf woman worm""".split()
)
CIFAR100_COARSE_MEMBERS = {
    "aquatic_mammals": "beaver dolphin otter seal whale",
    "fish": "aquarium_fish flatfish ray shark trout",
    "flowers": "orchid poppy rose sunflower tulip",
    "food_containers": "bottle bowl can cup plate",
    "fruit_and_vegetables": "apple mushroom orange pear sweet_pepper",
    "household_electrical_devices": "clock keyboard lamp telephone television",
    "household_furniture": "bed chair couch table wardrobe",
    "insects": "bee beetle butterfly caterpillar cockroach",
    "large_carnivores": "bear leopard lion tiger wolf",
    "large_man-made_outdoor_things": "bridge castle house road skyscraper",
    "large_natural_outdoor_scenes": "cloud forest mountain plain sea",
    "large_omnivores_and_herbivores": "camel cattle chimpanzee elephant kangaroo",
    "medium_mammals": "fox porcupine possum raccoon skunk",
    "non-insect_invertebrates": "crab lobster snail spider worm",
    "people": "baby boy girl man woman",
    "reptiles": "crocodile dinosaur lizard snake turtle",
    "small_mammals": "hamster mouse rabbit shrew squirrel",
    "trees": "maple_tree oak_tree palm_tree pine_tree willow_tree",
    "vehicles_1": "bicycle bus motorcycle pickup_truck train",
    "vehicles_2": "lawn_mower rocket streetcar tank tractor",
}
SPARSE2COARSE = [
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
]  # fmt: skip


def test_cifar100_superclasses_partition_0_to_99():
    assert len(CIFAR100_SUPERCLASSES) == 20
    assert all(len(group) == 5 for group in CIFAR100_SUPERCLASSES)
    assert sorted(c for group in CIFAR100_SUPERCLASSES for c in group) == list(range(100))


def test_cifar100_superclasses_match_names_and_reference():
    assert len(CIFAR100_FINE_NAMES) == 100
    fine_id = {name: i for i, name in enumerate(CIFAR100_FINE_NAMES)}
    assert fine_id["apple"] == 0 and fine_id["aquarium_fish"] == 1 and fine_id["worm"] == 99
    assert list(CIFAR100_SUPERCLASS_NAMES) == list(CIFAR100_COARSE_MEMBERS)
    for group, (name, members) in zip(
        CIFAR100_SUPERCLASSES, CIFAR100_COARSE_MEMBERS.items(), strict=True
    ):
        assert set(group) == {fine_id[m] for m in members.split()}, name
        assert all(SPARSE2COARSE[c] == CIFAR100_SUPERCLASS_NAMES.index(name) for c in group)
    assert CIFAR100_SUPERCLASSES[0] == (4, 30, 55, 72, 95)
    assert CIFAR100_SUPERCLASSES[1] == (1, 32, 67, 73, 91)


# ------------------------------------------------------------------------------------------
# instance


@pytest.mark.parametrize("ratio", [0.2, 0.4])
def test_instance_realized_ratio_close_to_ratio(ratio):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, size=5000)
    features = rng.standard_normal((5000, 32))
    out = instance_noise(labels, ratio, seed=1, features=features)
    check_invariants(out, labels, 10, "instance", ratio)
    # q_i has mean ≈ ratio (truncation is 2+ sd away); the flips are Bernoulli(q_i)
    assert out.realized_ratio == pytest.approx(ratio, abs=0.025)


def test_instance_noise_depends_on_features():
    # Two groups of class 0 with different features flip towards different classes.
    labels = np.zeros(4000, dtype=int)
    features = np.zeros((4000, 2))
    features[:2000, 0] = 5.0
    features[2000:, 1] = 5.0
    out = instance_noise(labels, 0.4, seed=0, features=features, n_classes=5)
    first = np.bincount(out.labels[:2000][out.is_noisy[:2000]], minlength=5)
    second = np.bincount(out.labels[2000:][out.is_noisy[2000:]], minlength=5)
    # The flip rate does not depend on the features, the flip *target* does: the two groups'
    # target distributions (softmax of x·W[0] over classes 1..4) are far apart.
    total_variation = 0.5 * np.abs(first / first.sum() - second / second.sum()).sum()
    assert total_variation > 0.3
    assert out.is_noisy[:2000].mean() == pytest.approx(0.4, abs=0.05)


def test_instance_std_controls_spread_and_torch_features():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=300)
    features = rng.standard_normal((300, 8))
    a = instance_noise(labels, 0.3, seed=2, features=features, std=0.05)
    b = instance_noise(
        labels, 0.3, seed=2, features=torch.as_tensor(features, dtype=torch.float64), std=0.05
    )
    np.testing.assert_array_equal(a.labels, b.labels)


# ------------------------------------------------------------------------------------------
# validation


LABELS = np.array([0, 1, 2, 0, 1, 2])


@pytest.mark.parametrize("ratio", [1.0, -0.1, 1.5, float("nan"), "0.2", None, True])
def test_bad_ratio(ratio):
    with pytest.raises(ValueError, match=r"ratio must be a float in \[0, 1\)"):
        inject_noise(LABELS, "symmetric", ratio, seed=0)


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (np.array([[0, 1], [1, 0]]), "labels must be a 1-D array"),
        (np.array([], dtype=int), "labels must be non-empty"),
        (np.array([0.0, 1.0]), "labels must be integers"),
        (np.array([True, False]), "labels must be integers"),
        (np.array([0, -1, 2]), "labels must be non-negative"),
    ],
)
def test_bad_labels(labels, match):
    with pytest.raises(ValueError, match=match):
        inject_noise(labels, "uniform", 0.2, seed=0)


@pytest.mark.parametrize(
    ("labels", "n_classes", "match"),
    [
        (LABELS, 2, r"n_classes must be >= max\(labels\) \+ 1 = 3, got 2"),
        (LABELS, 1, "n_classes must be >= 2"),
        (np.zeros(4, dtype=int), None, "n_classes must be >= 2"),
        (LABELS, 3.0, "n_classes must be an integer"),
    ],
)
def test_bad_n_classes(labels, n_classes, match):
    with pytest.raises(ValueError, match=match):
        inject_noise(labels, "symmetric", 0.2, seed=0, n_classes=n_classes)


@pytest.mark.parametrize("seed", [-1, 1.5, None, "0"])
def test_bad_seed(seed):
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        symmetric_noise(LABELS, 0.2, seed=seed)


def test_unknown_kind_lists_valid_kinds():
    with pytest.raises(
        ValueError,
        match=r"kind must be one of \['symmetric', 'uniform', 'asymmetric', 'instance'\]",
    ):
        inject_noise(LABELS, "pairflip", 0.2, seed=0)


def test_kind_args_unexpected_and_missing():
    with pytest.raises(
        ValueError, match=r"unexpected argument\(s\) \['mapping'\] for kind 'symmetric'"
    ):
        inject_noise(LABELS, "symmetric", 0.2, seed=0, mapping={0: 1})
    with pytest.raises(
        ValueError, match=r"unexpected argument\(s\) \['features'\] for kind 'asymmetric'"
    ):
        inject_noise(LABELS, "asymmetric", 0.2, seed=0, features=np.zeros((6, 2)))
    with pytest.raises(
        ValueError, match=r"kind 'instance' requires the argument\(s\) \['features'\]"
    ):
        inject_noise(LABELS, "instance", 0.2, seed=0)
    with pytest.raises(ValueError, match="features is required"):
        instance_noise(LABELS, 0.2, seed=0, features=None)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mapping": [1, 2, 0], "superclasses": [[0, 1, 2]]}, "either mapping or superclasses"),
        ({"mapping": [1, 2]}, "mapping must be a dict or an array of length n_classes = 3"),
        ({"mapping": [1, 2, 3]}, r"mapping values must be class ids in \[0, 3\)"),
        ({"mapping": [1.0, 2.0, 0.0]}, "mapping must contain integer class ids"),
        ({"mapping": {0: 5}}, r"mapping values must be class ids in \[0, 3\)"),
        ({"mapping": {-1: 0}}, r"mapping keys must be class ids in \[0, 3\)"),
        ({"superclasses": [[0, 1], [1, 2]]}, "class 1 appears twice"),
        ({"superclasses": [[0, 7]]}, r"contains class 7, outside \[0, 3\)"),
        ({"superclasses": [[0.5, 1]]}, "must be a list of integer class ids"),
        ({"superclasses": "012"}, "superclasses must be a list of lists"),
    ],
)
def test_bad_asymmetric_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        asymmetric_noise(LABELS, 0.2, seed=0, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"features": np.zeros((5, 2))},
            r"features must be an \(N, L\) array with N = len\(labels\) = 6",
        ),
        ({"features": np.zeros(6)}, r"features must be an \(N, L\) array"),
        ({"features": np.full((6, 2), np.nan)}, "features must be finite"),
        ({"features": np.array([["a", "b"]] * 6)}, "features must be numeric"),
        ({"features": np.zeros((6, 2)), "std": 0.0}, "std must be a positive float"),
        ({"features": np.zeros((6, 2)), "std": -1}, "std must be a positive float"),
    ],
)
def test_bad_instance_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        instance_noise(LABELS, 0.2, seed=0, **kwargs)


# ------------------------------------------------------------------------------------------
# pair swap


def check_pair_swap(swap: PairSwap, n: int, ratio: float, groups=None) -> None:
    assert isinstance(swap, PairSwap)
    assert swap.text_index.shape == (n,) and swap.text_index.dtype == np.int64
    np.testing.assert_array_equal(np.sort(swap.text_index), np.arange(n))  # a permutation
    np.testing.assert_array_equal(swap.is_swapped, swap.text_index != np.arange(n))
    assert swap.n_swapped == n_expected(ratio, n)
    assert swap.ratio == ratio
    if groups is not None:
        groups = np.asarray(groups)
        assert np.all(groups[swap.text_index][swap.is_swapped] != groups[swap.is_swapped])


@FAST
@given(n=st.integers(0, 300), ratio=st.floats(0.0, 0.99), seed=st.integers(0, 2**32 - 1))
def test_pair_swap_without_groups(n, ratio, seed):
    assume(n_expected(ratio, n) != 1)
    swap = pair_swap_noise(n, ratio, seed=seed)
    check_pair_swap(swap, n, ratio)
    np.testing.assert_array_equal(swap.text_index, pair_swap_noise(n, ratio, seed=seed).text_index)


def feasible(groups: np.ndarray, k: int) -> bool:
    """Some k-subset has no group holding more than half of it (brute-force free formula)."""
    return k == 0 or np.minimum(np.unique(groups, return_counts=True)[1], k // 2).sum() >= k


@FAST
@given(
    groups=st.lists(st.integers(0, 5), min_size=0, max_size=300),
    ratio=st.floats(0.0, 0.99),
    seed=st.integers(0, 2**32 - 1),
)
def test_pair_swap_across_groups(groups, ratio, seed):
    groups = np.array(groups, dtype=int)
    n, k = groups.size, n_expected(ratio, groups.size)
    assume(k != 1)
    if not feasible(groups, k):
        with pytest.raises(ValueError, match="cannot mismatch"):
            pair_swap_noise(n, ratio, seed=seed, groups=groups)
        return
    swap = pair_swap_noise(n, ratio, seed=seed, groups=groups)
    check_pair_swap(swap, n, ratio, groups)
    again = pair_swap_noise(n, ratio, seed=seed, groups=groups)
    np.testing.assert_array_equal(swap.text_index, again.text_index)


def test_pair_swap_dominant_group_still_feasible():
    # 70 % of pairs in one group: half of 50 swapped pairs may come from it, so it works.
    groups = np.array([0] * 70 + [1] * 10 + [2] * 10 + [3] * 10)
    swap = pair_swap_noise(100, 0.5, seed=0, groups=groups)
    check_pair_swap(swap, 100, 0.5, groups)
    with pytest.raises(ValueError, match="cannot mismatch 90 pairs across groups"):
        pair_swap_noise(100, 0.9, seed=0, groups=groups)


def test_pair_swap_string_groups_and_different_seeds():
    groups = np.array(["cat", "dog", "car"] * 50)
    a = pair_swap_noise(150, 0.4, seed=0, groups=groups)
    b = pair_swap_noise(150, 0.4, seed=1, groups=groups)
    check_pair_swap(a, 150, 0.4, groups)
    assert not np.array_equal(a.text_index, b.text_index)
    assert a.realized_ratio == pytest.approx(0.4)


def test_pair_swap_errors():
    with pytest.raises(ValueError, match="gives 1 pair to swap"):
        pair_swap_noise(10, 0.1, seed=0)
    with pytest.raises(ValueError, match="cannot mismatch 5 pairs across groups"):
        pair_swap_noise(10, 0.5, seed=0, groups=np.zeros(10, dtype=int))
    with pytest.raises(ValueError, match="groups must be a 1-D array of length n_pairs = 10"):
        pair_swap_noise(10, 0.5, seed=0, groups=np.arange(9))
    with pytest.raises(ValueError, match="n_pairs must be a non-negative integer"):
        pair_swap_noise(-3, 0.5, seed=0)
    with pytest.raises(ValueError, match=r"ratio must be a float in \[0, 1\)"):
        pair_swap_noise(10, 1.0, seed=0)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        pair_swap_noise(10, 0.5, seed=-1)
    # nothing to swap is always fine, even within a single group
    swap = pair_swap_noise(10, 0.0, seed=0, groups=np.zeros(10, dtype=int))
    np.testing.assert_array_equal(swap.text_index, np.arange(10))
