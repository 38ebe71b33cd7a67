"""What every noisy-label method shares: label encoding, validation, evaluation history, timing.

A method is a scikit-learn classifier. Feature-level methods (the LP baselines) take a feature
matrix; image-level methods (FFT baselines, TURN) take an image tensor N×C×H×W (or a map-style
dataset at paper scale) and own a copy of a pre-trained ``backbone``. ``fit(X, y,
eval_set=(X_test, y_test))`` also records the test accuracy after every epoch, because the TURN
paper reports the *best* and the *last* test accuracy of each run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from nml.pretrain import take

DEVICES = ("cpu", "cuda", "auto")
OPTIMIZERS = ("adamw", "sgd")


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and np.isfinite(v)


def check_positive_int(name: str, value: Any, minimum: int = 1) -> None:
    if not _is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_number(name: str, value: Any, *, low: float = 0.0, high: float = float("inf"), low_open: bool = False,
                 high_open: bool = False) -> None:
    """Raise ValueError naming ``name`` unless ``value`` is a finite number in the given range."""
    ok = _is_number(value) and (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
        raise ValueError(f"{name} must be a number in {lo}{low:g}, {high:g}{hi}, got {value!r}")


def check_choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def check_features(X: Any, name: str = "X") -> np.ndarray:
    """A finite float32 (N, D) matrix, or (N, V, D) view bank, with N, D >= 1."""
    X = np.asarray(X, dtype=np.float32) if not isinstance(X, torch.Tensor) else X.detach().cpu().numpy().astype(np.float32)
    if X.ndim not in (2, 3) or X.shape[0] == 0 or X.shape[-1] == 0:
        raise ValueError(f"{name} must be a feature matrix (N, D) (or a view bank (N, V, D)), got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{name} contains NaN or inf")
    return X


def check_images(X: Any, name: str = "X") -> torch.Tensor | torch.utils.data.Dataset:
    """An image tensor N×C×H×W of finite floats, or a map-style dataset yielding (image, label)."""
    if isinstance(X, torch.Tensor):
        if X.ndim != 4 or X.shape[0] == 0:
            raise ValueError(f"{name} must be an image tensor N×C×H×W, got shape {tuple(X.shape)}")
        if not X.is_floating_point() or not torch.isfinite(X).all():
            raise ValueError(f"{name} must hold finite floating-point pixels (got {X.dtype}, or NaN/inf)")
        return X
    if isinstance(X, torch.utils.data.Dataset) and hasattr(X, "__len__"):
        return X
    raise ValueError(f"{name} must be a torch.Tensor N×C×H×W or a map-style torch Dataset, got {type(X).__name__}")


class NoisyLabelClassifier(ClassifierMixin, BaseEstimator):
    """Base of every method. Subclasses implement ``fit`` and ``decision_function``.

    Fitted attributes (all methods)
    -------------------------------
    classes_ : sorted unique training labels; logits columns follow this order.
    history_ : one dict per evaluation point ``{"phase", "epoch", "test_acc"}`` (empty without
        ``eval_set``); phases are "lp", "fft", "warmup", "train" depending on the method.
    fit_seconds_ : wall-clock seconds of training, evaluation on ``eval_set`` excluded.
    """

    # ------------------------------------------------------------------ labels, history, timing
    def _encode_labels(self, y: Any, n: int) -> np.ndarray:
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != n:
            raise ValueError(f"y must be 1-D with one label per sample: got shape {y.shape} for {n} samples")
        check_classification_targets(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"need at least 2 classes to fit a classifier, got {len(self.classes_)}: {self.classes_}")
        return y_idx.astype(np.int64)

    def _begin(self) -> None:
        self.history_: list[dict[str, Any]] = []
        self.fit_seconds_ = 0.0
        self._clock = time.perf_counter()

    def _pause(self) -> None:
        self.fit_seconds_ += time.perf_counter() - self._clock

    def _resume(self) -> None:
        self._clock = time.perf_counter()

    def _evaluate(self, phase: str, epoch: int, eval_set: tuple | None, predict: Callable[[Any], np.ndarray]) -> None:
        """Append the test accuracy of ``predict`` on ``eval_set``; not counted as training time."""
        if eval_set is None:
            return
        self._pause()
        X_test, y_test = eval_set
        acc = float(np.mean(predict(X_test) == np.asarray(y_test)))
        self.history_.append({"phase": phase, "epoch": int(epoch), "test_acc": acc})
        self._resume()

    def _finish(self) -> None:
        self._pause()

    @property
    def best_test_acc_(self) -> float:
        """Highest test accuracy over every evaluation point (NaN without ``eval_set``)."""
        check_is_fitted(self, "history_")
        return max((h["test_acc"] for h in self.history_), default=float("nan"))

    @property
    def last_test_acc_(self) -> float:
        """Test accuracy at the end of training (NaN without ``eval_set``)."""
        check_is_fitted(self, "history_")
        return self.history_[-1]["test_acc"] if self.history_ else float("nan")

    # ------------------------------------------------------------------ inference
    def decision_function(self, X: Any) -> np.ndarray:  # pragma: no cover - subclasses
        raise NotImplementedError

    def predict_proba(self, X: Any) -> np.ndarray:
        """Softmax of the logits; rows sum to 1, columns ordered as ``classes_``."""
        logits = self.decision_function(X)
        logits = logits - logits.max(1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.decision_function(X).argmax(1)]

    def _device(self) -> torch.device:
        from nml.models import resolve_device

        return resolve_device(self.device)


def batched_logits(model: torch.nn.Module, X: torch.Tensor | torch.utils.data.Dataset, *, batch_size: int,
                   device: torch.device) -> torch.Tensor:
    """Eval-mode outputs of ``model`` on every sample of ``X``, on CPU, in order."""
    was_training = model.training
    model.eval()
    outs = []
    with torch.no_grad():
        for start in range(0, len(X), batch_size):
            idx = torch.arange(start, min(start + batch_size, len(X)))
            outs.append(model(take(X, idx).to(device)).float().cpu())
    model.train(was_training)
    return torch.cat(outs)
