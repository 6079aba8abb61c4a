"""Logistic regression on hist: the simplest learned baseline.

A linear model of the channel frequencies (names and tags), standardised,
fitted with scikit-learn. It shows how far frequencies alone go without
order (SNN) or non-linear edges (KAN).
"""

from __future__ import annotations

import chex
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler


def fit_logistic(hist: np.ndarray, labels: np.ndarray, seed: int = 0,
                 max_iter: int = 2000) -> Pipeline:
    """Fits ``StandardScaler -> LogisticRegression`` on ``hist [batch, channels]``.

    Classes are weighted to balance, matching the detector's task of finding
    the minority class.
    """
    chex.assert_rank(hist, 2)
    model = make_pipeline(
        StandardScaler(),
        LogisticRegression(max_iter=max_iter, class_weight="balanced",
                           random_state=seed))
    return model.fit(np.asarray(hist, np.float64), np.asarray(labels))


def logistic_scores(model: Pipeline, hist: np.ndarray) -> np.ndarray:
    """Attack log-odds of each window, ``float64 [batch]``."""
    chex.assert_rank(hist, 2)
    return model.decision_function(np.asarray(hist, np.float64))
