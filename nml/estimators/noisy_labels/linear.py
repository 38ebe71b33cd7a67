"""Linear probing under noisy labels: a linear classifier on frozen features, CE / GCE / ELR.

The LP rows of the TURN paper's Table 2 (20 epochs), and TURN's own first step (GCE, q = 0.7).
"""

from __future__ import annotations

from collections.abc import Callable
from numbers import Real
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from nml._infra.training import (
    OptimConfig,
    epoch_generator,
    make_optimizer,
    make_scheduler,
    shuffled_batches,
)
from nml.estimators._base import NON_NEGATIVE, UNIT_RIGHT_OPEN, NMLTransformerMixin
from nml.estimators.noisy_labels.base import OPTIM_CONSTRAINTS, NoisyLabelClassifier
from nml.estimators.noisy_labels.losses import LOSSES, ELRMemory, gce_loss

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (logits, y, idx) -> loss

# the training loss of the LP and FFT baselines, as scikit-learn constraints checked at fit
LOSS_CONSTRAINTS: dict[str, list[Any]] = {
    "loss": [StrOptions(set(LOSSES))],
    "q": [Interval(Real, 0, 1, closed="right")],
    "elr_lambda": [NON_NEGATIVE],
    "elr_beta": [UNIT_RIGHT_OPEN],
}


def make_loss(loss: str, *, n_samples: int, n_classes: int, q: float = 0.7, elr_lambda: float = 3.0,
              elr_beta: float = 0.7, device: torch.device | str = "cpu") -> LossFn:
    """The training loss by name: ``ce``, ``gce`` (with ``q``) or ``elr`` (with its per-sample memory)."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {list(LOSSES)}, got {loss!r}")
    if loss == "ce":
        return lambda logits, y, idx: F.cross_entropy(logits, y)
    if loss == "gce":
        return lambda logits, y, idx: gce_loss(logits, y, q)
    memory = ELRMemory(n_samples, n_classes, beta=elr_beta, lam=elr_lambda, device=device)
    return memory.loss


def train_linear(features: torch.Tensor, y: torch.Tensor, n_classes: int, loss_fn: LossFn, *, epochs: int,
                 batch_size: int, optimizer: str, lr: float, weight_decay: float, momentum: float = 0.9,
                 seed: int, on_epoch: Callable[[int, nn.Linear], None] | None = None) -> nn.Linear:
    """Train ``nn.Linear(D, n_classes)`` on ``features`` (as given: raw or standardised) with ``loss_fn``.

    ``torch.manual_seed(seed)`` before the layer is built; per-step cosine schedule to zero;
    the batch order of epoch ``e`` comes from ``epoch_generator(seed, e)``. ``on_epoch(e, layer)``
    runs after each epoch (evaluation).
    """
    torch.manual_seed(seed)
    layer = nn.Linear(features.shape[1], n_classes).to(features.device)
    cfg = OptimConfig(epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr,
                      weight_decay=weight_decay, momentum=momentum, schedule="cosine")
    opt = make_optimizer(layer.parameters(), cfg)
    sched = make_scheduler(opt, cfg, -(-len(y) // batch_size))
    for epoch in range(epochs):
        for idx in shuffled_batches(len(y), batch_size, epoch_generator(seed, epoch)):
            idx = idx.to(features.device)
            loss = loss_fn(layer(features[idx]), y[idx], idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        if on_epoch is not None:
            on_epoch(epoch, layer)
    return layer


class NoisyLinearProbe(NMLTransformerMixin, NoisyLabelClassifier):
    """Linear probing on frozen features with a noise-robust (or plain) loss.

    The LP baselines of the TURN paper: ``loss="ce"`` (vanilla), ``"gce"`` (generalized
    cross-entropy, Zhang & Sabuncu 2018) or ``"elr"`` (early-learning regularisation, Liu et al.
    2020), 20 epochs by default. ``loss="gce"`` with the same settings is TURN's step 1, weight for
    weight (:class:`~nml.estimators.noisy_labels.turn.TURN` calls the same :func:`train_linear`).

    ``standardize`` z-scores features with the training statistics. Off by default: the paper
    does not say, and a linear probe in the authors' code reads the raw features (TURN's step 1
    likewise, see ``TURN.lp_standardize``).

    ``fit(X, y, eval_set=(X_test, y_test), val_set=(X_val, y_val))``: X is an (N, D) feature
    matrix; the whole training is the tuning phase (``"lp"``).
    """

    TUNING_PHASES = ("lp",)
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **LOSS_CONSTRAINTS, **OPTIM_CONSTRAINTS, "standardize": ["boolean"],
    }

    def __init__(self, loss: str = "ce", epochs: int = 20, batch_size: int = 128, optimizer: str = "adamw",
                 lr: float = 1e-3, weight_decay: float = 1e-5, momentum: float = 0.9, q: float = 0.7,
                 elr_lambda: float = 3.0, elr_beta: float = 0.7, standardize: bool = False, seed: int = 0,
                 device: str = "cpu"):
        self.loss = loss
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.momentum = momentum
        self.q = q
        self.elr_lambda = elr_lambda
        self.elr_beta = elr_beta
        self.standardize = standardize
        self.seed = seed
        self.device = device

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any, eval_set: tuple | None = None, val_set: tuple | None = None) -> NoisyLinearProbe:
        X, y = validate_data(self, X, y, dtype=np.float32)
        y_idx = self._encode_labels(y)
        self.mean_ = X.mean(0) if self.standardize else np.zeros(X.shape[1], np.float32)
        self.scale_ = X.std(0) + 1e-6 if self.standardize else np.ones(X.shape[1], np.float32)
        device = self._device()
        with torch.enable_grad():
            self._begin()
            xt = torch.from_numpy((X - self.mean_) / self.scale_).to(device)
            yt = torch.from_numpy(y_idx).to(device)
            loss_fn = make_loss(self.loss, n_samples=len(y_idx), n_classes=len(self.classes_), q=self.q,
                                elr_lambda=self.elr_lambda, elr_beta=self.elr_beta, device=device)

            def on_epoch(epoch: int, layer: nn.Linear) -> None:
                self._set_layer(layer)
                self._evaluate("lp", epoch, eval_set, self.predict, val_set)

            self._set_layer(train_linear(xt, yt, len(self.classes_), loss_fn, epochs=self.epochs,
                                         batch_size=self.batch_size, optimizer=self.optimizer, lr=self.lr,
                                         weight_decay=self.weight_decay, momentum=self.momentum,
                                         seed=self.seed, on_epoch=on_epoch))
            self._finish()
        return self

    def _set_layer(self, layer: nn.Linear) -> None:
        self.coef_ = layer.weight.detach().cpu().numpy().copy()
        self.intercept_ = layer.bias.detach().cpu().numpy().copy()

    def transform(self, X: Any) -> np.ndarray:
        """The (standardised) features the classifier reads."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float32, reset=False)
        return (X - self.mean_) / self.scale_

    def _logits(self, X: Any) -> np.ndarray:
        return self.transform(X) @ self.coef_.T + self.intercept_
