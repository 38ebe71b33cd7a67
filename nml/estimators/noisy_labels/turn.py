"""TURN (Ahn et al., "Fine-tuning Pre-trained Models for Robustness Under Noisy Labels").

Step 1 — linear probing: features ``z = f(x)`` are extracted once, and a fresh linear
classifier ``g`` is trained on them for ``epochs_lp`` epochs with GCE (q = 0.7). This is the
GCE-LP baseline, weight for weight: both call :func:`nml.estimators.noisy_labels.linear.train_linear` with the
same features, seed and settings.
Step 2 — cleanse and fine-tune, ``epochs_fft`` times: the per-sample cross-entropy of the
current model ``g(f(x))`` on the whole noisy training set; for each class a two-component 1-D
Gaussian mixture on the losses of the samples labelled with it; the samples whose posterior of
the low-loss component exceeds ``τ`` form the class's clean set; ``N`` = the smallest clean-set
size; ``N`` samples drawn uniformly from each class's clean set; one epoch of full fine-tuning
with CE on that class-balanced subset.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import _fit_context
from sklearn.utils._param_validation import StrOptions
from torch import nn

from nml._infra.training import OptimConfig, channels_last, make_optimizer
from nml.estimators._base import (
    NON_NEGATIVE,
    POSITIVE,
    POSITIVE_INT,
    UNIT_RIGHT_OPEN,
    NMLTransformerMixin,
)
from nml.estimators.noisy_labels.base import (
    OPTIM_CONSTRAINTS,
    OPTIMIZERS,
    NoisyLabelClassifier,
    backbone_input,
    batched_logits,
    check_features,
)
from nml.estimators.noisy_labels.cleansing import class_balanced_subset, gmm_clean_probability
from nml.estimators.noisy_labels.full import (
    BN_MODES,
    FINE_TUNING_CONSTRAINTS,
    BackboneClassifier,
    FineTunedBackboneOutputs,
    batchnorm_layers,
    check_augmentable,
    cosine_lr,
    crop_augment,
    infer_feature_dim,
    recalibrate_bn_statistics,
    set_bn_momentum,
    train_epoch,
)
from nml.estimators.noisy_labels.linear import LOSS_CONSTRAINTS, train_linear
from nml.estimators.noisy_labels.losses import gce_loss

CLEANSING = ("every", "once", "none")

__all__ = ["BN_MODES", "CLEANSING", "TURN"]


class TURN(FineTunedBackboneOutputs, NMLTransformerMixin, NoisyLabelClassifier):
    """TURN: LP with GCE on cached features, then per-class GMM cleansing + FFT on a balanced subset.

    Parameters
    ----------
    backbone : pre-trained feature extractor (a torch module: images -> (B, D)); deep-copied.
    epochs_lp, lp_batch_size, lp_lr, lp_weight_decay, lp_momentum : step 1 (20 epochs in the paper).
    lp_optimizer : optimiser of step 1; None = ``optimizer`` (the paper's Table 8 pairs SGD for
        LP with AdamW for FFT on some backbones).
    lp_standardize : z-score the features for step 1 and fold the scaling into the head. Off by
        default, as the GCE-LP baseline (:class:`~nml.estimators.noisy_labels.linear.NoisyLinearProbe`): the
        paper does not say, and the authors' linear probes read raw features. (Standardising
        also has a trap here: a feature that is nearly constant on the training set gets a scale
        ~1e-6, the folded head multiplies it by ~1e6, and as soon as fine-tuning moves that
        feature the logits explode.)
    q : GCE exponent of step 1 (0.7).
    epochs_fft, batch_size, optimizer, lr, weight_decay, momentum : step 2 (4 epochs).
    tau : GMM posterior threshold (0.6, DivideMix's value).
    lp_step : False skips step 1 (the head starts at random: Table 4's first row).
    cleansing : ``"every"`` FFT epoch (TURN), ``"once"`` (before the first FFT epoch; the clean
        set is kept, the balanced subset re-drawn each epoch) or ``"none"`` (FFT on all samples
        with CE: plain LP-FFT). Table 4's component study.
    augment, flip, crop_pad : augmentation of the FFT batches (random translation, h-flip).
    bn_mode : the BatchNorm policy of the fine-tuning, the same parameter as
        :class:`~nml.estimators.noisy_labels.full.FullFineTune`'s (:data:`~nml.estimators.noisy_labels.full.BN_MODES`). Step 1's
        head is fitted to features normalised with the backbone's running statistics; FFT in
        ``"train"`` mode normalises with batch statistics instead, which changes every feature
        the head reads at once when the downstream data differ from the pre-training data.
        ``"frozen"`` keeps the running statistics (the head keeps reading the features it was
        fitted to); ``"recalibrate"`` re-estimates them on the training images before step 1
        and extracts step 1's features with them (so cached ``features`` cannot be used).
        Measured on EfficientNet-Lite0 (ImageNet statistics, digits at 40 px, 1 seed): with
        ``"train"`` TURN fell from 72% (LP) to 25% after the first FFT epoch; ``"frozen"`` kept
        the LP accuracy. Backbones without BatchNorm (ViT) are unaffected.
    bn_momentum : BatchNorm momentum during FFT (0.1; None keeps the backbone's), see
        :func:`nml.estimators.noisy_labels.full.set_bn_momentum` (moot with ``bn_mode="frozen"``).
    gmm_per_class : one mixture per class (TURN) or one for all samples (DivideMix-style).
    seed, device, eval_batch_size : as elsewhere.

    ``fit(X, y, eval_set=None, features=None, eval_features=None, val_set=None,
    val_features=None)``: X is an image tensor N×C×H×W (or a map-style dataset), or a feature
    matrix (N, D) for a backbone that reads vectors (then ``augment=False``); ``features`` are
    the backbone's features of X if the caller has them cached (otherwise extracted here,
    once); ``eval_features`` / ``val_features`` the same for the test / validation images (to
    score the LP epochs without a forward pass).

    Fitted: ``model_`` (backbone + head, CPU, eval), ``lp_coef_`` / ``lp_intercept_`` (step 1's
    head as a head on the raw features; with ``lp_standardize=False`` the GCE-LP baseline's
    ``coef_`` / ``intercept_`` exactly), ``cleansing_`` (one dict per FFT epoch: ``epoch``,
    ``clean_probability`` (N,), ``clean_mask`` (N,), ``subset`` (indices trained on)),
    ``history_`` (LP and FFT epochs), ``fit_seconds_`` (includes the one feature extraction when
    ``features`` is not given). ``best_test_acc_`` / ``oracle_test_acc_`` / ``last_test_acc_``
    cover the FFT epochs only; ``lp_test_acc_`` is step 1's own test accuracy.
    """

    TUNING_PHASES = ("fft",)
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **FINE_TUNING_CONSTRAINTS,
        **{name: constraints for name, constraints in OPTIM_CONSTRAINTS.items() if name != "epochs"},
        "epochs_fft": [POSITIVE_INT],
        "epochs_lp": [POSITIVE_INT],
        "lp_batch_size": [POSITIVE_INT],
        "lp_lr": [POSITIVE],
        "lp_weight_decay": [NON_NEGATIVE],
        "lp_momentum": [UNIT_RIGHT_OPEN],
        "lp_optimizer": [StrOptions(set(OPTIMIZERS)), None],
        "lp_standardize": ["boolean"],
        "q": LOSS_CONSTRAINTS["q"],
        "tau": [UNIT_RIGHT_OPEN],
        "lp_step": ["boolean"],
        "cleansing": [StrOptions(set(CLEANSING))],
        "gmm_per_class": ["boolean"],
    }

    def __init__(self, backbone: nn.Module | None = None, epochs_lp: int = 20, lp_batch_size: int = 128,
                 lp_lr: float = 1e-3, lp_weight_decay: float = 1e-5, lp_momentum: float = 0.9,
                 lp_optimizer: str | None = None, lp_standardize: bool = False, q: float = 0.7, epochs_fft: int = 4,
                 batch_size: int = 128, optimizer: str = "adamw", lr: float = 1e-3, weight_decay: float = 1e-5,
                 momentum: float = 0.9, tau: float = 0.6, lp_step: bool = True, cleansing: str = "every",
                 augment: bool = True, flip: bool = True, crop_pad: int | None = None, bn_mode: str = "train",
                 bn_momentum: float | None = 0.1, gmm_per_class: bool = True, eval_batch_size: int = 256,
                 seed: int = 0, device: str = "cpu"):
        self.backbone = backbone
        self.epochs_lp = epochs_lp
        self.lp_batch_size = lp_batch_size
        self.lp_lr = lp_lr
        self.lp_weight_decay = lp_weight_decay
        self.lp_momentum = lp_momentum
        self.lp_optimizer = lp_optimizer
        self.lp_standardize = lp_standardize
        self.q = q
        self.epochs_fft = epochs_fft
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.momentum = momentum
        self.tau = tau
        self.lp_step = lp_step
        self.cleansing = cleansing
        self.augment = augment
        self.flip = flip
        self.crop_pad = crop_pad
        self.bn_mode = bn_mode
        self.bn_momentum = bn_momentum
        self.gmm_per_class = gmm_per_class
        self.eval_batch_size = eval_batch_size
        self.seed = seed
        self.device = device

    @property
    def lp_test_acc_(self) -> float:
        """Test accuracy of step 1's linear probe (its last epoch); NaN without LP step or ``eval_set``."""
        lp = [h for h in getattr(self, "history_", []) if h["phase"] == "lp" and "test_acc" in h]
        return lp[-1]["test_acc"] if lp else float("nan")

    # ------------------------------------------------------------------ step 1
    def _linear_probe(self, feats: np.ndarray, y_idx: np.ndarray, eval_set, eval_features, device,
                      val_set=None, val_features=None) -> nn.Linear:
        """GCE linear probe on (optionally standardised) features, as a head on raw features.

        Scored after every epoch on ``val_features`` / ``eval_features`` (the features of the
        validation / test images), phase ``"lp"``.
        """
        if self.lp_standardize:
            mean, scale = feats.mean(0), feats.std(0) + 1e-6
        else:
            mean, scale = np.zeros(feats.shape[1], np.float32), np.ones(feats.shape[1], np.float32)
        xt = torch.from_numpy((feats - mean) / scale).to(device)
        yt = torch.from_numpy(y_idx).to(device)
        n_classes = len(self.classes_)

        def fold(layer: nn.Linear) -> nn.Linear:
            # g(standardised f) = W (f − μ)/s + b  ==  (W/s) f + (b − (W/s) μ): a head on raw features
            head = nn.Linear(feats.shape[1], n_classes)
            with torch.no_grad():
                if self.lp_standardize:
                    w = layer.weight.detach().cpu() / torch.from_numpy(scale)
                    head.weight.copy_(w)
                    head.bias.copy_(layer.bias.detach().cpu() - w @ torch.from_numpy(mean))
                else:  # exactly the probe's weights
                    head.weight.copy_(layer.weight.detach().cpu())
                    head.bias.copy_(layer.bias.detach().cpu())
            return head

        def on_epoch(epoch: int, layer: nn.Linear) -> None:
            if eval_set is None and val_set is None:
                return
            head = fold(layer)

            def predict(f: np.ndarray) -> np.ndarray:
                with torch.no_grad():
                    return self.classes_[head(torch.from_numpy(f)).argmax(1).numpy()]

            self._evaluate("lp", epoch, None if eval_set is None else (eval_features, eval_set[1]), predict,
                           None if val_set is None else (val_features, val_set[1]))

        layer = train_linear(xt, yt, n_classes, lambda logits, y, idx: gce_loss(logits, y, self.q),
                             epochs=self.epochs_lp, batch_size=self.lp_batch_size,
                             optimizer=self.lp_optimizer or self.optimizer,
                             lr=self.lp_lr, weight_decay=self.lp_weight_decay, momentum=self.lp_momentum,
                             seed=self.seed, on_epoch=on_epoch)
        head = fold(layer)
        self.lp_coef_ = head.weight.detach().cpu().numpy().copy()
        self.lp_intercept_ = head.bias.detach().cpu().numpy().copy()
        return head

    # ------------------------------------------------------------------ step 2
    def _cleanse(self, losses: np.ndarray, y_idx: np.ndarray, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        prob = gmm_clean_probability(losses, y_idx if self.gmm_per_class else None, seed=self.seed)
        return prob, prob > self.tau

    def _frozen_features(self, X: Any, given: Any, name: str, device: torch.device) -> np.ndarray:
        """``given`` (checked) or the current backbone's features of X, extracted outside the training clock."""
        self._pause()
        X = backbone_input(self, X, reset=False)
        if given is None:
            feats = batched_logits(self._backbone, X, batch_size=self.eval_batch_size, device=device).numpy()
        else:
            feats = check_features(given, name)
            if feats.shape != (len(X), infer_feature_dim(self._backbone, X)):
                raise ValueError(f"{name} must be (N={len(X)}, D) features of its images, got shape {feats.shape}")
        self._resume()
        return feats

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any, eval_set: tuple | None = None, features: Any = None,
            eval_features: Any = None, val_set: tuple | None = None, val_features: Any = None) -> TURN:
        X = backbone_input(self, X, reset=True)
        check_augmentable(X, self.augment)
        y_idx = self._encode_labels(self._validate_targets(y, len(X)))
        recalibrate = self.bn_mode == "recalibrate" and bool(batchnorm_layers(self.backbone))
        if recalibrate and any(f is not None for f in (features, eval_features, val_features)):
            raise ValueError("bn_mode='recalibrate' re-estimates BatchNorm statistics before step 1, so "
                             "precomputed features / eval_features / val_features (made with the old statistics) "
                             "cannot be used; pass None")
        device = self._device()
        with torch.enable_grad():
            self._begin()
            torch.manual_seed(self.seed)
            self._backbone = channels_last(copy.deepcopy(self.backbone).to(device))
            set_bn_momentum(self._backbone, self.bn_momentum)
            if recalibrate:
                recalibrate_bn_statistics(self._backbone, X, batch_size=self.eval_batch_size, device=device)
            if features is None:
                feats = batched_logits(self._backbone, X, batch_size=self.eval_batch_size, device=device).numpy()
            else:
                feats = check_features(features, "features")
                if feats.shape != (len(X), infer_feature_dim(self._backbone, X)):
                    raise ValueError(f"features must be (N={len(X)}, D) features of X, got shape {feats.shape}")
            if self.lp_step:
                # the LP epochs are scored on frozen features: one pass over the test / validation
                # images (evaluation, not training time) unless the caller has them cached
                test_feats = None if eval_set is None else self._frozen_features(eval_set[0], eval_features,
                                                                                 "eval_features", device)
                val_feats = None if val_set is None else self._frozen_features(val_set[0], val_features,
                                                                               "val_features", device)
                head = self._linear_probe(feats, y_idx, eval_set, test_feats, device, val_set, val_feats)
            else:
                torch.manual_seed(self.seed)
                head = nn.Linear(feats.shape[1], len(self.classes_))
            model = BackboneClassifier(self._backbone, head.to(device)).to(device)
            self.model_ = model
            del self._backbone
            cfg = OptimConfig(epochs=self.epochs_fft, batch_size=self.batch_size, optimizer=self.optimizer,
                              lr=self.lr, weight_decay=self.weight_decay, momentum=self.momentum)
            opt = make_optimizer(model.parameters(), cfg)
            yt = torch.from_numpy(y_idx).to(device)
            augment = crop_augment(self.crop_pad, self.flip) if self.augment else None
            rng = np.random.default_rng(self.seed)
            self.cleansing_: list[dict[str, Any]] = []
            clean_mask = None
            for epoch in range(self.epochs_fft):
                if self.cleansing == "none":
                    subset = np.arange(len(y_idx))
                else:
                    if self.cleansing == "every" or clean_mask is None:
                        if epoch == 0:
                            # the model is still g(f(x)) with the frozen f: reuse the cached features
                            with torch.no_grad():
                                logits = head.cpu()(torch.from_numpy(feats))
                            head.to(device)
                        else:
                            logits = batched_logits(model, X, batch_size=self.eval_batch_size, device=device)
                        losses = F.cross_entropy(logits, torch.from_numpy(y_idx), reduction="none").numpy()
                        prob, clean_mask = self._cleanse(losses, y_idx, epoch)
                    subset = class_balanced_subset(clean_mask, y_idx, rng, n_classes=len(self.classes_))
                    self.cleansing_.append({"epoch": epoch, "clean_probability": prob, "clean_mask": clean_mask,
                                            "subset": subset})
                if len(subset) >= 2:
                    train_epoch(model, X, yt, torch.from_numpy(subset), lambda logits, yb, idx: F.cross_entropy(logits, yb),
                                opt, lr_at=cosine_lr(self.lr, self.epochs_fft), epoch=epoch, seed=self.seed,
                                batch_size=self.batch_size, augment=augment, device=device,
                                freeze_bn=self.bn_mode == "frozen")
                self._evaluate("fft", epoch, eval_set, self.predict, val_set)
            self.model_ = model.cpu().eval()
            self._finish()
        return self


