"""Metrics against hand-computed values; thresholds come from validation only."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sentinel_jax.evaluation.compare import ModelScores, evaluate_model
from sentinel_jax.evaluation.metrics import (
    choose_threshold,
    detection_metrics,
    per_family_metrics,
    tpr_at_fpr,
    trace_scores,
)

LABELS = np.array([0, 0, 0, 0, 1, 1, 1])
SCORES = np.array([0.1, 0.4, 0.35, 0.8, 0.9, 0.05, 0.7])


def test_detection_metrics_match_hand_computation():
    result = detection_metrics(LABELS, SCORES, threshold=0.5)
    # Flagged: 0.8 (normal), 0.9 and 0.7 (attacks): tp=2, fp=1, fn=1, tn=3.
    assert result["confusion_matrix"] == [[3, 1], [1, 2]]
    assert result["accuracy"] == pytest.approx(5 / 7)
    assert result["precision"] == pytest.approx(2 / 3)
    assert result["recall"] == pytest.approx(2 / 3)
    assert result["f1"] == pytest.approx(2 / 3)
    assert result["false_positive_rate"] == pytest.approx(1 / 4)
    # Pairs (attack, normal) ranked correctly: 0.9 beats 4, 0.7 beats 3,
    # 0.05 beats none -> 7 of 12.
    assert result["roc_auc"] == pytest.approx(7 / 12)
    # Ranking: 0.9 (A), 0.8 (N), 0.7 (A), 0.4, 0.35, 0.1 (N), 0.05 (A):
    # AP = (1/1 + 2/3 + 3/7) / 3.
    assert result["pr_auc"] == pytest.approx((1 + 2 / 3 + 3 / 7) / 3)
    # With no false positive allowed only 0.9 is caught.
    assert result["tpr_at_fpr_0_1pct"] == pytest.approx(1 / 3)


def test_tpr_at_fpr_reads_the_roc_curve():
    assert tpr_at_fpr(LABELS, SCORES, 0.25) == pytest.approx(2 / 3)
    assert tpr_at_fpr(LABELS, SCORES, 0.5) == pytest.approx(2 / 3)
    assert tpr_at_fpr(LABELS, SCORES, 0.75) == pytest.approx(2 / 3)
    assert tpr_at_fpr(LABELS, SCORES, 1.0) == pytest.approx(1.0)


def test_best_f1_threshold_by_hand():
    # F1 when flagging >= 0.9: .5, >= 0.8: .4, >= 0.7: .667, >= 0.4: .571,
    # >= 0.35: .5, >= 0.1: .444, >= 0.05: .6 -> 0.7.
    assert choose_threshold(LABELS, SCORES, "best_f1") == pytest.approx(0.7)


@given(st.lists(st.floats(-5, 5, allow_nan=False), min_size=4, max_size=60),
       st.floats(0.0, 0.5))
def test_target_fpr_threshold_keeps_the_false_positive_budget(values, target):
    scores = np.asarray(values)
    labels = np.arange(scores.size) % 2
    threshold = choose_threshold(labels, scores, "target_fpr", target)
    normal = scores[labels == 0]
    assert np.mean(normal >= threshold) <= target + 1e-12


def test_per_family_recall_and_auc():
    families = np.array([0, 0, 0, 1, 1, 2])
    scores = np.array([0.1, 0.2, 0.6, 0.9, 0.3, 0.7])
    result = per_family_metrics(families, ("normal", "a", "b"), scores, 0.5)
    assert result["a"]["recall"] == pytest.approx(0.5)
    # a: 0.9 beats all 3 normals, 0.3 beats 2 -> 5/6.
    assert result["a"]["roc_auc"] == pytest.approx(5 / 6)
    assert result["b"] == {"recall": 1.0, "roc_auc": 1.0, "count": 1}


def test_trace_score_is_the_maximum_over_windows():
    traces, maxima = trace_scores(np.array([4, 2, 4, 2, 7]),
                                  np.array([0.1, 0.5, 0.9, -1.0, 0.3]))
    np.testing.assert_array_equal(traces, [2, 4, 7])
    np.testing.assert_allclose(maxima, [0.5, 0.9, 0.3])


def test_threshold_is_never_chosen_on_test():
    """Any change to the test scores leaves the threshold where validation put it."""
    from tiny_datasets import make_dataset

    dataset = make_dataset(seed=3)
    val, test = dataset.subset("val"), dataset.subset("test")
    rng = np.random.default_rng(0)
    val_scores = val.labels + rng.normal(0, 0.4, len(val))
    first = evaluate_model(ModelScores("m", val_scores, rng.normal(size=len(test))),
                           val, test)
    second = evaluate_model(ModelScores("m", val_scores, test.labels * 10.0),
                            val, test)
    assert first["threshold"] == second["threshold"] == choose_threshold(
        val.labels, val_scores)
    assert first["trace"]["threshold"] == second["trace"]["threshold"]
    assert second["test"]["roc_auc"] == 1.0
