"""Tuners on frozen features, scikit-learn style: ``fit(X, y)``, ``predict``, ``predict_proba``.

``TUNERS`` maps short names to classes: "lp" (linear probe), "mlp" (MLP tuning), "nmtune".
"""

from __future__ import annotations

from typing import Any

from nml.tuners.base import FeatureTuner
from nml.tuners.heads import make_head
from nml.tuners.linear_probe import LinearProbe
from nml.tuners.mlp_tuner import MLPTuner
from nml.tuners.nmtune import NMTUNE_PRESETS, NMTune
from nml.tuners.nmtune_losses import (
    consistency_loss,
    covariance_loss,
    dominant_singular_value_loss,
    nmtune_loss,
)

TUNERS: dict[str, type[FeatureTuner]] = {"lp": LinearProbe, "mlp": MLPTuner, "nmtune": NMTune}


def make_tuner(name: str, **kwargs: Any) -> FeatureTuner:
    """``TUNERS[name](**kwargs)``; KeyError naming the known tuners for an unknown name."""
    if name not in TUNERS:
        raise KeyError(f"unknown tuner {name!r}; known tuners: {sorted(TUNERS)}")
    return TUNERS[name](**kwargs)


__all__ = [
    "NMTUNE_PRESETS",
    "TUNERS",
    "FeatureTuner",
    "LinearProbe",
    "MLPTuner",
    "NMTune",
    "consistency_loss",
    "covariance_loss",
    "dominant_singular_value_loss",
    "make_head",
    "make_tuner",
    "nmtune_loss",
]
