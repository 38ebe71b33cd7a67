"""What every noisy-label method shares: label encoding, validation, evaluation history, timing.

A method is a scikit-learn classifier on the package's estimator base
(:class:`~nml.estimators._base.NMLClassifier`). Feature-level methods (the LP baselines) take a
feature matrix; image-level methods (FFT baselines, TURN) take an image tensor N×C×H×W (or a
map-style dataset at paper scale, or a feature matrix when the backbone reads vectors) and own
a copy of a pre-trained ``backbone``. ``fit(X, y,
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
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from nml._infra.runtime import current_runtime
from nml.estimators._base import (
    NON_NEGATIVE,
    POSITIVE,
    POSITIVE_INT,
    RUN_CONSTRAINTS,
    UNIT_RIGHT_OPEN,
    NMLClassifier,
)
from nml.models.engine import gather_outputs

OPTIMIZERS = ("adamw", "sgd")

# the optimisation hyper-parameters of every method, as scikit-learn constraints checked at fit
OPTIM_CONSTRAINTS: dict[str, list[Any]] = {
    "epochs": [POSITIVE_INT],
    "batch_size": [POSITIVE_INT],
    "optimizer": [StrOptions(set(OPTIMIZERS))],
    "lr": [POSITIVE],
    "weight_decay": [NON_NEGATIVE],
    "momentum": [UNIT_RIGHT_OPEN],
    **RUN_CONSTRAINTS,
}


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


def backbone_input(estimator: NMLClassifier, X: Any, *, reset: bool) -> torch.Tensor | torch.utils.data.Dataset:
    """X as a backbone reads it: an image tensor N×C×H×W or a map-style dataset as it is
    (:func:`check_images`); anything else — a feature matrix, for a backbone that reads vectors —
    through ``validate_data`` as a finite float32 (N, D) tensor.

    ``reset=True`` (fit) records the input width: ``n_features_in_`` for a matrix, none for
    images; ``reset=False`` (inference) checks a matrix against it.
    """
    if isinstance(X, torch.utils.data.Dataset) or (isinstance(X, torch.Tensor) and X.ndim != 2):
        X = check_images(X)
        if reset:
            estimator._set_input_width(None)
        return X
    return torch.tensor(validate_data(estimator, X, dtype=np.float32, reset=reset))


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


class NoisyLabelClassifier(NMLClassifier):
    """Base of every method. Subclasses declare ``_parameter_constraints`` and implement ``fit``
    (decorated with ``sklearn.base._fit_context``, which validates the parameters) and
    :meth:`~nml.estimators._base.NMLClassifier._logits`.

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

    # ------------------------------------------------------------------ history, timing
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

    def _device(self) -> torch.device:
        from nml.models.backbones import resolve_device

        return resolve_device(self.device)


def batched_logits(model: torch.nn.Module, X: torch.Tensor | torch.utils.data.Dataset, *, batch_size: int,
                   device: torch.device) -> torch.Tensor:
    """Eval-mode outputs of ``model`` on every sample of ``X``, on CPU, in order (a dataset on disk
    through a DataLoader; with several processes each computes a share and all receive every output:
    :func:`nml.models.engine.gather_outputs` under the current runtime)."""
    was_training = model.training
    model.eval()
    out = gather_outputs(model, X, current_runtime(device), batch_size=batch_size)
    model.train(was_training)
    return out
