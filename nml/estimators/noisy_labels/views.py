"""Where the two-network LP baselines (DivideMix, UNICON) get features of augmented views.

Both methods look at each sample through several random augmentations per epoch. With a frozen
encoder there are two ways to pay for that, behind one interface:

* :class:`FeatureViews` — a bank of precomputed views (N, V, D): view 0 is the un-augmented
  feature, views 1..V−1 were extracted once from augmented images. Each call draws one of them
  per sample. Cheap; the cpu profile's choice.
* :class:`EncoderViews` — the frozen encoder re-run on freshly augmented images at every call,
  as the TURN paper ran these baselines (the 4× / 8× feed-forwards its Table 1 and Fig. 3 pay).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from nml.models.pretrain import take


@runtime_checkable
class ViewSource(Protocol):
    """Features of samples by index: un-augmented, or one random augmented view."""

    n: int
    dim: int

    def clean(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, D) float32 features of the un-augmented samples ``idx``."""
        ...

    def augmented(self, idx: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(B, D) float32 features of one random augmented view of each sample ``idx``."""
        ...


class FeatureViews:
    """A precomputed bank of views; ``bank[:, 0]`` is the un-augmented feature.

    ``bank`` may be (N, D) (a single view: ``augmented`` then returns the clean features, so
    MixMatch's averaging over views degenerates to one view) or (N, V, D).
    """

    def __init__(self, bank: np.ndarray | torch.Tensor):
        # a copy: the bank may arrive read-only (joblib memory-maps large arrays for workers)
        bank = torch.from_numpy(np.array(bank, dtype=np.float32))
        if bank.ndim == 2:
            bank = bank[:, None, :]
        if bank.ndim != 3 or bank.shape[0] == 0 or bank.shape[2] == 0:
            raise ValueError(f"a view bank must be (N, D) or (N, V, D) with N, D >= 1, got shape {tuple(bank.shape)}")
        if not torch.isfinite(bank).all():
            raise ValueError("the view bank holds NaN or inf")
        self.bank = bank
        self.n, self.n_views, self.dim = (int(s) for s in bank.shape)

    def clean(self, idx: torch.Tensor) -> torch.Tensor:
        return self.bank[idx, 0]

    def augmented(self, idx: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.n_views == 1:
            return self.bank[idx, 0]
        view = torch.randint(1, self.n_views, (len(idx),), generator=generator)
        return self.bank[idx, view]


class EncoderViews:
    """The frozen ``encoder`` run on ``augment(images[idx], generator)`` at every call."""

    def __init__(self, encoder: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor | torch.utils.data.Dataset,
                 augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor], *, batch_size: int = 256):
        self.encoder, self.images, self.augment, self.batch_size = encoder, images, augment, int(batch_size)
        if isinstance(encoder, torch.nn.Module):
            encoder.eval()
        self.n = len(images)
        with torch.no_grad():
            self.dim = int(encoder(take(images, torch.arange(min(2, self.n)))).shape[-1])

    def _encode(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([self.encoder(batch[i:i + self.batch_size]).float()
                              for i in range(0, len(batch), self.batch_size)])

    def clean(self, idx: torch.Tensor) -> torch.Tensor:
        return self._encode(take(self.images, idx))

    def augmented(self, idx: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self._encode(self.augment(take(self.images, idx), generator))


def all_clean(source: ViewSource, batch_size: int = 1024) -> torch.Tensor:
    """(N, D) un-augmented features of every sample, in order."""
    return torch.cat([source.clean(torch.arange(i, min(i + batch_size, source.n))) for i in range(0, source.n, batch_size)])
