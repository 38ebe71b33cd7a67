"""NMTune: MLP tuning plus three regularisers that reshape the pre-trained feature space."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from sklearn.utils._param_validation import StrOptions

from nml.estimators._base import NON_NEGATIVE, POSITIVE_INT, RUN_CONSTRAINTS
from nml.estimators.frozen.base import HEAD_CONSTRAINTS, OPTIMISATION_CONSTRAINTS, FeatureTuner
from nml.estimators.frozen.nmtune_losses import nmtune_terms

# Both presets train with AdamW and a per-step cosine schedule to zero (the base loop).
NMTUNE_PRESETS: dict[str, dict[str, Any]] = {
    # as written in the paper: an MLP head, the three terms weighted equally (λ = 0.01),
    # L_MSE = mean_b ‖ẑ_b − f̂_b‖² (summed over D), L_SVD = −σ1/Σσ, one view of each sample
    "paper": {
        "head": "plain", "depth": 2, "activation": "relu", "hidden_mult": 4,
        "w_consistency": 0.01, "w_covariance": 0.01, "w_dominant_sv": 0.01, "svd_top_k": 1,
        "consistency_reduction": "sum", "n_views": 1, "warmup_steps": 0,
        "epochs": 30, "batch_size": 64, "lr": 1e-3, "weight_decay": 1e-4,
    },
    # as in the authors' public code and published command line (nml_tune.py): residual BN-MLP
    # head z = s ⊙ MLP(f) + f (s initialised to 1), weights 1.0 / 0.04 / 0.001, torch MSELoss
    # (mean over B·D) between ẑ of the strong view and f̂ of the weak view, mean of the top-5
    # normalised singular values, two augmented views per sample with cross-entropy on both
    # (their command line sets --use-weak-strong=False: both views are the train transform, no
    # RandAugment), AdamW lr 1e-3, wd 1e-4, 30 epochs, batch 64, cosine, no warm-up steps
    "official": {
        "head": "residual", "depth": 2, "activation": "relu", "hidden_mult": 4,
        "w_consistency": 1.0, "w_covariance": 0.04, "w_dominant_sv": 0.001, "svd_top_k": 5,
        "consistency_reduction": "mean", "n_views": 2, "warmup_steps": 0,
        "epochs": 30, "batch_size": 64, "lr": 1e-3, "weight_decay": 1e-4,
    },
}

_OVERRIDABLE = tuple(NMTUNE_PRESETS["paper"])

# the weights and shapes of the three regularisers
TERM_CONSTRAINTS: dict[str, list[Any]] = {
    "w_consistency": [NON_NEGATIVE],
    "w_covariance": [NON_NEGATIVE],
    "w_dominant_sv": [NON_NEGATIVE],
    "svd_top_k": [POSITIVE_INT],
    "consistency_reduction": [StrOptions({"mean", "sum"})],
}


class NMTune(FeatureTuner):
    """NMTune: head h + linear classifier g with loss
    CE + w_consistency·L_MSE(z, f) + w_covariance·L_COV(z) + w_dominant_sv·L_SVD(z)
    on z = h(f) (see :func:`nml.estimators.frozen.nmtune_losses.nmtune_loss`; f is the raw frozen feature,
    or the standardised one with ``standardize=True``, a deviation from the authors' code). With
    ``n_views=2`` (the official preset) every step reads two augmented views of each sample
    (:class:`~nml.estimators.frozen.base.FeatureTuner`: pass a bank of augmented features as
    ``fit(X, y, views=bank)``), takes CE on both, the covariance and SVD terms on all 2B rows,
    and the consistency between the strong view's z and the weak view's f.

    Every argument left as None takes the value of ``preset`` (one of ``NMTUNE_PRESETS``:
    "paper" or "official"). Resolution happens at fit time without touching the public
    attributes, so ``clone``/``get_params`` see exactly what was passed; :meth:`resolved_params`
    shows the values actually used. With all three weights 0 this is :class:`MLPTuner`.

    Extra fitted attribute: ``loss_parts_``, one dict per epoch with the per-sample means of the
    unweighted terms {ce, consistency, covariance, dominant_sv} (0.0 for terms with weight 0).
    A trailing batch of one sample is skipped (BatchNorm and covariance need two); batch_size
    must be >= 2.
    """

    # every overridable hyper-parameter may also be None: the preset's value
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "preset": [StrOptions(set(NMTUNE_PRESETS))],
        **{name: [*constraints, None]
           for name, constraints in {**HEAD_CONSTRAINTS, **OPTIMISATION_CONSTRAINTS, **TERM_CONSTRAINTS}.items()
           if name in _OVERRIDABLE},
        "standardize": ["boolean"],
        **RUN_CONSTRAINTS,
    }

    def __init__(
        self,
        preset: str = "paper",
        head: str | None = None,
        depth: int | None = None,
        activation: str | None = None,
        hidden_mult: float | None = None,
        w_consistency: float | None = None,
        w_covariance: float | None = None,
        w_dominant_sv: float | None = None,
        svd_top_k: int | None = None,
        consistency_reduction: str | None = None,
        n_views: int | None = None,
        warmup_steps: int | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        weight_decay: float | None = None,
        standardize: bool = False,
        seed: int = 0,
        device: str = "cpu",
    ):
        self.preset = preset
        self.head = head
        self.depth = depth
        self.activation = activation
        self.hidden_mult = hidden_mult
        self.w_consistency = w_consistency
        self.w_covariance = w_covariance
        self.w_dominant_sv = w_dominant_sv
        self.svd_top_k = svd_top_k
        self.consistency_reduction = consistency_reduction
        self.n_views = n_views
        self.warmup_steps = warmup_steps
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.standardize = standardize
        self.seed = seed
        self.device = device

    def resolved_params(self) -> dict[str, Any]:
        """The hyper-parameters a fit uses: the preset, overridden by every non-None argument.

        Raises ValueError for an unknown preset (the message lists the known ones).
        """
        if self.preset not in NMTUNE_PRESETS:
            raise ValueError(f"preset must be one of {list(NMTUNE_PRESETS)}, got {self.preset!r}")
        resolved = dict(NMTUNE_PRESETS[self.preset])
        for name in _OVERRIDABLE:
            value = getattr(self, name)
            if value is not None:
                resolved[name] = value
        resolved.update(standardize=self.standardize, seed=self.seed, device=self.device)
        return resolved

    def _hyper_params(self) -> dict[str, Any]:
        return self.resolved_params()

    _loss_parts = ("ce", "consistency", "covariance", "dominant_sv")

    def _loss(self, logits: torch.Tensor, y: torch.Tensor, z: torch.Tensor, f: torch.Tensor,
              hp: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return nmtune_terms(logits, y, z, f, w_consistency=hp["w_consistency"], w_covariance=hp["w_covariance"],
                           w_dominant_sv=hp["w_dominant_sv"], svd_top_k=hp["svd_top_k"],
                           consistency_reduction=hp["consistency_reduction"])
