"""Losses of the noisy-label methods: GCE, ELR's target-averaging regulariser, soft-target CE.

Every function takes logits (B, C) and returns a 0-dim tensor (or (B,) with ``reduction="none"``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_EPS = 1e-7


def _reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    if reduction == "none":
        return values
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def gce_loss(logits: torch.Tensor, y: torch.Tensor, q: float = 0.7, reduction: str = "mean") -> torch.Tensor:
    """Generalized cross-entropy (Zhang & Sabuncu, NeurIPS 2018): ``(1 − p_y^q) / q``.

    ``q → 0`` recovers cross-entropy, ``q = 1`` is the (noise-robust) mean absolute error; TURN
    uses ``q = 0.7`` for its linear-probing step. ``p_y`` is clamped below at 1e-7.
    """
    if not 0.0 < q <= 1.0:
        raise ValueError(f"q must be in (0, 1], got {q!r}")
    p_y = F.softmax(logits, dim=1).gather(1, y.view(-1, 1)).squeeze(1).clamp_min(_EPS)
    return _reduce((1.0 - p_y.pow(q)) / q, reduction)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """``−Σ_c t_c log softmax(logits)_c`` for soft targets ``t`` (rows summing to 1)."""
    return _reduce(-(targets * F.log_softmax(logits, dim=1)).sum(1), reduction)


class ELRMemory:
    """Early-learning regularisation (Liu et al., NeurIPS 2020, "Early-Learning Regularization
    Prevents Memorization of Noisy Labels"), the ELR term without ELR+'s extras.

    Keeps a running average ``t_i ← β t_i + (1 − β) p_i / Σp_i`` of each sample's (detached,
    clamped) softmax output and adds ``λ · mean_i log(1 − ⟨p_i, t_i⟩)`` to cross-entropy. The
    term is minimised by predictions that agree with what the model predicted early in training,
    before it started to memorise wrong labels. Defaults of the ELR paper: CIFAR-10 β = 0.7,
    λ = 3; CIFAR-100 β = 0.9, λ = 7.
    """

    def __init__(self, n_samples: int, n_classes: int, *, beta: float = 0.7, lam: float = 3.0,
                 device: torch.device | str = "cpu"):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"elr beta must be in [0, 1), got {beta!r}")
        if lam < 0:
            raise ValueError(f"elr lambda must be >= 0, got {lam!r}")
        self.beta, self.lam = float(beta), float(lam)
        self.targets = torch.zeros(n_samples, n_classes, device=device)

    def loss(self, logits: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """CE + λ·log(1 − ⟨p, t⟩) on a batch whose rows are samples ``idx``; updates their targets."""
        p = F.softmax(logits, dim=1).clamp(1e-4, 1.0 - 1e-4)
        with torch.no_grad():
            p_detached = p.detach()
            self.targets[idx] = self.beta * self.targets[idx] + (1.0 - self.beta) * (
                p_detached / p_detached.sum(1, keepdim=True))
        regulariser = torch.log(1.0 - (self.targets[idx] * p).sum(1)).mean()
        return F.cross_entropy(logits, y) + self.lam * regulariser


LOSSES = ("ce", "gce", "elr")
