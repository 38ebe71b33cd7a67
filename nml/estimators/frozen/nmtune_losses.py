"""The three NMTune regularisers on a batch of tuned features z = h(f), and their sum with CE.

All functions take torch tensors of shape (M, D) — M rows, D feature dimensions — and return
0-dim tensors that autograd differentiates. With the authors' two-view loop the batch holds the
weak view's rows then the strong view's rows (M = 2B); with one view, M = B. Every function also
takes a stack of K batches, (K, M, D), and returns the K per-batch values: that is how K heads
trained as one (:mod:`nml.estimators.frozen.stacked`) each get their own loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_EPS = 1e-12  # F.normalize's default: a zero row stays zero instead of becoming NaN
CONSISTENCY_REDUCTIONS = ("mean", "sum")


def consistency_loss(z: torch.Tensor, f: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """L_MSE: keep the direction of each tuned feature close to the pre-trained one.

    With ``ẑ_b = z_b/‖z_b‖`` and ``f̂_b = f_b/‖f_b‖`` (Euclidean norms per row; the anchor ``f``
    is detached, so no gradient flows into it):

    * ``reduction="mean"`` — the authors' code: ``torch.nn.MSELoss()`` between the two, i.e.
      ``(1/(B·D)) Σ_b Σ_d (ẑ_bd − f̂_bd)²``, the mean over all ``B·D`` elements;
    * ``reduction="sum"`` — the paper's formula: ``(1/B) Σ_b ‖ẑ_b − f̂_b‖²``, summed over the
      ``D`` dimensions (``D`` times the "mean" value).

    Per row ``‖ẑ_b − f̂_b‖² = 2 − 2·cos(z_b, f_b)``, so the "sum" value lies in [0, 4] and is 0
    iff every ``z_b`` is a positive multiple of ``f_b``.
    """
    if reduction not in CONSISTENCY_REDUCTIONS:
        raise ValueError(f"reduction must be one of {list(CONSISTENCY_REDUCTIONS)}, got {reduction!r}")
    if z.shape != f.shape:
        raise ValueError(f"z and f must have the same shape, got {tuple(z.shape)} and {tuple(f.shape)}")
    zn = F.normalize(z, dim=-1, eps=_EPS)
    fn = F.normalize(f.detach(), dim=-1, eps=_EPS)
    squared = (zn - fn).pow(2)
    return squared.mean((-2, -1)) if reduction == "mean" else squared.sum(-1).mean(-1)


def covariance_loss(z: torch.Tensor) -> torch.Tensor:
    """L_COV: decorrelate the feature dimensions.

    With ``C = (z − mean_m z)ᵀ (z − mean_m z) / (M − 1)`` the unbiased (D, D) covariance of the
    batch (centred over its M rows), returns ``(1/D) Σ_{i≠j} C_ij²``, as in the authors' code and
    VICReg. Needs M >= 2.
    """
    m, d = z.shape[-2:]
    if m < 2:
        raise ValueError(f"covariance_loss needs a batch of at least 2 samples, got {m}")
    zc = z - z.mean(-2, keepdim=True)
    cov = zc.mT @ zc / (m - 1)
    off = cov - torch.diag_embed(torch.diagonal(cov, dim1=-2, dim2=-1))
    return off.pow(2).sum((-2, -1)) / d


def dominant_singular_value_loss(z: torch.Tensor, top_k: int = 1) -> torch.Tensor:
    """L_SVD: reward a dominant top of the spectrum.

    With σ the singular values of the batch matrix z as it is (not centred;
    ``torch.linalg.svdvals``, descending), returns ``−(1/k) Σ_{i<k} σ_i / Σ_j σ_j`` where
    ``k = min(top_k, len(σ))`` and the sum is clamped below at 1e-8: ``top_k=1`` is the paper's
    −σ1/Σσ; ``top_k=5`` is the authors' code (the mean of the top five normalised values). The
    value lies in [−1, 0); it is −1 iff z has rank 1 (for top_k=1).
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    sigma = torch.linalg.svdvals(z)
    k = min(int(top_k), sigma.shape[-1])
    return -sigma[..., :k].mean(-1) / sigma.sum(-1).clamp_min(1e-8)


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of (M, C) logits against (M,) labels — or of each of K stacked batches,
    (K, M, C) and (K, M) -> (K,)."""
    if logits.ndim == 2:
        return F.cross_entropy(logits, y)
    per_row = F.cross_entropy(logits.flatten(0, -2), y.flatten(), reduction="none")
    return per_row.view(y.shape).mean(-1)


def nmtune_terms(
    logits: torch.Tensor,
    y: torch.Tensor,
    z: torch.Tensor,
    f: torch.Tensor,
    w_consistency: float,
    w_covariance: float,
    w_dominant_sv: float,
    svd_top_k: int = 1,
    consistency_reduction: str = "sum",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The NMTune objective on one batch, or on each of K stacked batches.

    Parameters
    ----------
    logits, y : (M, C) classifier outputs on every row of ``z`` and their labels (M,).
    z : (M, D) tuned features of the whole batch. With the authors' two views, M = 2B: the weak
        view's rows, then the strong view's rows.
    f : (B, D) frozen features the consistency term anchors to — the weak view's ``f``. The
        consistency term compares them with the *last* B rows of ``z`` (the strong view; with one
        view, ``z`` itself).
    w_consistency, w_covariance, w_dominant_sv : the weights of the three terms.
    svd_top_k, consistency_reduction : see :func:`dominant_singular_value_loss` and
        :func:`consistency_loss`.

    Every array may carry a leading dimension K (K heads trained as one); the values are then
    per head.

    ``total = CE(logits, y) + w_consistency·L_MSE(z[-B:], f) + w_covariance·L_COV(z)
    + w_dominant_sv·L_SVD(z)``: cross-entropy is the mean over all M rows (both views, labels
    repeated), covariance and SVD are taken on the whole M-row batch — all as in the authors'
    loop. A term whose weight is 0 is not computed (no SVD when ``w_dominant_sv == 0``) and
    left out of ``parts``.

    Returns
    -------
    total : tensor to back-propagate (0-dim, or (K,)).
    parts : the *unweighted* values of the computed terms, ``"ce"`` first (tensors shaped as total).
    """
    b = f.shape[-2]
    if z.shape[-2] % b != 0:
        raise ValueError(f"z must hold a whole number of views of the {b}-row batch, got {z.shape[-2]} rows")
    ce = cross_entropy(logits, y)
    total = ce
    parts: dict[str, torch.Tensor] = {"ce": ce}
    if w_consistency:
        parts["consistency"] = consistency_loss(z[..., -b:, :], f, consistency_reduction)
        total = total + w_consistency * parts["consistency"]
    if w_covariance:
        parts["covariance"] = covariance_loss(z)
        total = total + w_covariance * parts["covariance"]
    if w_dominant_sv:
        parts["dominant_sv"] = dominant_singular_value_loss(z, svd_top_k)
        total = total + w_dominant_sv * parts["dominant_sv"]
    return total, parts


def nmtune_loss(
    logits: torch.Tensor,
    y: torch.Tensor,
    z: torch.Tensor,
    f: torch.Tensor,
    w_consistency: float,
    w_covariance: float,
    w_dominant_sv: float,
    svd_top_k: int = 1,
    consistency_reduction: str = "sum",
) -> tuple[torch.Tensor, dict[str, float]]:
    """The NMTune objective on one (M, D) batch (:func:`nmtune_terms`), its parts as floats.

    Returns
    -------
    total : 0-dim tensor to back-propagate.
    parts : ``{"ce", "consistency", "covariance", "dominant_sv"}`` — the *unweighted* batch
        values of each term as Python floats (0.0 for a term whose weight is 0).
    """
    total, terms = nmtune_terms(logits, y, z, f, w_consistency, w_covariance, w_dominant_sv, svd_top_k,
                                consistency_reduction)
    # one device->host copy for all parts instead of one sync per term
    values = torch.stack([t.detach() for t in terms.values()]).cpu().tolist()
    parts = {"ce": 0.0, "consistency": 0.0, "covariance": 0.0, "dominant_sv": 0.0}
    parts.update(zip(terms, values, strict=True))
    return total, parts
