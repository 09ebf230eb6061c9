"""Models that misbehave on purpose (importable by server processes through PYTHONPATH)."""

from __future__ import annotations

import time

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class Sleepy(ClassifierMixin, BaseEstimator):
    """Predicts class 1 after sleeping ``seconds`` per call."""

    def __init__(self, seconds: float = 0.5):
        self.seconds = seconds

    def fit(self, X, y):
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict(self, X):
        time.sleep(self.seconds)
        return np.ones(len(X), dtype=int)


class Broken(Sleepy):
    """Raises on every prediction."""

    def predict(self, X):
        raise RuntimeError("this model always fails")
