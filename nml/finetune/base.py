"""What every noisy-label method shares: label encoding, validation, evaluation history, timing.

A method is a scikit-learn classifier. Feature-level methods (the LP baselines) take a feature
matrix; image-level methods (FFT baselines, TURN) take an image tensor N×C×H×W (or a map-style
dataset at paper scale) and own a copy of a pre-trained ``backbone``. ``fit(X, y,
eval_set=(X_test, y_test), val_set=(X_val, y_val))`` records, after every epoch, the accuracy on
the validation split (labels as noisy as the training labels) and on the test set, and keeps
the test predictions of every epoch: the TURN paper reports the *best* and the *last* test
accuracy of each run, and here "best" is the test accuracy at the epoch with the best
*validation* accuracy (:func:`select_epochs`); the paper's best-test-epoch number is kept
beside it as the *oracle*.
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


def select_epochs(history: list[dict[str, Any]], phases: tuple[str, ...] | None = None) -> dict[str, int]:
    """Which evaluation points of ``history`` a run reports: indices into ``history``.

    Only the entries whose ``phase`` is in ``phases`` count (None: every entry) — the method's
    fine-tuning phase: TURN's step-1 linear-probe epochs are not candidates for TURN's best or
    last. Returns

    * ``best`` — the entry with the highest ``val_acc`` (ties: the earliest); -1 when no entry has
      a validation accuracy;
    * ``oracle`` — the entry with the highest ``test_acc`` (ties: the earliest): the paper's
      "best test epoch", chosen on test labels (reported beside, never used to choose);
    * ``last`` — the last entry of the phase.

    Raises ValueError when no entry belongs to ``phases``.
    """
    idx = [i for i, h in enumerate(history) if phases is None or h["phase"] in phases]
    if not idx:
        raise ValueError(f"no evaluation point in phases {phases} (history has phases "
                         f"{sorted({h['phase'] for h in history})})")

    def first_max(key: str) -> int:
        scored = [i for i in idx if np.isfinite(history[i].get(key, np.nan))]
        if not scored:
            return -1
        best = max(history[i][key] for i in scored)
        return next(i for i in scored if history[i][key] == best)

    return {"best": first_max("val_acc"), "oracle": first_max("test_acc"), "last": idx[-1]}


class NoisyLabelClassifier(ClassifierMixin, BaseEstimator):
    """Base of every method. Subclasses implement ``fit`` and ``decision_function``.

    Fitted attributes (all methods)
    -------------------------------
    classes_ : sorted unique training labels; logits columns follow this order.
    history_ : one dict per evaluation point ``{"phase", "epoch"}`` plus ``"test_acc"`` (with
        ``eval_set``) and ``"val_acc"`` (with ``val_set``); empty without either. Phases are
        "lp", "fft", "warmup", "train" depending on the method.
    test_predictions_ : the predicted test labels at each evaluation point (parallel to
        ``history_``; empty without ``eval_set``).
    fit_seconds_ : wall-clock seconds of training, evaluation on ``eval_set`` / ``val_set`` excluded.

    ``TUNING_PHASES`` (class attribute) names the phases whose epochs ``best`` and ``last`` are
    chosen from (None: all): the fine-tuning phase of the method.
    """

    TUNING_PHASES: tuple[str, ...] | None = None

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
        self.test_predictions_: list[np.ndarray] = []
        self.fit_seconds_ = 0.0
        self._clock = time.perf_counter()

    def _pause(self) -> None:
        self.fit_seconds_ += time.perf_counter() - self._clock

    def _resume(self) -> None:
        self._clock = time.perf_counter()

    def _evaluate(self, phase: str, epoch: int, eval_set: tuple | None, predict: Callable[[Any], np.ndarray],
                  val_set: tuple | None = None) -> None:
        """Record the accuracy of ``predict`` on ``val_set`` and ``eval_set`` (and the test
        predictions); not counted as training time."""
        if eval_set is None and val_set is None:
            return
        self._pause()
        entry: dict[str, Any] = {"phase": phase, "epoch": int(epoch)}
        if val_set is not None:
            X_val, y_val = val_set
            entry["val_acc"] = float(np.mean(predict(X_val) == np.asarray(y_val)))
        if eval_set is not None:
            X_test, y_test = eval_set
            pred = np.asarray(predict(X_test))
            entry["test_acc"] = float(np.mean(pred == np.asarray(y_test)))
            self.test_predictions_.append(pred)
        self.history_.append(entry)
        self._resume()

    def _finish(self) -> None:
        self._pause()

    def _selected(self, which: str) -> float:
        check_is_fitted(self, "history_")
        if not any("test_acc" in h for h in self.history_):
            return float("nan")
        i = select_epochs(self.history_, self.TUNING_PHASES)[which]
        return self.history_[i]["test_acc"] if i >= 0 else float("nan")

    @property
    def best_test_acc_(self) -> float:
        """Test accuracy at the fine-tuning epoch with the best validation accuracy (ties: the
        earliest); NaN without ``eval_set`` or ``val_set``."""
        return self._selected("best")

    @property
    def oracle_test_acc_(self) -> float:
        """Highest test accuracy over the fine-tuning epochs: the paper's "best", chosen on test
        labels (oracle); NaN without ``eval_set``."""
        return self._selected("oracle")

    @property
    def last_test_acc_(self) -> float:
        """Test accuracy at the end of training (NaN without ``eval_set``)."""
        return self._selected("last")

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
