"""Baselines the hybrid is compared against (STIDE, logistic regression on hist;
n-gram trace models in :mod:`sentinel_jax.baselines.ngram`)."""

from sentinel_jax.baselines.logistic import fit_logistic, logistic_scores
from sentinel_jax.baselines.stide import Stide, window_ngrams

__all__ = ["Stide", "fit_logistic", "logistic_scores", "window_ngrams"]
