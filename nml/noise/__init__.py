"""Label noise (``labels``) and image–text pair-swap noise (``pairs``): plain functions with
exact, seeded draws. Everything public is importable from ``nml.noise``.
"""

from nml.noise.labels import (
    CIFAR100_SUPERCLASS_NAMES,
    CIFAR100_SUPERCLASSES,
    NOISE_KINDS,
    NoisyLabels,
    asymmetric_noise,
    inject_noise,
    instance_noise,
    superclass_mapping,
    symmetric_noise,
    transition_matrix,
    uniform_noise,
)
from nml.noise.pairs import PairSwap, pair_swap_noise

__all__ = [
    "CIFAR100_SUPERCLASSES",
    "CIFAR100_SUPERCLASS_NAMES",
    "NOISE_KINDS",
    "NoisyLabels",
    "PairSwap",
    "asymmetric_noise",
    "inject_noise",
    "instance_noise",
    "pair_swap_noise",
    "superclass_mapping",
    "symmetric_noise",
    "transition_matrix",
    "uniform_noise",
]
