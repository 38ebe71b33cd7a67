"""The scikit-learn base of every estimator of the package, the tuners and the noisy-label methods.

Both families are classifiers that train a torch model and predict from its logits. This module
gives them the scikit-learn contract once, so that scikit-learn treats them as its own (its
``check_estimator`` suite, ``clone``, ``Pipeline``, ``GridSearchCV``, ``cross_val_score``):

* hyper-parameters are validated declaratively at ``fit`` from the class's
  ``_parameter_constraints`` (scikit-learn's ``InvalidParameterError``, a ``ValueError`` naming
  the parameter);
* ``classes_`` and the label encoding, the standard errors for bad targets, ``NotFittedError``
  before ``fit``, ``n_features_in_`` for 2-D inputs;
* ``decision_function``, ``predict_proba`` and ``predict`` from one hook, :meth:`_logits`, so
  the three always agree (a binary ``decision_function`` is 1-D, as scikit-learn expects);
* the transformer tags for estimators with a ``transform`` (:class:`NMLTransformerMixin`).

It imports numpy and scikit-learn only: nothing from the rest of ``nml``, so neither family
depends on the other through it.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.utils import Tags, assert_all_finite
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d

DEVICES = ("cpu", "cuda", "auto")

# constraints (scikit-learn's ``sklearn.utils._param_validation``) both families use; the real
# intervals exclude NaN and ±inf
POSITIVE_INT = Interval(Integral, 1, None, closed="left")
NON_NEGATIVE_INT = Interval(Integral, 0, None, closed="left")
POSITIVE = Interval(Real, 0, np.inf, closed="neither")
NON_NEGATIVE = Interval(Real, 0, np.inf, closed="left")
UNIT_RIGHT_OPEN = Interval(Real, 0, 1, closed="left")  # [0, 1): momenta, thresholds
RUN_CONSTRAINTS: dict[str, list[Any]] = {
    "seed": [Integral],
    "device": [StrOptions(set(DEVICES))],
}


class NMLClassifier(ClassifierMixin, BaseEstimator):
    """A classifier over the logits of a trained torch model, in scikit-learn's contract.

    Subclasses declare ``_parameter_constraints`` (one entry per ``__init__`` parameter),
    decorate their ``fit`` methods with ``sklearn.base._fit_context`` (which validates the
    parameters against the constraints before anything else), call :meth:`_encode_labels` in
    ``fit`` and implement :meth:`_logits`. In return they get ``decision_function``,
    ``predict_proba``, ``predict`` and ``score``.

    ``classes_`` are the sorted unique training labels; logits and probabilities have one
    column per class in that order.
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {}

    # ------------------------------------------------------------------ subclass hook
    def _logits(self, X: Any) -> np.ndarray:
        """(N, n_classes) logits of X, columns ordered as ``classes_``; validates X (the
        estimator is known to be fitted)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ fit helpers
    def _validate_targets(self, y: Any, n_samples: int) -> np.ndarray:
        """y of a fit whose X is not a 2-D array (images, view banks, encoders), checked as
        ``validate_data`` checks it beside a matrix: present, one column, finite, one label per
        sample."""
        if y is None:
            raise ValueError(f"This {type(self).__name__} estimator requires y to be passed, but the target y is None.")
        y = column_or_1d(y, warn=True)
        assert_all_finite(y, input_name="y")
        if len(y) != n_samples:
            raise ValueError(f"Found input variables with inconsistent numbers of samples: {[n_samples, len(y)]}")
        return y

    def _encode_labels(self, y: np.ndarray) -> np.ndarray:
        """Set ``classes_`` and return y as int64 indices into it; ValueError unless y holds
        classification labels of at least two classes."""
        check_classification_targets(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"need at least 2 classes to fit a classifier, got {len(self.classes_)} class: "
                             f"{self.classes_.tolist()}")
        return y_idx.astype(np.int64)

    def _set_input_width(self, n_features: int | None) -> None:
        """Record the width of a fit's input that ``validate_data`` did not see: the features
        of an encoder or a view bank (``n_features_in_``), or None for images, which have no
        width. The previous fit's ``feature_names_in_`` no longer apply either way."""
        if n_features is None:
            self.__dict__.pop("n_features_in_", None)
        else:
            self.n_features_in_ = int(n_features)
        self.__dict__.pop("feature_names_in_", None)

    # ------------------------------------------------------------------ inference
    def decision_function(self, X: Any) -> np.ndarray:
        """Logits (N, n_classes), columns ordered as ``classes_``; for two classes the 1-D
        score of ``classes_[1]``, its logit minus the other's (> 0 predicts ``classes_[1]``)."""
        check_is_fitted(self)
        logits = self._logits(X)
        return logits[:, 1] - logits[:, 0] if logits.shape[1] == 2 else logits

    def predict_proba(self, X: Any) -> np.ndarray:
        """Softmax of the logits; rows sum to 1, columns ordered as ``classes_``."""
        check_is_fitted(self)
        logits = self._logits(X)
        logits = logits - logits.max(1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        """The label in ``classes_`` with the largest logit."""
        check_is_fitted(self)
        return self.classes_[self._logits(X).argmax(1)]


class NMLTransformerMixin(TransformerMixin):
    """For estimators whose ``transform`` returns the representation their classifier reads.

    scikit-learn's transformer API (``fit_transform``, the transformer tags), with the dtype
    promise of every such ``transform`` here: float32 in, float32 out. Put it first in the
    bases, before :class:`NMLClassifier`.
    """

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
