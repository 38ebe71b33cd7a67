"""Full fine-tuning (FFT) under noisy labels: backbone + fresh linear head, CE / GCE / ELR.

The FFT rows of the TURN paper's Table 2 (5 epochs), and the building blocks TURN's second step
reuses: :class:`BackboneClassifier` and :func:`train_epoch`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from numbers import Real
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from torch import nn

from nml._infra.runtime import current_runtime
from nml._infra.training import (
    OptimConfig,
    channels_last,
    make_optimizer,
    random_crop_flip,
)
from nml.estimators._base import NON_NEGATIVE_INT, POSITIVE_INT, NMLTransformerMixin
from nml.estimators.noisy_labels.base import (
    OPTIM_CONSTRAINTS,
    NoisyLabelClassifier,
    backbone_input,
    batched_logits,
)
from nml.estimators.noisy_labels.linear import LOSS_CONSTRAINTS, LossFn, make_loss
from nml.models.engine import Stepper, batch_source, global_sums
from nml.models.pretrain import take


class BackboneClassifier(nn.Module):
    """``head(backbone(x))``: a pre-trained feature extractor f and a linear classifier g."""

    def __init__(self, backbone: nn.Module, head: nn.Linear):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def infer_feature_dim(backbone: nn.Module, X: Any) -> int:
    """Width of the backbone's pooled features (``num_features`` / ``dim``, else one forward pass)."""
    for attr in ("num_features", "dim"):
        value = getattr(backbone, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    was_training = backbone.training
    backbone.eval()
    with torch.no_grad():
        dim = int(backbone(take(X, torch.arange(min(2, len(X))))).shape[-1])
    backbone.train(was_training)
    return dim


def batchnorm_layers(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """Every BatchNorm layer of ``module`` (1-d, 2-d, 3-d, sync)."""
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def set_bn_momentum(module: nn.Module, momentum: float | None) -> None:
    """Give every BatchNorm layer of ``module`` this running-statistics momentum (None: keep).

    Fine-tuning takes few optimiser steps; with a TensorFlow-style momentum (EfficientNet-Lite's
    BatchNorm keeps 99% of the old statistics per step) the running statistics cannot follow the
    weights in that time, and the model evaluates with statistics of the pre-training data.
    """
    if momentum is None:
        return
    for layer in batchnorm_layers(module):
        layer.momentum = float(momentum)


def freeze_bn_statistics(module: nn.Module) -> None:
    """Put every BatchNorm layer of ``module`` in eval mode: normalise with the running (pre-training)
    statistics and stop updating them, while their affine weights still train.

    Call after ``module.train()``. TURN needs it: its head was fitted on features computed with
    these statistics, and switching to the statistics of small fine-tuning batches changes every
    feature the head reads at once.
    """
    for layer in batchnorm_layers(module):
        layer.eval()


def recalibrate_bn_statistics(module: nn.Module, X: Any, *, batch_size: int, device: torch.device) -> None:
    """Re-estimate every BatchNorm layer's running statistics on ``X`` (weights untouched).

    One pass in train mode without gradients, with a cumulative average (momentum None), so the
    running statistics become those of ``X`` rather than of the pre-training data; each layer's
    momentum is restored afterwards.
    """
    layers = batchnorm_layers(module)
    if not layers:
        return
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
    was_training = module.training
    module.train()
    with torch.no_grad():
        for start in range(0, len(X), batch_size):
            idx = torch.arange(start, min(start + batch_size, len(X)))
            module(take(X, idx).to(device))
    module.train(was_training)
    for m, momentum in zip(layers, momenta, strict=True):
        m.momentum = momentum


BN_MODES = ("train", "frozen", "recalibrate")
"""How full fine-tuning treats BatchNorm statistics (one policy for TURN and the FFT baselines):

* ``"train"`` (the default, as in any PyTorch fine-tuning script) — batch statistics in
  training, running statistics updated with ``bn_momentum``.
* ``"frozen"`` — BatchNorm layers stay in eval mode while the backbone trains: every batch is
  normalised with the running (pre-training) statistics, which are not updated; the affine
  weights still train.
* ``"recalibrate"`` — before any training, re-estimate the running statistics on the training
  images (:func:`recalibrate_bn_statistics`), then train as ``"train"``.
"""


# what every full fine-tuning (TURN's step 2 and the FFT baselines) is given, as scikit-learn
# constraints checked at fit
FINE_TUNING_CONSTRAINTS: dict[str, list[Any]] = {
    "backbone": [nn.Module],
    "augment": ["boolean"],
    "flip": ["boolean"],
    "crop_pad": [NON_NEGATIVE_INT, None],
    "bn_mode": [StrOptions(set(BN_MODES))],
    "bn_momentum": [Interval(Real, 0, 1, closed="both"), None],
    "eval_batch_size": [POSITIVE_INT],
}


def check_augmentable(X: torch.Tensor | torch.utils.data.Dataset, augment: bool) -> None:
    """ValueError when ``augment`` asks for random crops of X but X is a feature matrix, not images."""
    if augment and isinstance(X, torch.Tensor) and X.ndim == 2:
        raise ValueError(f"augment=True crops and flips images N×C×H×W, but X is a feature matrix of shape "
                         f"{tuple(X.shape)}; pass augment=False")


def crop_augment(pad: int | None, flip: bool) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    """Random translation by up to ``pad`` px (None: 1/16 of the image side) and optional h-flip."""
    def augment(batch: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        p = pad if pad is not None else max(1, round(batch.shape[-1] / 16))
        return random_crop_flip(batch, gen, pad=p, flip=flip)
    return augment


def train_epoch(model: BackboneClassifier, X: Any, y: torch.Tensor, indices: torch.Tensor, loss_fn: LossFn,
                opt: torch.optim.Optimizer, *, lr_at: Callable[[float], float], epoch: int, seed: int,
                batch_size: int, augment: Callable | None, device: torch.device, freeze_bn: bool = False) -> float:
    """One epoch of full fine-tuning over ``indices`` (shuffled); returns the mean loss.

    ``lr_at(progress)`` gives the learning rate at fractional epoch ``epoch + b / n_batches`` (a
    schedule that does not need to know in advance how many samples later epochs select).
    Batches come from :func:`nml.models.engine.batch_source` under the current runtime
    (:func:`nml._infra.runtime.current_runtime`): in-memory tensors as always, a dataset on disk
    through a DataLoader, one process or ``torchrun``'s many; a batch of one sample is skipped
    (BatchNorm cannot train on it).
    """
    runtime = current_runtime(device)
    model.train()
    if freeze_bn:
        freeze_bn_statistics(model)
    source = batch_source(X, indices, batch_size, seed=seed, runtime=runtime, augment=augment, sample_augment=augment,
                          min_batch=2)
    stepper = Stepper(model, opt, runtime)
    n_batches = source.steps()

    def compute_loss(trained: nn.Module, xb: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, dict]:
        on_device = idx.to(runtime.device)
        loss = loss_fn(trained(xb), y[on_device], on_device)
        return loss, {"loss": loss.detach()}

    total, seen = 0.0, 0
    for b, micro, n_global in source.epoch(epoch):
        for group in opt.param_groups:
            group["lr"] = lr_at(epoch + b / n_batches)
        total += stepper.step(micro, n_global, compute_loss)["loss"]
        seen += sum(len(idx) for _, idx in micro)
    sums, seen = global_sums({"loss": total}, seen, runtime)
    # in memory: over every index, as always; streamed: over the samples of the whole batches read
    return sums["loss"] / max(1, seen if source.streaming else len(indices))


def cosine_lr(base: float, epochs: int) -> Callable[[float], float]:
    import math

    return lambda progress: base * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress / epochs)))


class FineTunedBackboneOutputs:
    """Logits and backbone features of a fitted ``model_`` (backbone + head), in eval batches:
    what FullFineTune and TURN both predict and transform with."""

    def _logits(self, X: Any) -> np.ndarray:
        model = self.model_
        device = next(model.parameters()).device
        return batched_logits(model, backbone_input(self, X, reset=False), batch_size=self.eval_batch_size,
                              device=device).numpy()

    def transform(self, X: Any) -> np.ndarray:
        """Features of the fine-tuned backbone (eval mode)."""
        check_is_fitted(self)
        device = next(self.model_.parameters()).device
        return batched_logits(self.model_.backbone, backbone_input(self, X, reset=False),
                              batch_size=self.eval_batch_size, device=device).numpy()


class FullFineTune(FineTunedBackboneOutputs, NMLTransformerMixin, NoisyLabelClassifier):
    """Full fine-tuning of a pre-trained ``backbone`` with a fresh linear head.

    The FFT baselines of the TURN paper (5 epochs): ``loss="ce"``, ``"gce"`` or ``"elr"``, every
    parameter trained, random-crop (and optionally flip) augmentation, cosine learning rate.
    ``backbone`` is deep-copied at fit; the estimator never changes the module it was given.

    ``bn_mode`` is the BatchNorm policy (:data:`BN_MODES`; the same parameter as TURN's, so one
    setting serves both). ``bn_momentum`` (default 0.1, PyTorch's) replaces every BatchNorm
    layer's momentum for the fine-tuning (None keeps the backbone's own): see
    :func:`set_bn_momentum` (moot with ``bn_mode="frozen"``).

    ``fit(X, y, eval_set=(X_test, y_test), val_set=(X_val, y_val))``: X is an image tensor
    N×C×H×W in the convention the backbone reads (or a map-style dataset), or a feature matrix
    (N, D) for a backbone that reads vectors (then ``augment=False``: there is nothing to crop).
    Fitted: ``model_`` (backbone + head, on CPU, eval mode); ``transform`` gives the fine-tuned
    backbone's features.
    """

    TUNING_PHASES = ("fft",)
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **FINE_TUNING_CONSTRAINTS, **LOSS_CONSTRAINTS, **OPTIM_CONSTRAINTS,
    }

    def __init__(self, backbone: nn.Module | None = None, loss: str = "ce", epochs: int = 5,
                 batch_size: int = 128, optimizer: str = "adamw", lr: float = 1e-3, weight_decay: float = 1e-5,
                 momentum: float = 0.9, q: float = 0.7, elr_lambda: float = 3.0, elr_beta: float = 0.7,
                 augment: bool = True, flip: bool = True, crop_pad: int | None = None, bn_mode: str = "train",
                 bn_momentum: float | None = 0.1, eval_batch_size: int = 256, seed: int = 0, device: str = "cpu"):
        self.backbone = backbone
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
        self.augment = augment
        self.flip = flip
        self.crop_pad = crop_pad
        self.bn_mode = bn_mode
        self.bn_momentum = bn_momentum
        self.eval_batch_size = eval_batch_size
        self.seed = seed
        self.device = device

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any, eval_set: tuple | None = None, val_set: tuple | None = None) -> FullFineTune:
        X = backbone_input(self, X, reset=True)
        check_augmentable(X, self.augment)
        y_idx = self._encode_labels(self._validate_targets(y, len(X)))
        device = self._device()
        if self.loss == "elr" and current_runtime(device).distributed:
            raise ValueError("loss='elr' keeps a running target per sample, updated by whichever process reads it; "
                             "under torchrun the processes' copies would disagree. Run elr-fft with one process")
        with torch.enable_grad():
            self._begin()
            torch.manual_seed(self.seed)
            backbone = copy.deepcopy(self.backbone)
            set_bn_momentum(backbone, self.bn_momentum)
            head = nn.Linear(infer_feature_dim(backbone, X), len(self.classes_))
            model = channels_last(BackboneClassifier(backbone, head).to(device))
            if self.bn_mode == "recalibrate":
                recalibrate_bn_statistics(model.backbone, X, batch_size=self.eval_batch_size, device=device)
            cfg = OptimConfig(epochs=self.epochs, batch_size=self.batch_size, optimizer=self.optimizer, lr=self.lr,
                              weight_decay=self.weight_decay, momentum=self.momentum)
            opt = make_optimizer(model.parameters(), cfg)
            yt = torch.from_numpy(y_idx).to(device)
            loss_fn = make_loss(self.loss, n_samples=len(y_idx), n_classes=len(self.classes_), q=self.q,
                                elr_lambda=self.elr_lambda, elr_beta=self.elr_beta, device=device)
            augment = crop_augment(self.crop_pad, self.flip) if self.augment else None
            all_idx = torch.arange(len(y_idx))
            self.model_ = model
            for epoch in range(self.epochs):
                train_epoch(model, X, yt, all_idx, loss_fn, opt, lr_at=cosine_lr(self.lr, self.epochs), epoch=epoch,
                            seed=self.seed, batch_size=self.batch_size, augment=augment, device=device,
                            freeze_bn=self.bn_mode == "frozen")
                self._evaluate("fft", epoch, eval_set, self.predict, val_set)
            self.model_ = model.cpu().eval()
            self._finish()
        return self

