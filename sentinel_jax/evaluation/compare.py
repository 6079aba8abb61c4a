"""Scores of every model on one split, turned into metric blocks.

One protocol for all models, learned or not: the threshold is chosen on the
validation scores (window level, and separately trace level) and applied to
the test scores; metrics are then computed on test windows and on test
traces, whose score is the maximum over their windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sentinel_jax.data.store import Dataset
from sentinel_jax.evaluation.metrics import (
    choose_threshold,
    detection_metrics,
    per_family_metrics,
    trace_scores,
)


@dataclass(frozen=True)
class ModelScores:
    """A model's anomaly scores on the validation and test windows.

    Attributes:
        name: the model's name in tables and plots.
        val: ``[val windows]`` scores.
        test: ``[test windows]`` scores.
    """

    name: str
    val: np.ndarray
    test: np.ndarray


def _trace_level(data: Dataset, scores: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Trace labels, family codes and scores of the traces of ``data``."""
    traces, maxima = trace_scores(data.trace_index, scores)
    code = {name: index for index, name in enumerate(data.family_names)}
    labels = np.array([int(data.traces[t]["label"]) for t in traces], dtype=np.int64)
    families = np.array([code.get(data.traces[t]["family"], 0) if labels[i] else 0
                         for i, t in enumerate(traces)], dtype=np.int64)
    return labels, families, maxima


def evaluate_model(scores: ModelScores, val: Dataset, test: Dataset, *,
                   rule: str = "best_f1", target_fpr: float = 0.01
                   ) -> dict[str, Any]:
    """Window- and trace-level test metrics at validation thresholds.

    Args:
        scores: the model's validation and test scores.
        val: the validation windows (labels, families, traces).
        test: the test windows.
        rule: threshold rule, see :func:`choose_threshold`.
        target_fpr: false-positive budget of the ``target_fpr`` rule.

    Returns:
        ``{"test": window metrics + per_family, "trace": trace metrics +
        per_family, "threshold": window threshold}``.
    """
    if scores.val.shape != (len(val),) or scores.test.shape != (len(test),):
        raise ValueError(f"{scores.name}: expected {len(val)} validation and "
                         f"{len(test)} test scores, got {scores.val.shape} and "
                         f"{scores.test.shape}")
    threshold = choose_threshold(val.labels, scores.val, rule, target_fpr)
    window = detection_metrics(test.labels, scores.test, threshold)
    window["per_family"] = per_family_metrics(
        test.families, test.family_names, scores.test, threshold)

    val_labels, _, val_traces = _trace_level(val, scores.val)
    test_labels, test_families, test_traces = _trace_level(test, scores.test)
    trace_threshold = choose_threshold(val_labels, val_traces, rule, target_fpr)
    trace = detection_metrics(test_labels, test_traces, trace_threshold)
    trace["per_family"] = per_family_metrics(
        test_families, test.family_names, test_traces, trace_threshold)
    return {"threshold": threshold, "test": window, "trace": trace}


def trace_arrays(data: Dataset, scores: np.ndarray) -> dict[str, np.ndarray]:
    """Trace-level labels and scores, for plots."""
    labels, families, maxima = _trace_level(data, scores)
    return {"labels": labels, "families": families, "scores": maxima}
