"""What the two-network LP baselines (DivideMix, UNICON) share: two linear heads on frozen features.

Both methods train two networks that select clean samples for each other, treat the rest as
unlabeled data and train with a MixMatch-style semi-supervised step. With a frozen encoder
("LP" = linear probing, as the TURN paper ran them) a network is a linear head on the
(standardised) features, and the encoder is shared by both heads.

This module holds the machinery: :class:`TwoNetworkLP` (constraints, the view source,
standardisation, warm-up, the per-head semi-supervised epoch, evaluation, inference) and the
pieces of the MixMatch step as functions (:func:`sharpen`, :func:`mixup`,
:func:`refine_labels`, :func:`co_guess`, :func:`mixmatch_loss`, :func:`linear_rampup`). The
subclasses only say how the training set is divided (:meth:`TwoNetworkLP._divide`) and what
else is trained (UNICON's projection heads and contrastive term).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import _fit_context
from sklearn.utils import Tags
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from nml._infra.training import OptimConfig, epoch_generator, make_optimizer, shuffled_batches
from nml.estimators._base import NON_NEGATIVE, POSITIVE, POSITIVE_INT, NMLTransformerMixin
from nml.estimators.noisy_labels.base import OPTIM_CONSTRAINTS, NoisyLabelClassifier, check_features
from nml.estimators.noisy_labels.full import cosine_lr
from nml.estimators.noisy_labels.losses import soft_cross_entropy
from nml.estimators.noisy_labels.views import FeatureViews, ViewSource, all_clean

log = logging.getLogger("nml.estimators.noisy_labels.two_networks")

N_HEADS = 2


# ---------------------------------------------------------------------------------------------
# the pieces of the MixMatch step
# ---------------------------------------------------------------------------------------------
def sharpen(p: torch.Tensor, temperature: float) -> torch.Tensor:
    """``p^(1/T)`` renormalised over the last axis (MixMatch's sharpening; T = 1 leaves p)."""
    p = p.clamp_min(0.0).pow(1.0 / temperature)
    return p / p.sum(-1, keepdim=True)


def mixup(inputs: torch.Tensor, targets: torch.Tensor, lam: float,
          perm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """MixMatch's MixUp: ``λ' x + (1 − λ') x[perm]`` for inputs and targets, ``λ' = max(λ, 1 − λ)``.

    ``λ' ≥ 1/2`` keeps each mixed row closer to its own sample, so the first rows stay
    "labeled" and the last "unlabeled" after mixing. Every output row is a convex combination
    of two input rows (and of two target rows, so mixed targets still sum to 1).
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam!r}")
    lam = max(lam, 1.0 - lam)
    return lam * inputs + (1.0 - lam) * inputs[perm], lam * targets + (1.0 - lam) * targets[perm]


def linear_rampup(progress: float, warmup_epochs: int, length: int) -> float:
    """Weight in [0, 1] of the unlabeled loss at fractional epoch ``progress`` (DivideMix's ramp).

    0 at the first post-warm-up step (``progress = warmup_epochs``), rising linearly to 1 over
    ``length`` epochs.
    """
    return float(np.clip((progress - warmup_epochs) / max(length, 1), 0.0, 1.0))


def uniform_prior_penalty(logits: torch.Tensor) -> torch.Tensor:
    """DivideMix's regulariser ``Σ_c π_c log(π_c / p̄_c)``, π uniform, p̄ = batch-mean softmax.

    Zero when the batch's mean prediction is uniform; keeps a head from assigning every
    (mixed) sample to one class.
    """
    n_classes = logits.shape[1]
    prior = torch.full((n_classes,), 1.0 / n_classes, device=logits.device)
    mean_pred = F.softmax(logits, dim=1).mean(0)
    return torch.sum(prior * torch.log(prior / mean_pred.clamp_min(1e-12)))


@torch.no_grad()
def refine_labels(head: nn.Module, views: Sequence[torch.Tensor], onehot: torch.Tensor, w: torch.Tensor,
                  temperature: float) -> torch.Tensor:
    """Label refinement of labeled samples: ``sharpen(w·onehot + (1 − w)·p̄)``.

    ``p̄`` is the mean softmax of ``head`` (the head being trained) over the views; ``w`` (B,)
    is how clean each label is believed to be. No gradient.
    """
    p = torch.stack([F.softmax(head(v), dim=1) for v in views]).mean(0)
    return sharpen(w[:, None] * onehot + (1.0 - w[:, None]) * p, temperature)


@torch.no_grad()
def co_guess(heads: Sequence[nn.Module], views: Sequence[torch.Tensor], temperature: float) -> torch.Tensor:
    """Co-guessed targets of unlabeled samples: mean softmax of every head over every view, sharpened."""
    p = torch.stack([F.softmax(h(v), dim=1) for h in heads for v in views]).mean(0)
    return sharpen(p, temperature)


def mixmatch_loss(head: nn.Module, x_inputs: Sequence[torch.Tensor], x_targets: torch.Tensor,
                  u_inputs: Sequence[torch.Tensor], u_targets: torch.Tensor | None, *, lam: float,
                  perm: torch.Tensor, lambda_u: float) -> tuple[torch.Tensor, dict[str, float]]:
    """The MixMatch loss of one batch: ``L_x + lambda_u·L_u + L_reg``.

    Parameters
    ----------
    head : the classifier being trained.
    x_inputs : views of the labeled batch (each (B_x, D)); every view gets ``x_targets`` (B_x, C).
    u_inputs : views of the unlabeled batch (each (B_u, D), possibly empty) with ``u_targets``.
    lam, perm : MixUp coefficient (before ``max(λ, 1 − λ)``) and a permutation of all rows.
    lambda_u : weight of the unlabeled term (already ramped).

    All rows (labeled then unlabeled) are mixed with ``perm`` by :func:`mixup`; ``L_x`` is the
    soft cross-entropy on the mixed labeled rows, ``L_u`` the mean squared error between the
    softmax and the mixed targets on the mixed unlabeled rows (0 without unlabeled rows) and
    ``L_reg`` :func:`uniform_prior_penalty` on all mixed rows. Targets carry no gradient.
    """
    inputs = torch.cat([*x_inputs, *u_inputs])
    parts = [x_targets] * len(x_inputs) + ([u_targets] * len(u_inputs) if u_targets is not None else [])
    targets = torch.cat(parts).detach()
    if len(perm) != len(inputs):
        raise ValueError(f"perm has {len(perm)} entries for {len(inputs)} rows")
    mixed_x, mixed_t = mixup(inputs, targets, lam, perm)
    logits = head(mixed_x)
    n_x = sum(len(v) for v in x_inputs)
    loss_x = soft_cross_entropy(logits[:n_x], mixed_t[:n_x])
    if len(logits) > n_x:
        loss_u = torch.mean((F.softmax(logits[n_x:], dim=1) - mixed_t[n_x:]) ** 2)
    else:
        loss_u = logits.new_zeros(())
    penalty = uniform_prior_penalty(logits)
    loss = loss_x + lambda_u * loss_u + penalty
    return loss, {"loss_x": float(loss_x.detach()), "loss_u": float(loss_u.detach()),
                  "penalty": float(penalty.detach()), "lambda_u": float(lambda_u)}


# ---------------------------------------------------------------------------------------------
# the estimator
# ---------------------------------------------------------------------------------------------
@dataclass
class HeadDivision:
    """The training set of one head in one epoch: labeled samples (with clean weights) and the rest."""

    labeled: np.ndarray  # int64 indices
    weights: np.ndarray  # (len(labeled),) w in [0, 1] of label refinement
    unlabeled: np.ndarray  # int64 indices


# the hyper-parameters both two-network methods share, as scikit-learn constraints checked at fit
# (with one across parameters, warmup_epochs < epochs: TwoNetworkLP._validate_params)
TWO_NETWORK_CONSTRAINTS: dict[str, list[Any]] = {
    **OPTIM_CONSTRAINTS,
    "epochs": [Interval(Integral, 2, None, closed="left")],
    "warmup_epochs": [POSITIVE_INT],
    "alpha": [POSITIVE],
    "temperature": [Interval(Real, 0, 1, closed="right")],
    "lambda_u": [NON_NEGATIVE],
    "standardize": ["boolean"],
}


def _cycling_batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Shuffled batches of ``range(n)``, reshuffled every time the set is exhausted (n >= 1)."""
    while True:
        yield from shuffled_batches(n, batch_size, generator)


class TwoNetworkLP(NMLTransformerMixin, NoisyLabelClassifier):
    """Base of :class:`~nml.estimators.noisy_labels.dividemix.DivideMixLP` and :class:`~nml.estimators.noisy_labels.unicon.UniconLP`.

    Subclasses define ``__init__`` (every parameter stored verbatim, sklearn-style), their
    ``_parameter_constraints`` (:data:`TWO_NETWORK_CONSTRAINTS` and their own) and
    :meth:`_divide`; they may extend :meth:`_build_extra` and :meth:`_extra_loss`.

    Training (``fit``)
    ------------------
    1. The view source: a feature matrix (N, D) or a view bank (N, V, D) is wrapped in
       :class:`FeatureViews`; any :class:`ViewSource` (e.g. :class:`EncoderViews`) is used as is.
       The un-augmented features ``all_clean(source)`` are read once: the encoder is frozen, so
       they are the same every epoch and serve every division (both heads) and the
       standardisation statistics (mean/std, applied to every view the heads read).
    2. ``torch.manual_seed(seed)``, then head 1 and head 2 are built one after the other
       (``nn.Linear(D, C)``, so they start from different weights), then the subclass's extra
       modules. One optimiser per head (its extra modules included); learning rate on a
       cosine schedule to zero over all epochs, set per step at fractional epoch
       ``epoch + b / n_batches`` (the post-warm-up epoch length depends on the division).
    3. ``warmup_epochs`` epochs of cross-entropy on all samples, one augmented view per sample,
       for each head.
    4. Then every epoch: the subclass divides the training set (one :class:`HeadDivision` per
       head), and each head runs one semi-supervised epoch over its labeled set: per labeled
       batch one unlabeled batch (same ``batch_size``) from the shuffled unlabeled set,
       restarted with a fresh shuffle when exhausted (the epoch length is that of the labeled
       set, as in DivideMix). Per batch: 2 augmented views of every sample, label refinement
       (:func:`refine_labels`, the head being trained), co-guessing (:func:`co_guess`, both
       heads), then :func:`mixmatch_loss` with λ ~ Beta(α, α) and ``lambda_u`` ramped by
       :func:`linear_rampup` from 0 over the post-warm-up epochs. On frozen features the mixing
       is MixUp at the classifier input. A head whose labeled set has fewer than 2 samples
       skips the epoch (a warning is logged); an empty unlabeled set leaves ``L_u = 0``.

    Randomness: head ``k`` (0 or 1) draws batch orders, views and MixUp permutations from
    ``epoch_generator(seed + k, epoch)`` and λ from a numpy generator seeded from it; nothing
    else draws from a global RNG after the modules are built, so the same seed gives the same
    fit.

    The logits are the log of the average of both heads' softmaxes (DivideMix's test-time rule),
    so ``predict_proba`` is that average (and, for two classes, ``decision_function`` its
    log-odds).
    """

    TUNING_PHASES = ("warmup", "train")  # the whole training of an LP baseline is its tuning phase

    # UNICON mixes two fresh views of each sample (its "strong" augmentations) instead of the
    # two it used for label refinement / co-guessing (DivideMix).
    _fresh_mix_views = False

    # ------------------------------------------------------------------ validation
    def _validate_params(self) -> None:
        """The declarative constraints, then the one across parameters: warmup_epochs < epochs."""
        super()._validate_params()
        if self.warmup_epochs >= self.epochs:
            raise ValueError(f"warmup_epochs must be an integer in [1, epochs - 1] = [1, {self.epochs - 1}] "
                             f"(at least one warm-up epoch before the first division, and at least one "
                             f"semi-supervised epoch after it), got {self.warmup_epochs!r}")

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True  # a view bank (N, V, D)
        return tags

    def _view_source(self, X: Any, y: Any) -> tuple[ViewSource, np.ndarray]:
        """The views of ``fit``'s X and the validated y: a :class:`ViewSource` as is, a view bank
        (an (N, V, D) array or tensor) and a feature matrix (anything else, through
        ``validate_data``) as :class:`FeatureViews`. Records ``n_features_in_`` = D."""
        if isinstance(X, ViewSource) and not isinstance(X, (np.ndarray, torch.Tensor)):
            if not isinstance(X.n, (int, np.integer)) or X.n < 1:
                raise ValueError(f"X (a view source) must hold at least one sample, got n={X.n!r}")
            source, y = X, self._validate_targets(y, X.n)
        elif getattr(X, "ndim", None) == 3:  # an array or tensor
            source = FeatureViews(check_features(X))
            y = self._validate_targets(y, source.n)
        else:
            X, y = validate_data(self, X, y, dtype=np.float32)
            return FeatureViews(X), y
        self._set_input_width(source.dim)
        return source, y

    # ------------------------------------------------------------------ subclass hooks
    def _divide(self, heads: list[nn.Linear], clean: torch.Tensor, y: torch.Tensor,
                epoch: int) -> list[HeadDivision]:  # pragma: no cover - subclasses
        """The training set of head 0 and head 1 for ``epoch``; records what it selected."""
        raise NotImplementedError

    def _build_extra(self, dim: int, device: torch.device) -> list[nn.Module | None]:
        """Extra trainable modules of each network (None: just the head)."""
        return [None] * N_HEADS

    def _extra_loss(self, k: int, extra: nn.Module | None, u_mix_views: list[torch.Tensor]) -> torch.Tensor | None:
        """An extra loss term of network ``k`` on the unlabeled batch's mixing views (None: none)."""
        return None

    def _begin_train_epoch(self, epoch: int) -> None:
        """Called before the heads' semi-supervised epochs of ``epoch``."""

    def _end_train_epoch(self, epoch: int) -> None:
        """Called after the heads' semi-supervised epochs of ``epoch``."""

    # ------------------------------------------------------------------ training
    def _views(self, source: ViewSource, idx: torch.Tensor, generator: torch.Generator, device: torch.device,
               n_views: int) -> list[torch.Tensor]:
        """``n_views`` augmented, standardised views of samples ``idx`` (each (B, D), on ``device``)."""
        return [self._standardise(source.augmented(idx, generator).float().to(device)) for _ in range(n_views)]

    def _standardise(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self._mean_t) / self._scale_t

    def _set_lr(self, opt: torch.optim.Optimizer, progress: float) -> None:
        lr = self._lr_at(progress)
        for group in opt.param_groups:
            group["lr"] = lr

    def _warmup_head(self, k: int, head: nn.Linear, opt: torch.optim.Optimizer, source: ViewSource,
                     y: torch.Tensor, epoch: int, device: torch.device) -> None:
        """One epoch of cross-entropy on every sample (one augmented view each) for head ``k``."""
        gen = epoch_generator(self.seed + k, epoch)
        batches = list(shuffled_batches(source.n, self.batch_size, gen))
        for b, idx in enumerate(batches):
            self._set_lr(opt, epoch + b / len(batches))
            (xv,) = self._views(source, idx, gen, device, 1)
            loss = F.cross_entropy(head(xv), y[idx.to(device)])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def _train_head(self, k: int, heads: list[nn.Linear], extras: list[nn.Module | None],
                    opt: torch.optim.Optimizer, source: ViewSource, y: torch.Tensor, division: HeadDivision,
                    epoch: int, device: torch.device) -> None:
        """One semi-supervised (MixMatch) epoch of head ``k`` over ``division``."""
        if len(division.labeled) < 2:
            log.warning("epoch %d: head %d has %d labeled sample(s); skipping its semi-supervised epoch",
                        epoch, k + 1, len(division.labeled))
            return
        head, n_classes = heads[k], heads[k].out_features
        gen = epoch_generator(self.seed + k, epoch)
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=gen)))
        labeled = torch.as_tensor(division.labeled, dtype=torch.int64)
        weights = torch.as_tensor(division.weights, dtype=torch.float32).to(device)
        unlabeled = torch.as_tensor(division.unlabeled, dtype=torch.int64)
        batches = list(shuffled_batches(len(labeled), self.batch_size, gen))
        u_batches = _cycling_batches(len(unlabeled), self.batch_size, gen) if len(unlabeled) else None
        for b, pos in enumerate(batches):
            progress = epoch + b / len(batches)
            self._set_lr(opt, progress)
            idx = labeled[pos]
            u_idx = unlabeled[next(u_batches)] if u_batches is not None else None
            x_views = self._views(source, idx, gen, device, 2)
            u_views = self._views(source, u_idx, gen, device, 2) if u_idx is not None else []
            onehot = F.one_hot(y[idx.to(device)], n_classes).float()
            x_targets = refine_labels(head, x_views, onehot, weights[pos.to(device)], self.temperature)
            u_targets = co_guess(heads, u_views, self.temperature) if u_views else None
            if self._fresh_mix_views:
                x_mix = self._views(source, idx, gen, device, 2)
                u_mix = self._views(source, u_idx, gen, device, 2) if u_idx is not None else []
            else:
                x_mix, u_mix = x_views, u_views
            lam = float(rng.beta(self.alpha, self.alpha))
            perm = torch.randperm(sum(len(v) for v in x_mix + u_mix), generator=gen).to(device)
            ramp = linear_rampup(progress, self.warmup_epochs, self.epochs - self.warmup_epochs)
            loss, _ = mixmatch_loss(head, x_mix, x_targets, u_mix, u_targets, lam=lam, perm=perm,
                                    lambda_u=self.lambda_u * ramp)
            extra = self._extra_loss(k, extras[k], u_mix) if u_mix else None
            if extra is not None:
                loss = loss + extra
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any, eval_set: tuple | None = None, val_set: tuple | None = None) -> TwoNetworkLP:
        """Train both heads on ``X`` (features (N, D), a view bank (N, V, D) or a ViewSource) and ``y``.

        ``eval_set=(X_test, y_test)`` / ``val_set=(X_val, y_val)``: un-augmented test / validation
        features (N, D); the accuracy of the averaged heads on each is recorded after every epoch
        (phase ``warmup`` then ``train``).
        """
        source, y = self._view_source(X, y)
        y_idx = self._encode_labels(y)
        device = self._device()
        n_classes = len(self.classes_)
        with torch.enable_grad():
            self._begin()
            clean = all_clean(source).float().cpu()
            if clean.ndim != 2 or clean.shape != (source.n, source.dim) or source.dim == 0:
                raise ValueError(f"the un-augmented features of X must be (N={source.n}, D={source.dim}), got shape "
                                 f"{tuple(clean.shape)}")
            if not torch.isfinite(clean).all():
                raise ValueError("X contains NaN or inf (its un-augmented features are not finite)")
            dim = clean.shape[1]
            if self.standardize:
                self.mean_ = clean.mean(0).numpy()
                self.scale_ = clean.std(0, unbiased=False).numpy() + 1e-6
            else:
                self.mean_ = np.zeros(dim, np.float32)
                self.scale_ = np.ones(dim, np.float32)
            self._mean_t = torch.from_numpy(self.mean_).to(device)
            self._scale_t = torch.from_numpy(self.scale_).to(device)
            clean_std = self._standardise(clean.to(device))
            yt = torch.from_numpy(y_idx).to(device)

            torch.manual_seed(self.seed)
            heads = [nn.Linear(dim, n_classes).to(device) for _ in range(N_HEADS)]
            extras = self._build_extra(dim, device)
            cfg = OptimConfig(epochs=self.epochs, batch_size=self.batch_size, optimizer=self.optimizer,
                              lr=self.lr, weight_decay=self.weight_decay, momentum=self.momentum)
            opts = [make_optimizer(list(heads[k].parameters())
                                   + (list(extras[k].parameters()) if extras[k] is not None else []), cfg)
                    for k in range(N_HEADS)]
            self._lr_at = cosine_lr(self.lr, self.epochs)
            self.division_: list[dict[str, Any]] = []

            for epoch in range(self.warmup_epochs):
                for k in range(N_HEADS):
                    self._warmup_head(k, heads[k], opts[k], source, yt, epoch, device)
                self._store_heads(heads)
                self._evaluate("warmup", epoch, eval_set, self.predict, val_set)

            for epoch in range(self.warmup_epochs, self.epochs):
                with torch.no_grad():
                    divisions = self._divide(heads, clean_std, yt, epoch)
                self._begin_train_epoch(epoch)
                for k in range(N_HEADS):
                    self._train_head(k, heads, extras, opts[k], source, yt, divisions[k], epoch, device)
                self._end_train_epoch(epoch)
                self._store_heads(heads)
                self._evaluate("train", epoch, eval_set, self.predict, val_set)
            del self._mean_t, self._scale_t, self._lr_at
            self._finish()
        return self

    def _store_heads(self, heads: list[nn.Linear]) -> None:
        self.coef_ = np.stack([h.weight.detach().cpu().numpy() for h in heads]).copy()
        self.intercept_ = np.stack([h.bias.detach().cpu().numpy() for h in heads]).copy()

    # ------------------------------------------------------------------ inference
    def transform(self, X: Any) -> np.ndarray:
        """The (standardised) features the heads read; X is an un-augmented feature matrix (N, D)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float32, reset=False)
        return (X - self.mean_) / self.scale_

    def head_log_proba(self, X: Any) -> np.ndarray:
        """(2, N, C) log-softmax of each head on features X (N, D)."""
        z = self.transform(X).astype(np.float64)
        logits = np.einsum("nd,kcd->knc", z, self.coef_.astype(np.float64)) + self.intercept_[:, None, :]
        logits -= logits.max(-1, keepdims=True)
        return logits - np.log(np.exp(logits).sum(-1, keepdims=True))

    def _logits(self, X: Any) -> np.ndarray:
        """(N, C) log of the average of both heads' softmaxes (DivideMix's test-time ensemble)."""
        log_p = self.head_log_proba(X)
        return np.logaddexp(log_p[0], log_p[1]) - np.log(2.0)
