"""Feature heads h: R^D -> R^D that the MLP and NMTune tuners train on frozen features."""

from __future__ import annotations

import torch
from torch import nn

HEAD_KINDS = ("plain", "residual")
ACTIVATIONS = ("relu", "gelu", "none")


def _activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "gelu":
        return nn.GELU()
    if name == "none":
        return nn.Identity()
    raise ValueError(f"activation must be one of {list(ACTIVATIONS)}, got {name!r}")


def hidden_width(n_features: int, hidden_mult: float) -> int:
    """Width of the hidden layers: ``round(hidden_mult * n_features)``, at least 1."""
    return max(1, int(round(hidden_mult * n_features)))


def _mlp(n_features: int, depth: int, activation: str, hidden_mult: float, *, batch_norm: bool) -> nn.Sequential:
    """``depth`` Linear layers D -> hD -> ... -> hD -> D, [BatchNorm1d +] activation between them."""
    hidden = hidden_width(n_features, hidden_mult)
    widths = [n_features] + [hidden] * (depth - 1) + [n_features]
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(nn.Linear(d_in, d_out))
        if i < depth - 1:
            if batch_norm:
                layers.append(nn.BatchNorm1d(d_out))
            layers.append(_activation(activation))
    return nn.Sequential(*layers)


class ResidualHead(nn.Module):
    """z = s ⊙ MLP(f) + f with a learnable per-dimension scale s (initialised to ones).

    The head of the NMTune authors' public code: MLP = Linear(D, hD) → BatchNorm1d → act → … →
    Linear(hD, D). The skip connection lets the head start close to the identity, so the tuned
    features stay near the pre-trained ones unless the loss pays for moving them.
    """

    def __init__(self, n_features: int, depth: int, activation: str, hidden_mult: float):
        super().__init__()
        self.mlp = _mlp(n_features, depth, activation, hidden_mult, batch_norm=True)
        self.scale = nn.Parameter(torch.ones(n_features))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.scale * self.mlp(f) + f


def make_head(n_features: int, *, kind: str, depth: int, activation: str, hidden_mult: float) -> nn.Module:
    """Build a feature head mapping (B, D) -> (B, D).

    Parameters
    ----------
    n_features : D, the input and output width.
    kind : ``"plain"`` — ``depth`` Linear layers D -> hD -> ... -> hD -> D with ``activation``
        between consecutive layers (none after the last); ``"residual"`` — :class:`ResidualHead`,
        the same stack with BatchNorm1d before each activation, wrapped as z = s ⊙ MLP(f) + f.
    depth : number of Linear layers, >= 1; depth 1 is a single Linear D -> D.
    activation : ``"relu"``, ``"gelu"`` or ``"none"`` (identity; the plain head is then linear).
    hidden_mult : h; hidden layers have ``round(h * D)`` units (at least 1).

    Returns
    -------
    torch.nn.Module
        Freshly initialised head (PyTorch default init, drawn from the global torch RNG).
    """
    if kind not in HEAD_KINDS:
        raise ValueError(f"head must be one of {list(HEAD_KINDS)}, got {kind!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {list(ACTIVATIONS)}, got {activation!r}")
    if int(depth) != depth or depth < 1:
        raise ValueError(f"depth must be a positive integer, got {depth!r}")
    if not hidden_mult > 0:
        raise ValueError(f"hidden_mult must be a positive number, got {hidden_mult!r}")
    if kind == "plain":
        return _mlp(n_features, int(depth), activation, hidden_mult, batch_norm=False)
    return ResidualHead(n_features, int(depth), activation, hidden_mult)
