"""Linear probing under noisy labels: a linear classifier on frozen features, CE / GCE / ELR.

The LP rows of the TURN paper's Table 2 (20 epochs), and TURN's own first step (GCE, q = 0.7).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
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


def train_linear_many(features: torch.Tensor, y: torch.Tensor, n_classes: int, loss_fns: Sequence[LossFn], *,
                      seeds: Sequence[int], epochs: int, batch_size: int, optimizer: str, lr: float,
                      weight_decay: float, momentum: float = 0.9,
                      on_epoch: Callable[[int, list[nn.Linear]], None] | None = None) -> list[nn.Linear]:
    """:func:`train_linear` for K probes at once: ``features`` (K, N, D), ``y`` (K, N), one loss
    and one seed per probe.

    Probe k is what ``train_linear(features[k], y[k], n_classes, loss_fns[k], seed=seeds[k], ...)``
    trains — its own initialisation (``torch.manual_seed(seed)`` then the layer), batch order
    (``epoch_generator(seed, epoch)``) and loss (an ELR memory is per probe) — up to float rounding:
    the K layers are stacked into (K, D, C) weights, every step is one batched product and one
    optimiser step, and the loss is the sum of the K probes' losses (their parameters are disjoint,
    so each gets its own gradient). ``on_epoch(e, layers)`` gets the K layers with their values after
    epoch e.
    """
    k, n, d = features.shape
    if len(loss_fns) != k or len(seeds) != k or tuple(y.shape) != (k, n):
        raise ValueError(f"need one loss, one seed and one label row per probe: {k} probes, {len(loss_fns)} losses, "
                         f"{len(seeds)} seeds, labels {tuple(y.shape)}")
    layers = []
    for seed in seeds:
        torch.manual_seed(seed)
        layers.append(nn.Linear(d, n_classes).to(features.device))
    weight = torch.stack([layer.weight.detach().T for layer in layers]).contiguous().requires_grad_()  # (K, D, C)
    bias = torch.stack([layer.bias.detach() for layer in layers]).contiguous().requires_grad_()       # (K, C)
    cfg = OptimConfig(epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr,
                      weight_decay=weight_decay, momentum=momentum, schedule="cosine")
    opt = make_optimizer([weight, bias], cfg)
    sched = make_scheduler(opt, cfg, -(-n // batch_size))
    rows = torch.arange(k, device=features.device)[:, None]

    def write_back() -> list[nn.Linear]:
        with torch.no_grad():
            for i, layer in enumerate(layers):
                layer.weight.copy_(weight[i].T)
                layer.bias.copy_(bias[i])
        return layers

    for epoch in range(epochs):
        order = torch.stack([torch.randperm(n, generator=epoch_generator(seed, epoch)) for seed in seeds])
        order = order.to(features.device)
        for start in range(0, n, batch_size):
            idx = order[:, start:start + batch_size]
            logits = torch.baddbmm(bias.unsqueeze(1), features[rows, idx], weight)
            labels = y[rows, idx]
            loss = torch.stack([fn(logits[i], labels[i], idx[i]) for i, fn in enumerate(loss_fns)])
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            opt.step()
            sched.step()
        if on_epoch is not None:
            on_epoch(epoch, write_back())
    return write_back()


def fit_many_probes(probes: Sequence[NoisyLinearProbe], Xs: Sequence[Any], ys: Sequence[Any],
                    eval_sets: Sequence[tuple | None] | None = None,
                    val_sets: Sequence[tuple | None] | None = None) -> list[NoisyLinearProbe]:
    """``probes[k].fit(Xs[k], ys[k], eval_set=eval_sets[k], val_set=val_sets[k])`` for every k, the
    K probes trained as one (:func:`train_linear_many`); returns them, fitted in place.

    The probes must share every parameter but ``seed`` (ValueError naming the first that does not)
    and their data one shape and number of classes. Each probe's ``history_`` and test predictions
    are recorded after every epoch as in ``fit``; ``fit_seconds_`` is each probe's share of the
    training time (evaluation excluded).
    """
    probes = list(probes)
    if not probes:
        return []
    eval_sets = [None] * len(probes) if eval_sets is None else list(eval_sets)
    val_sets = [None] * len(probes) if val_sets is None else list(val_sets)
    if not len(Xs) == len(ys) == len(eval_sets) == len(val_sets) == len(probes):
        raise ValueError("need one X, y, eval_set and val_set per probe")
    recipe = {key: value for key, value in probes[0].get_params().items() if key != "seed"}
    for i, probe in enumerate(probes):
        probe._validate_params()
        mine = {key: value for key, value in probe.get_params().items() if key != "seed"}
        if mine != recipe:
            raise ValueError(f"probe {i} ({probe!r}) does not share probe 0's recipe; only the seed may differ")
    features, labels = [], []
    for probe, X, y in zip(probes, Xs, ys, strict=True):
        X, y = validate_data(probe, X, y, dtype=np.float32)
        y_idx = probe._encode_labels(y)
        probe.mean_ = X.mean(0) if probe.standardize else np.zeros(X.shape[1], np.float32)
        probe.scale_ = X.std(0) + 1e-6 if probe.standardize else np.ones(X.shape[1], np.float32)
        features.append((X - probe.mean_) / probe.scale_)
        labels.append(y_idx)
    shapes = {(f.shape, len(p.classes_)) for f, p in zip(features, probes, strict=True)}
    if len(shapes) > 1:
        raise ValueError(f"probes trained as one need data of one shape and one number of classes, got {sorted(shapes)}")
    first = probes[0]
    device = first._device()
    n_classes = len(first.classes_)
    with torch.enable_grad():
        for probe in probes:
            probe._begin()
        evaluation = 0.0
        start = time.perf_counter()
        xt = torch.from_numpy(np.stack(features)).to(device)
        yt = torch.from_numpy(np.stack(labels)).to(device)
        loss_fns = [make_loss(p.loss, n_samples=yt.shape[1], n_classes=n_classes, q=p.q, elr_lambda=p.elr_lambda,
                              elr_beta=p.elr_beta, device=device) for p in probes]

        def on_epoch(epoch: int, layers: list[nn.Linear]) -> None:
            nonlocal evaluation
            began = time.perf_counter()
            for probe, layer, eval_set, val_set in zip(probes, layers, eval_sets, val_sets, strict=True):
                probe._set_layer(layer)
                probe._evaluate("lp", epoch, eval_set, probe.predict, val_set)
            evaluation += time.perf_counter() - began

        layers = train_linear_many(xt, yt, n_classes, loss_fns, seeds=[p.seed for p in probes], epochs=first.epochs,
                                   batch_size=first.batch_size, optimizer=first.optimizer, lr=first.lr,
                                   weight_decay=first.weight_decay, momentum=first.momentum, on_epoch=on_epoch)
        share = (time.perf_counter() - start - evaluation) / len(probes)
        for probe, layer in zip(probes, layers, strict=True):
            probe._set_layer(layer)
            probe.fit_seconds_ = share
    return probes


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
