"""The three NMTune regularisers on a batch of tuned features z = h(f), and their sum with CE.

All functions take torch tensors of shape (B, D) — B samples, D feature dimensions — and return
0-dim tensors that autograd differentiates.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_EPS = 1e-8


def consistency_loss(z: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """L_MSE: keep the direction of each tuned feature close to the pre-trained one.

    Computes ``mean_b ‖ z_b/‖z_b‖ − f_b/‖f_b‖ ‖²`` (Euclidean norms per row, each norm clamped
    below at 1e-8 so all-zero rows give 0 rather than NaN). Equals ``2 − 2·cos(z_b, f_b)``
    averaged over the batch, so it lies in [0, 4] and is 0 iff every z_b is a positive multiple
    of f_b.
    """
    zn = F.normalize(z, dim=1, eps=_EPS)
    fn = F.normalize(f, dim=1, eps=_EPS)
    return (zn - fn).pow(2).sum(1).mean()


def covariance_loss(z: torch.Tensor) -> torch.Tensor:
    """L_COV: decorrelate the feature dimensions.

    With ``C = (z − mean_b z)ᵀ (z − mean_b z) / (B − 1)`` the unbiased (D, D) covariance of the
    batch, returns ``(1/D) Σ_{i≠j} C_ij²``. Needs B >= 2.
    """
    b, d = z.shape
    if b < 2:
        raise ValueError(f"covariance_loss needs a batch of at least 2 samples, got {b}")
    zc = z - z.mean(0, keepdim=True)
    cov = zc.T @ zc / (b - 1)
    off = cov - torch.diag(torch.diagonal(cov))
    return off.pow(2).sum() / d


def dominant_singular_value_loss(z: torch.Tensor, top_k: int = 1) -> torch.Tensor:
    """L_SVD: reward a dominant top of the spectrum.

    With σ the singular values of the batch matrix z as is (not centred; ``torch.linalg.svdvals``,
    descending), returns ``−mean(σ[:k]) / Σσ`` where ``k = min(top_k, len(σ))`` and the sum is
    clamped below at 1e-8. ``top_k=1`` is the paper's −σ1/Σσ; ``top_k=5`` is the authors' code.
    The value lies in [−1, 0); it is −1 iff z has rank 1 (for top_k=1).
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    sigma = torch.linalg.svdvals(z)
    k = min(int(top_k), sigma.shape[0])
    return -sigma[:k].mean() / sigma.sum().clamp_min(_EPS)


def nmtune_loss(
    logits: torch.Tensor,
    y: torch.Tensor,
    z: torch.Tensor,
    f: torch.Tensor,
    w_consistency: float,
    w_covariance: float,
    w_dominant_sv: float,
    svd_top_k: int = 1,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The NMTune objective on one batch.

    ``total = CE(logits, y) + w_consistency·L_MSE(z, f) + w_covariance·L_COV(z)
    + w_dominant_sv·L_SVD(z, svd_top_k)``. A term whose weight is 0 is not computed (no SVD when
    ``w_dominant_sv == 0``) and reported as 0.0.

    Returns
    -------
    total : 0-dim tensor to back-propagate.
    parts : ``{"ce", "consistency", "covariance", "dominant_sv"}`` — the *unweighted* batch
        values of each term as Python floats.
    """
    ce = F.cross_entropy(logits, y)
    total = ce
    terms: dict[str, torch.Tensor] = {}
    if w_consistency:
        terms["consistency"] = consistency_loss(z, f)
        total = total + w_consistency * terms["consistency"]
    if w_covariance:
        terms["covariance"] = covariance_loss(z)
        total = total + w_covariance * terms["covariance"]
    if w_dominant_sv:
        terms["dominant_sv"] = dominant_singular_value_loss(z, svd_top_k)
        total = total + w_dominant_sv * terms["dominant_sv"]
    # one device->host copy for all parts instead of one sync per term
    names = ["ce", *terms]
    values = torch.stack([ce.detach(), *(t.detach() for t in terms.values())]).cpu().tolist()
    parts = {"ce": 0.0, "consistency": 0.0, "covariance": 0.0, "dominant_sv": 0.0}
    parts.update(zip(names, values, strict=True))
    return total, parts
