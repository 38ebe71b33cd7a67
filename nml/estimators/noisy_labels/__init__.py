"""Fine-tuning a pre-trained model on noisy labels: TURN and the baselines of its paper.

scikit-learn classifiers, created by name, timm-style (:func:`register_method`,
:func:`create_method`, :func:`list_methods`; the names the params use):

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

import functools
from collections.abc import Callable
from typing import Any

from nml._infra.registry import Registry
from nml.estimators.noisy_labels.base import NoisyLabelClassifier
from nml.estimators.noisy_labels.cleansing import (
    class_balanced_subset,
    detection_scores,
    gmm_clean_probability,
)
from nml.estimators.noisy_labels.dividemix import DivideMixLP
from nml.estimators.noisy_labels.full import FullFineTune
from nml.estimators.noisy_labels.linear import NoisyLinearProbe, fit_many_probes
from nml.estimators.noisy_labels.losses import ELRMemory, gce_loss
from nml.estimators.noisy_labels.turn import TURN
from nml.estimators.noisy_labels.unicon import UniconLP
from nml.estimators.noisy_labels.views import EncoderViews, FeatureViews

#: Every noisy-label method by name; each entry's metadata ``input`` is what its ``fit`` reads.
METHOD_REGISTRY: Registry[NoisyLabelClassifier] = Registry("noisy-label method")

_INPUTS = ("images", "features", "views")


def register_method(name: str, factory: Callable[..., NoisyLabelClassifier] | None = None, *, input: str,
                    description: str | None = None) -> Any:
    """Register a method's class (or factory) under ``name``; usable as a class decorator.

    ``input`` is what its ``fit`` reads: ``images``, ``features`` or ``views`` (feature views),
    so a chapter knows what to hand it before building it.
    """
    if input not in _INPUTS:
        raise ValueError(f"method {name!r}: input must be one of {list(_INPUTS)}, got {input!r}")
    return METHOD_REGISTRY.register(name, factory, description=description, input=input)


def create_method(name: str, **kwargs: Any) -> NoisyLabelClassifier:
    """The method called ``name`` (see the table above) with ``kwargs``; KeyError lists the names."""
    return METHOD_REGISTRY.create(name, **kwargs)


def list_methods(pattern: str | None = None) -> list[str]:
    """Names of the registered methods, sorted (fnmatch ``pattern``)."""
    return METHOD_REGISTRY.names(pattern)


def method_input(name: str) -> str:
    """What ``fit`` of method ``name`` reads: ``images``, ``features`` or ``views``."""
    return METHOD_REGISTRY.get(name).metadata["input"]


register_method("ce-fft", functools.partial(FullFineTune, loss="ce"), input="images",
                description="full fine-tuning, cross-entropy")
register_method("gce-fft", functools.partial(FullFineTune, loss="gce"), input="images",
                description="full fine-tuning, generalized cross-entropy")
register_method("elr-fft", functools.partial(FullFineTune, loss="elr"), input="images",
                description="full fine-tuning, early-learning regularisation")
register_method("ce-lp", functools.partial(NoisyLinearProbe, loss="ce"), input="features",
                description="linear probe, cross-entropy")
register_method("gce-lp", functools.partial(NoisyLinearProbe, loss="gce"), input="features",
                description="linear probe, generalized cross-entropy")
register_method("elr-lp", functools.partial(NoisyLinearProbe, loss="elr"), input="features",
                description="linear probe, early-learning regularisation")
register_method("dividemix-lp", DivideMixLP, input="views",
                description="DivideMix with linear probing (two linear heads)")
register_method("unicon-lp", UniconLP, input="views", description="UNICON with linear probing")
register_method("turn", TURN, input="images", description="TURN: LP (GCE) then GMM cleansing + FFT")


__all__ = [
    "ELRMemory",
    "EncoderViews",
    "FeatureViews",
    "FullFineTune",
    "METHOD_REGISTRY",
    "NoisyLabelClassifier",
    "NoisyLinearProbe",
    "fit_many_probes",
    "TURN",
    "class_balanced_subset",
    "create_method",
    "detection_scores",
    "gce_loss",
    "gmm_clean_probability",
    "list_methods",
    "method_input",
    "register_method",
]
