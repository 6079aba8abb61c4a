"""Baselines: STIDE n-gram lookup and logistic regression on hist."""

from __future__ import annotations

import numpy as np
import pytest

from sentinel_jax.baselines import Stide, fit_logistic, logistic_scores, window_ngrams


def test_stide_scores_the_share_of_unseen_ngrams():
    normal = np.array([[2, 3, 4, 2, 3, 4]], np.int32)
    stide = Stide.fit(normal, np.array([0]), name_channels=8, n=3)
    assert stide.known.size == 3  # 234, 342, 423
    windows = np.array([
        [3, 4, 2, 3, 4, 2],   # all four 3-grams known
        [2, 3, 4, 5, 3, 4],   # 234 known; 345, 453, 534 novel
        [2, 3, 4, 0, 0, 0],   # padded: only 234 is a real 3-gram
    ], np.int32)
    np.testing.assert_allclose(stide.score(windows), [0.0, 0.75, 0.0])


def test_stide_ignores_attack_windows_when_fitting():
    ids = np.array([[2, 3, 4, 5], [6, 7, 6, 7]], np.int32)
    stide = Stide.fit(ids, np.array([0, 1]), name_channels=8, n=2)
    assert stide.score(np.array([[6, 7, 6, 7]], np.int32))[0] == 1.0


def test_ngram_codes_are_unique_per_ngram():
    ids = np.array([[1, 2, 3, 1, 2, 3, 3, 2]], np.int32)
    codes, valid = window_ngrams(ids, 2, bits=2)
    assert valid.all()
    pairs = [tuple(ids[0, i:i + 2]) for i in range(7)]
    assert len(set(codes[0].tolist())) == len(set(pairs))


def test_stide_rejects_ngrams_too_long_to_pack():
    with pytest.raises(ValueError, match="bits"):
        Stide.fit(np.zeros((1, 20), np.int32), np.array([0]), name_channels=4096,
                  n=6)


def test_logistic_regression_separates_a_linear_signal():
    rng = np.random.default_rng(0)
    hist = rng.random((200, 5)).astype(np.float32)
    labels = (hist[:, 2] > 0.5).astype(int)
    model = fit_logistic(hist, labels)
    scores = logistic_scores(model, hist)
    assert np.mean((scores > 0) == (labels == 1)) > 0.95
