"""Linear probing: a linear classifier trained on frozen features."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, check_X_y

from nml.params import OptimConfig
from nml.training import epoch_generator, make_optimizer, make_scheduler, shuffled_batches


class LinearProbe(ClassifierMixin, BaseEstimator):
    """Linear classifier on frozen features, trained as in NMTune App. A.2.

    AdamW with a cosine schedule for ``epochs`` epochs of mini-batches (the authors' command line:
    lr 0.01, weight decay 1e-4, 30 epochs, batch 64). ``standardize`` z-scores each feature with
    the training set's statistics first, which makes one learning rate fit features of any scale
    (different checkpoints' features differ in norm by orders of magnitude).

    Parameters
    ----------
    epochs, batch_size, lr, weight_decay : optimisation settings.
    standardize : z-score features with training statistics before the linear layer.
    seed : seeds initialisation and batch order; same seed, same probe.
    device : "cpu", "cuda" or "auto".
    """

    def __init__(
        self,
        epochs: int = 30,
        batch_size: int = 64,
        lr: float = 0.01,
        weight_decay: float = 1e-4,
        standardize: bool = True,
        seed: int = 0,
        device: str = "cpu",
    ):
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.standardize = standardize
        self.seed = seed
        self.device = device

    def _validate_params(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("lr",):
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if not np.isfinite(self.weight_decay) or self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.device not in ("cpu", "cuda", "auto"):
            raise ValueError(f"device must be 'cpu', 'cuda' or 'auto', got {self.device!r}")

    def _device(self) -> torch.device:
        from nml.models import resolve_device

        return resolve_device(self.device)

    def _scale(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean_) / self.scale_ if self.standardize else X

    def fit(self, X, y) -> LinearProbe:
        # training needs autograd even when the caller sits in a torch.no_grad() block
        with torch.enable_grad():
            return self._fit(X, y)

    def _fit(self, X, y) -> LinearProbe:
        self._validate_params()
        X, y = check_X_y(X, y, dtype=np.float32, ensure_all_finite=True)
        check_classification_targets(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"need at least 2 classes to fit a classifier, got {len(self.classes_)}: {self.classes_}")
        self.n_features_in_ = X.shape[1]
        self.mean_ = X.mean(0)
        self.scale_ = X.std(0) + 1e-6
        device = self._device()
        xt = torch.from_numpy(self._scale(X).astype(np.float32)).to(device)
        yt = torch.from_numpy(y_idx.astype(np.int64)).to(device)
        torch.manual_seed(self.seed)
        layer = torch.nn.Linear(X.shape[1], len(self.classes_)).to(device)
        cfg = OptimConfig(epochs=int(self.epochs), batch_size=int(self.batch_size), optimizer="adamw",
                          lr=float(self.lr), weight_decay=float(self.weight_decay), schedule="cosine")
        opt = make_optimizer(layer.parameters(), cfg)
        sched = make_scheduler(opt, cfg, -(-len(X) // cfg.batch_size))
        self.loss_curve_ = []
        for epoch in range(cfg.epochs):
            total = 0.0
            for idx in shuffled_batches(len(X), cfg.batch_size, epoch_generator(self.seed, epoch)):
                idx = idx.to(device)
                loss = F.cross_entropy(layer(xt[idx]), yt[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach()) * len(idx)
            self.loss_curve_.append(total / len(X))
        self.coef_ = layer.weight.detach().cpu().numpy()
        self.intercept_ = layer.bias.detach().cpu().numpy()
        return self

    def decision_function(self, X) -> np.ndarray:
        check_is_fitted(self, "coef_")
        X = check_array(X, dtype=np.float32, ensure_all_finite=True)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but the probe was fitted on {self.n_features_in_}")
        return self._scale(X) @ self.coef_.T + self.intercept_

    def predict_proba(self, X) -> np.ndarray:
        logits = self.decision_function(X)
        logits = logits - logits.max(1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.decision_function(X).argmax(1)]
