"""Fine-tuning a pre-trained model on noisy labels: TURN and the baselines of its paper.

scikit-learn classifiers, created by name with :func:`make_method` (the names the params use):

============== ===================================================== ==================
name           method                                                 input of ``fit``
============== ===================================================== ==================
ce-fft         full fine-tuning, cross-entropy                        images
gce-fft        full fine-tuning, generalized cross-entropy            images
elr-fft        full fine-tuning, early-learning regularisation        images
ce-lp          linear probe, cross-entropy                            features
gce-lp         linear probe, GCE                                      features
elr-lp         linear probe, ELR                                      features
dividemix-lp   DivideMix with linear probing (two linear heads)       feature views
unicon-lp      UNICON with linear probing                             feature views
turn           TURN: LP (GCE) then GMM cleansing + FFT                images (+ features)
============== ===================================================== ==================
"""

from __future__ import annotations

from typing import Any

from nml.finetune.base import NoisyLabelClassifier
from nml.finetune.cleansing import class_balanced_subset, detection_scores, gmm_clean_probability
from nml.finetune.full import FullFineTune
from nml.finetune.linear import NoisyLinearProbe
from nml.finetune.losses import ELRMemory, gce_loss
from nml.finetune.turn import TURN
from nml.finetune.views import EncoderViews, FeatureViews

# name -> (class, fixed keyword arguments, what fit reads)
METHODS: dict[str, tuple[type, dict[str, Any], str]] = {
    "ce-fft": (FullFineTune, {"loss": "ce"}, "images"),
    "gce-fft": (FullFineTune, {"loss": "gce"}, "images"),
    "elr-fft": (FullFineTune, {"loss": "elr"}, "images"),
    "ce-lp": (NoisyLinearProbe, {"loss": "ce"}, "features"),
    "gce-lp": (NoisyLinearProbe, {"loss": "gce"}, "features"),
    "elr-lp": (NoisyLinearProbe, {"loss": "elr"}, "features"),
    "turn": (TURN, {}, "images"),
}


def _register_two_network_methods() -> None:
    try:
        from nml.finetune.dividemix import DivideMixLP
        from nml.finetune.unicon import UniconLP
    except ImportError:  # pragma: no cover - both modules ship with nml
        return
    METHODS["dividemix-lp"] = (DivideMixLP, {}, "views")
    METHODS["unicon-lp"] = (UniconLP, {}, "views")


_register_two_network_methods()


def make_method(name: str, **kwargs: Any) -> NoisyLabelClassifier:
    """The method called ``name`` (see the table above) with ``kwargs``; KeyError lists the names."""
    if name not in METHODS:
        raise KeyError(f"unknown noisy-label method {name!r}; known methods: {sorted(METHODS)}")
    cls, fixed, _ = METHODS[name]
    return cls(**{**fixed, **kwargs})


def method_input(name: str) -> str:
    """What ``fit`` of method ``name`` reads: ``images``, ``features`` or ``views``."""
    if name not in METHODS:
        raise KeyError(f"unknown noisy-label method {name!r}; known methods: {sorted(METHODS)}")
    return METHODS[name][2]


__all__ = [
    "ELRMemory",
    "EncoderViews",
    "FeatureViews",
    "FullFineTune",
    "METHODS",
    "NoisyLabelClassifier",
    "NoisyLinearProbe",
    "TURN",
    "class_balanced_subset",
    "detection_scores",
    "gce_loss",
    "gmm_clean_probability",
    "make_method",
    "method_input",
]
