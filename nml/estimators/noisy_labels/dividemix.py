"""DivideMix with linear probing: two linear heads on frozen features that divide the data for each other."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nml.estimators._base import UNIT_RIGHT_OPEN
from nml.estimators.noisy_labels.cleansing import gmm_clean_probability
from nml.estimators.noisy_labels.two_networks import (
    TWO_NETWORK_CONSTRAINTS,
    HeadDivision,
    TwoNetworkLP,
)


class DivideMixLP(TwoNetworkLP):
    """DivideMix (Li, Socher & Hoi, ICLR 2020, "DivideMix: Learning with Noisy Labels as
    Semi-supervised Learning") in linear-probing mode, as the TURN paper ran it.

    The two networks are two linear heads g1, g2 on the frozen, standardised features (the
    encoder is shared and never trained). After ``warmup_epochs`` epochs of cross-entropy on
    all samples, every epoch:

    1. **Co-divide.** For each head k, the per-sample cross-entropy of g_k on the un-augmented
       features of every training sample; one global two-component GMM on those losses
       (:func:`~nml.estimators.noisy_labels.cleansing.gmm_clean_probability` with ``labels=None``) gives
       ``w_k``, the posterior of the low-loss component. Head 1 trains with the division made
       by head 2 and vice versa (so a head's own confirmation bias does not pick its data):
       labeled = ``w_other > p_threshold``, unlabeled = the rest.
    2. **Semi-supervised epoch** of each head (MixMatch, see
       :class:`~nml.estimators.noisy_labels.two_networks.TwoNetworkLP`): two augmented views per sample; the
       labeled targets are refined as ``sharpen(w·onehot(y) + (1 − w)·p̄)`` with ``p̄`` the head's
       mean softmax over the two views and ``w = w_other``; the unlabeled targets are co-guessed
       by both heads over both views and sharpened with ``temperature``; inputs and targets are
       mixed with λ' = max(λ, 1 − λ), λ ~ Beta(``alpha``, ``alpha``), across labeled and
       unlabeled rows. On frozen features this is MixUp at the classifier input. Loss:
       soft cross-entropy on the mixed labeled rows + ``lambda_u`` (ramped linearly from 0 over
       the post-warm-up epochs) × mean squared error on the mixed unlabeled rows + the
       uniform-prior regulariser ``Σ_c π_c log(π_c / p̄_c)``.

    Test-time prediction averages both heads' softmaxes.

    Cost in LP mode: the two networks share the frozen encoder, so one pass of un-augmented
    features serves both heads' divisions (here: one pass for the whole fit, since the frozen
    encoder gives the same features every epoch). Each head reads 2 augmented views of every
    sample it visits per epoch (the labeled set once, the unlabeled set cycled alongside), so
    with :class:`~nml.estimators.noisy_labels.views.EncoderViews` that is ~4 encoder feed-forwards per sample
    per epoch — the cost the TURN paper mentions for DivideMix. With a
    :class:`~nml.estimators.noisy_labels.views.FeatureViews` bank the views are precomputed and cheap.

    Parameters
    ----------
    epochs : total epochs, warm-up included (>= 2).
    warmup_epochs : cross-entropy epochs before the first division, in [1, epochs − 1].
    batch_size : per loader (labeled and unlabeled batches each have this size; the TURN paper
        halves its usual batch size for these methods — the caller's choice).
    optimizer, lr, weight_decay, momentum : one optimiser per head ("adamw" or "sgd"), cosine
        learning rate to zero over all epochs.
    p_threshold : GMM posterior above which a sample is labeled, in [0, 1) (DivideMix: 0.5).
    alpha : MixUp Beta(α, α) parameter (> 0; DivideMix: 4).
    temperature : sharpening temperature in (0, 1] (0.5).
    lambda_u : final weight of the unlabeled loss (>= 0; DivideMix uses 25 on CIFAR-10 at 50% noise).
    standardize : z-score every view with the un-augmented training features' mean and std (off by
        default: raw features, as every linear probe of this package).
    seed, device : as elsewhere.

    ``fit(X, y, eval_set=None)``: X is a feature matrix (N, D), a view bank (N, V, D) (view 0
    un-augmented) or any :class:`~nml.estimators.noisy_labels.views.ViewSource`.

    Fitted attributes
    -----------------
    classes_, n_features_in_, history_, fit_seconds_ : as every method.
    coef_ : (2, C, D) weights of the two heads (on standardised features); intercept_ : (2, C).
    mean_, scale_ : (D,) standardisation statistics.
    division_ : one dict per post-warm-up epoch: ``epoch``; ``clean_probability`` [w_1, w_2],
        the (N,) GMM posteriors computed from head 1's and head 2's losses; ``labeled_mask``
        [w_1 > p_threshold, w_2 > p_threshold]. Head 1 trained on ``labeled_mask[1]``, head 2
        on ``labeled_mask[0]``.
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {**TWO_NETWORK_CONSTRAINTS, "p_threshold": [UNIT_RIGHT_OPEN]}

    def __init__(self, epochs: int = 20, warmup_epochs: int = 5, batch_size: int = 128, optimizer: str = "adamw",
                 lr: float = 1e-3, weight_decay: float = 1e-5, momentum: float = 0.9, p_threshold: float = 0.5,
                 alpha: float = 4.0, temperature: float = 0.5, lambda_u: float = 25.0, standardize: bool = False,
                 seed: int = 0, device: str = "cpu"):
        self.epochs = epochs
        self.warmup_epochs = warmup_epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.momentum = momentum
        self.p_threshold = p_threshold
        self.alpha = alpha
        self.temperature = temperature
        self.lambda_u = lambda_u
        self.standardize = standardize
        self.seed = seed
        self.device = device

    def _divide(self, heads: list[nn.Linear], clean: torch.Tensor, y: torch.Tensor,
                epoch: int) -> list[HeadDivision]:
        probs, masks = [], []
        for head in heads:
            losses = F.cross_entropy(head(clean), y, reduction="none").cpu().numpy()
            w = gmm_clean_probability(losses, None, seed=self.seed + epoch)
            probs.append(w)
            masks.append(w > self.p_threshold)
        self.division_.append({"epoch": int(epoch), "clean_probability": probs, "labeled_mask": masks})
        divisions = []
        for k in range(len(heads)):
            other = 1 - k  # head k trains on the division made by the other head
            labeled = np.flatnonzero(masks[other])
            divisions.append(HeadDivision(labeled=labeled, weights=probs[other][labeled].astype(np.float32),
                                          unlabeled=np.flatnonzero(~masks[other])))
        return divisions
