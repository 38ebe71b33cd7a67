"""MLP tuning: a feature head h and a linear classifier on h(f), trained with cross-entropy only."""

from __future__ import annotations

from typing import Any, ClassVar

from nml.estimators.frozen.base import HEAD_CONSTRAINTS, OPTIMISATION_CONSTRAINTS, FeatureTuner


class MLPTuner(FeatureTuner):
    """Head h (:func:`~nml.estimators.frozen.heads.make_head`) + linear classifier g, loss CE(g(h(f)), y).

    The baseline NMTune is compared against: the same head, views and optimisation as an NMTune
    preset without the three regularisers (the defaults are the "paper" preset's; chapter 03
    builds it from the preset it compares with, so with the official preset it also reads two
    augmented views and takes cross-entropy on both). ``transform`` returns z = h(f) in eval mode.

    Parameters
    ----------
    head : "plain" or "residual" (see make_head).
    depth : Linear layers in the head, >= 1.
    activation : "relu", "gelu" or "none".
    hidden_mult : hidden width = round(hidden_mult · D).
    n_views : 1, or 2 for the authors' two-view loop (see :class:`~nml.estimators.frozen.base.FeatureTuner`).
    warmup_steps : linear warm-up steps before the cosine schedule.
    epochs, batch_size, lr, weight_decay : AdamW + per-step cosine schedule; batch_size >= 2.
    standardize : z-score features with training statistics before the head.
    seed : seeds initialisation and batch order.
    device : "cpu", "cuda" or "auto".
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {**HEAD_CONSTRAINTS, **OPTIMISATION_CONSTRAINTS}

    def __init__(
        self,
        head: str = "plain",
        depth: int = 2,
        activation: str = "relu",
        hidden_mult: float = 4,
        n_views: int = 1,
        warmup_steps: int = 0,
        epochs: int = 30,
        batch_size: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        standardize: bool = False,
        seed: int = 0,
        device: str = "cpu",
    ):
        self.head = head
        self.depth = depth
        self.activation = activation
        self.hidden_mult = hidden_mult
        self.n_views = n_views
        self.warmup_steps = warmup_steps
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.standardize = standardize
        self.seed = seed
        self.device = device

    def _hyper_params(self) -> dict[str, Any]:
        names = ("head", "depth", "activation", "hidden_mult", "n_views", "warmup_steps", "epochs", "batch_size",
                 "lr", "weight_decay", "seed", "device")
        return {name: getattr(self, name) for name in names}
