"""Tuners on frozen features, scikit-learn style: ``fit(X, y)``, ``predict``, ``predict_proba``.

Created by name, timm-style (:func:`register_tuner`, :func:`create_tuner`, :func:`list_tuners`):
"lp" (linear probe), "mlp" (MLP tuning), "nmtune".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nml._infra.registry import Registry
from nml.estimators.frozen.base import FeatureTuner, fit_many, stack_signature
from nml.estimators.frozen.heads import make_head
from nml.estimators.frozen.linear_probe import LinearProbe
from nml.estimators.frozen.mlp import MLPTuner
from nml.estimators.frozen.nmtune import NMTUNE_PRESETS, NMTune
from nml.estimators.frozen.nmtune_losses import (
    consistency_loss,
    covariance_loss,
    dominant_singular_value_loss,
    nmtune_loss,
)

#: Every tuner by the name params files use.
TUNER_REGISTRY: Registry[FeatureTuner] = Registry("tuner")


def register_tuner(name: str, factory: Callable[..., FeatureTuner] | None = None, *,
                   description: str | None = None) -> Any:
    """Register a tuner class (or any factory) under ``name``; usable as a class decorator."""
    return TUNER_REGISTRY.register(name, factory, description=description)


def create_tuner(name: str, **kwargs: Any) -> FeatureTuner:
    """The tuner called ``name`` built with ``kwargs``; KeyError naming the known tuners otherwise."""
    return TUNER_REGISTRY.create(name, **kwargs)


def list_tuners(pattern: str | None = None) -> list[str]:
    """Names of the registered tuners, sorted (fnmatch ``pattern``)."""
    return TUNER_REGISTRY.names(pattern)


register_tuner("lp", LinearProbe, description="linear probe: a linear head on the frozen features")
register_tuner("mlp", MLPTuner, description="MLP tuning: an MLP head + linear classifier, cross-entropy (NMTune without its terms)")
register_tuner("nmtune", NMTune, description="NMTune: MLP head + linear classifier, CE + consistency, covariance, dominant-SV terms")


__all__ = [
    "NMTUNE_PRESETS",
    "TUNER_REGISTRY",
    "FeatureTuner",
    "LinearProbe",
    "MLPTuner",
    "NMTune",
    "consistency_loss",
    "covariance_loss",
    "create_tuner",
    "dominant_singular_value_loss",
    "fit_many",
    "list_tuners",
    "make_head",
    "nmtune_loss",
    "register_tuner",
    "stack_signature",
]
