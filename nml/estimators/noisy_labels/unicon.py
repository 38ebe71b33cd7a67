"""UNICON with linear probing: uniform (class-balanced) JSD selection, MixMatch, and a contrastive term."""

from __future__ import annotations

from numbers import Real
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval
from torch import nn

from nml.estimators._base import NON_NEGATIVE, POSITIVE, POSITIVE_INT
from nml.estimators.noisy_labels.two_networks import (
    TWO_NETWORK_CONSTRAINTS,
    HeadDivision,
    TwoNetworkLP,
)


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Row-wise Jensen–Shannon divergence in bits (log base 2), so every value is in [0, 1].

    ``JSD(p, q) = ½ KL(p ‖ m) + ½ KL(q ‖ m)``, ``m = (p + q) / 2``, with ``0 log 0 = 0``: 0 for
    identical rows, 1 for rows with disjoint support (a confident wrong prediction against a
    one-hot label).
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.shape != q.shape or p.ndim != 2:
        raise ValueError(f"p and q must be (N, C) arrays of the same shape, got {p.shape} and {q.shape}")
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> np.ndarray:
        ratio = np.divide(a, m, out=np.ones_like(a), where=a > 0)
        return np.sum(np.where(a > 0, a * np.log2(ratio), 0.0), axis=1)

    return np.clip(0.5 * kl(p) + 0.5 * kl(q), 0.0, 1.0)


def selection_cutoff(d: np.ndarray, d_mu: float, tau: float) -> float:
    """UNICON's JSD cut-off: ``d_avg`` if ``d_avg <= d_mu``, else ``d_avg − (d_avg − d_min) / tau``.

    When the average divergence is high (much noise, or a poorly fitted model) the cut-off is
    moved towards the smallest divergence, which makes the selection stricter.
    """
    d_avg, d_min = float(np.mean(d)), float(np.min(d))
    return d_avg - (d_avg - d_min) / tau if d_avg > d_mu else d_avg


def uniform_selection(d: np.ndarray, labels: np.ndarray, n_classes: int, *, d_mu: float,
                      tau: float) -> tuple[np.ndarray, float, float]:
    """UNICON's uniform selection: the same number of lowest-divergence samples from every class.

    ``R`` = fraction of samples with ``d <= cutoff`` (:func:`selection_cutoff`); every class
    ``c`` contributes its ``round(R·N/C)`` samples with the smallest ``d`` (all of them if it
    has fewer). Returns the (N,) boolean mask, ``R`` and the cut-off.
    """
    d = np.asarray(d, dtype=np.float64)
    labels = np.asarray(labels)
    cutoff = selection_cutoff(d, d_mu, tau)
    ratio = float(np.mean(d <= cutoff))
    per_class = int(round(ratio * len(d) / n_classes))
    selected = np.zeros(len(d), dtype=bool)
    for c in range(n_classes):
        members = np.flatnonzero(labels == c)
        selected[members[np.argsort(d[members], kind="stable")[:per_class]]] = True
    return selected, ratio, cutoff


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent loss of two views (B, P) of the same B samples (UNICON's unsupervised term).

    Rows are L2-normalised; each of the 2B rows must pick its other view among the 2B − 1 others
    by cosine similarity / ``temperature``. (SupCon's loss without labels, with
    ``base_temperature = temperature``.)
    """
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = len(z1)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, positives)


def projection_head(dim: int, proj_dim: int) -> nn.Sequential:
    """UNICON's projection head on the encoder's features: Linear(D, D) → ReLU → Linear(D, proj_dim)."""
    return nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, proj_dim))


class UniconLP(TwoNetworkLP):
    """UNICON (Karim et al., CVPR 2022, "UNICON: Combating Label Noise Through Uniform Selection
    and Contrastive Learning") in linear-probing mode, as the TURN paper ran it.

    Two linear heads on the frozen, standardised features, the warm-up and the MixMatch step
    of :class:`~nml.estimators.noisy_labels.dividemix.DivideMixLP` (shared code:
    :class:`~nml.estimators.noisy_labels.two_networks.TwoNetworkLP`), with UNICON's two changes:

    1. **Uniform selection** instead of DivideMix's GMM. Every post-warm-up epoch, the
       Jensen–Shannon divergence (log base 2, in [0, 1]) ``d_i = JSD(p_i, onehot(y_i))``
       between the average softmax ``p_i`` of the two heads on the un-augmented feature and
       the given label. Cut-off as in UNICON's code: ``d_cut = d_avg`` if ``d_avg <= d_mu``,
       else ``d_avg − (d_avg − d_min)/tau`` (stricter when the average divergence is high);
       ``R`` = fraction of samples with ``d <= d_cut``; every class contributes its
       ``round(R·N/C)`` lowest-divergence samples (all of them if it has fewer): a
       class-balanced labeled set; the rest is unlabeled. One selection per epoch serves both
       heads (UNICON's code recomputes the divergences between training network 1 and network
       2; here that would only reflect one epoch of one linear head). Label refinement of the
       selected samples uses UNICON's weights: ``w = 1 − d``, raised to 1 where ``d < 0.5``,
       in ``t = sharpen(w·onehot(y) + (1 − w)·p̄)``.
    2. **Contrastive term.** Each network also has a projection head P (Linear(D, D) → ReLU →
       Linear(D, ``proj_dim``)) trained with SimCLR's NT-Xent loss (temperature
       ``contrastive_temperature``) on two augmented views of the unlabeled batch, weight
       ``lambda_c``. As in UNICON, labeled and unlabeled samples are mixed from two *other*
       augmented views than the two used for refinement and co-guessing, and the contrastive
       term reads the unlabeled batch's mixing views.

    What the contrastive term does in LP mode, honestly: the encoder is frozen and the
    classifier is linear on its features, so the contrastive gradient reaches only the
    projection head, which the classifier never reads. The term adds the cost UNICON pays —
    4 augmented views per visited sample and head, i.e. ~8 encoder feed-forwards per sample
    per epoch with :class:`~nml.estimators.noisy_labels.views.EncoderViews` — without changing the
    classifier's predictions: with the same seed, ``lambda_c=0`` gives bit-identical heads
    (the views are drawn in both cases). In LP mode what acts on the predictions is the
    uniform selection and the semi-supervised MixMatch step.

    Parameters
    ----------
    epochs, warmup_epochs, batch_size, optimizer, lr, weight_decay, momentum, alpha,
    temperature, lambda_u, standardize, seed, device : as :class:`~nml.estimators.noisy_labels.dividemix.DivideMixLP`.
    d_mu : average divergence above which the cut-off is made stricter, in [0, 1] (0.7).
    tau : how far the stricter cut-off moves from ``d_avg`` towards ``d_min`` (>= 1; 5).
    lambda_c : weight of the contrastive loss (>= 0; UNICON: 0.025).
    proj_dim : output width of the projection head (128).
    contrastive_temperature : NT-Xent temperature (> 0; 0.5).

    Fitted attributes
    -----------------
    classes_, n_features_in_, coef_ (2, C, D), intercept_ (2, C), mean_, scale_, history_,
    fit_seconds_ : as :class:`~nml.estimators.noisy_labels.dividemix.DivideMixLP`.
    division_ : one dict per post-warm-up epoch: ``epoch``, ``jsd`` (N,), ``selected`` (N,)
        bool (the labeled set of both heads), ``ratio`` (R) and ``cutoff`` (d_cut).
    contrastive_curve_ : mean NT-Xent loss of the projection heads per post-warm-up epoch
        (over both networks' batches; NaN for an epoch without unlabeled batches).
    """

    _fresh_mix_views = True
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **TWO_NETWORK_CONSTRAINTS,
        "d_mu": [Interval(Real, 0, 1, closed="both")],
        "tau": [Interval(Real, 1, np.inf, closed="left")],
        "lambda_c": [NON_NEGATIVE],
        "proj_dim": [POSITIVE_INT],
        "contrastive_temperature": [POSITIVE],
    }

    def __init__(self, epochs: int = 20, warmup_epochs: int = 5, batch_size: int = 128, optimizer: str = "adamw",
                 lr: float = 1e-3, weight_decay: float = 1e-5, momentum: float = 0.9, d_mu: float = 0.7,
                 tau: float = 5.0, alpha: float = 4.0, temperature: float = 0.5, lambda_u: float = 25.0,
                 lambda_c: float = 0.025, proj_dim: int = 128, contrastive_temperature: float = 0.5,
                 standardize: bool = False, seed: int = 0, device: str = "cpu"):
        self.epochs = epochs
        self.warmup_epochs = warmup_epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.momentum = momentum
        self.d_mu = d_mu
        self.tau = tau
        self.alpha = alpha
        self.temperature = temperature
        self.lambda_u = lambda_u
        self.lambda_c = lambda_c
        self.proj_dim = proj_dim
        self.contrastive_temperature = contrastive_temperature
        self.standardize = standardize
        self.seed = seed
        self.device = device

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any, eval_set: tuple | None = None, val_set: tuple | None = None) -> UniconLP:
        self.contrastive_curve_: list[float] = []
        return super().fit(X, y, eval_set, val_set)

    # ------------------------------------------------------------------ hooks
    def _build_extra(self, dim: int, device: torch.device) -> list[nn.Module | None]:
        return [projection_head(dim, self.proj_dim).to(device) for _ in range(2)]

    def _extra_loss(self, k: int, extra: nn.Module | None, u_mix_views: list[torch.Tensor]) -> torch.Tensor | None:
        loss = nt_xent(extra(u_mix_views[0]), extra(u_mix_views[1]), self.contrastive_temperature)
        self._contrastive_sum += float(loss.detach())
        self._contrastive_batches += 1
        return self.lambda_c * loss

    def _begin_train_epoch(self, epoch: int) -> None:
        self._contrastive_sum, self._contrastive_batches = 0.0, 0

    def _end_train_epoch(self, epoch: int) -> None:
        n = self._contrastive_batches
        self.contrastive_curve_.append(self._contrastive_sum / n if n else float("nan"))
        del self._contrastive_sum, self._contrastive_batches

    def _divide(self, heads: list[nn.Linear], clean: torch.Tensor, y: torch.Tensor,
                epoch: int) -> list[HeadDivision]:
        p = torch.stack([F.softmax(h(clean), dim=1) for h in heads]).mean(0).cpu().double().numpy()
        labels = y.cpu().numpy()
        n_classes = p.shape[1]
        d = jensen_shannon(p, np.eye(n_classes)[labels])
        selected, ratio, cutoff = uniform_selection(d, labels, n_classes, d_mu=self.d_mu, tau=self.tau)
        self.division_.append({"epoch": int(epoch), "jsd": d, "selected": selected, "ratio": ratio,
                               "cutoff": cutoff})
        labeled = np.flatnonzero(selected)
        weights = np.where(d[labeled] < 0.5, 1.0, 1.0 - d[labeled]).astype(np.float32)
        division = HeadDivision(labeled=labeled, weights=weights, unlabeled=np.flatnonzero(~selected))
        return [division, division]
