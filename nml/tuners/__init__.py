"""Tuners on frozen features, scikit-learn style: ``fit(X, y)``, ``predict``, ``predict_proba``."""

from nml.tuners.linear_probe import LinearProbe

__all__ = ["LinearProbe"]
