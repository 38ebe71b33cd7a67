"""Linear probing: a linear classifier trained on frozen features."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from nml.estimators._base import POSITIVE_INT
from nml.estimators.frozen.base import OPTIMISATION_CONSTRAINTS, FeatureTuner


class LinearProbe(FeatureTuner):
    """Linear classifier on frozen features, trained as in NMTune App. A.2.

    AdamW with a cosine schedule for ``epochs`` epochs of mini-batches (the authors' command line:
    lr 0.01, weight decay 1e-4, 30 epochs, batch 64), on the cached features of un-augmented
    images as in the authors' ``finetune.py --freeze-encoder`` (their LP reads features computed
    once with the evaluation transform). ``standardize`` z-scores each feature with the training
    set's statistics first (off by default: the authors' probe reads raw features).

    A :class:`~nml.estimators.frozen.base.FeatureTuner` whose head is the identity, so ``transform`` returns
    the (standardised) features. Unlike the head tuners it trains on every batch, including a
    trailing batch of one sample (a linear layer with cross-entropy is fine there, and keeping it
    keeps results identical to earlier versions).

    Parameters
    ----------
    epochs, batch_size, lr, weight_decay : optimisation settings.
    standardize : z-score features with training statistics before the linear layer.
    seed : seeds initialisation and batch order; same seed, same probe.
    device : "cpu", "cuda" or "auto".
    """

    _skip_singleton_batches = False
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **OPTIMISATION_CONSTRAINTS, "batch_size": [POSITIVE_INT],
    }

    def __init__(
        self,
        epochs: int = 30,
        batch_size: int = 64,
        lr: float = 0.01,
        weight_decay: float = 1e-4,
        standardize: bool = False,
        seed: int = 0,
        device: str = "cpu",
    ):
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.standardize = standardize
        self.seed = seed
        self.device = device

    def _hyper_params(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr,
                "weight_decay": self.weight_decay, "seed": self.seed, "device": self.device}

    def _make_head(self, n_features: int, hp: dict[str, Any]) -> nn.Module:
        return nn.Identity()
