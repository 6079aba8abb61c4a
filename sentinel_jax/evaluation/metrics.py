"""Detection metrics, thresholds chosen on validation, trace-level scores.

Every metric comes from scikit-learn; this module only decides what to
measure, on which rows, and at which threshold. A decision threshold is
always chosen on validation scores (:func:`choose_threshold`) and then
applied, unchanged, to test scores (:func:`detection_metrics`).

Scores are anomaly scores: higher means more likely an attack; a window or
trace is flagged when ``score >= threshold``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn import metrics as skm

THRESHOLD_RULES = ("best_f1", "target_fpr")


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if labels.shape != scores.shape:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} differ "
                         f"in length")
    if labels.size and not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 (normal) or 1 (attack)")
    if not np.isfinite(scores).all():
        raise ValueError("scores hold NaN or infinite values")
    return labels, scores


def _both_classes(labels: np.ndarray) -> bool:
    return 0 < int(labels.sum()) < labels.size


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC, or NaN when only one class is present."""
    labels, scores = _check(labels, scores)
    if not _both_classes(labels):
        return float("nan")
    return float(skm.roc_auc_score(labels, scores))


def tpr_at_fpr(labels: np.ndarray, scores: np.ndarray, max_fpr: float) -> float:
    """Detection rate at the best threshold whose false-positive rate is at
    most ``max_fpr`` (read off the ROC curve, no interpolation)."""
    labels, scores = _check(labels, scores)
    if not _both_classes(labels):
        return float("nan")
    fpr, tpr, _ = skm.roc_curve(labels, scores)
    return float(tpr[fpr <= max_fpr].max())


def choose_threshold(labels: np.ndarray, scores: np.ndarray, rule: str = "best_f1",
                     target_fpr: float = 0.01) -> float:
    """The decision threshold, chosen on validation labels and scores.

    Args:
        labels: ``[windows]`` validation labels, 0 or 1.
        scores: ``[windows]`` validation anomaly scores.
        rule: ``best_f1`` (the threshold of highest F1) or ``target_fpr``
            (the lowest threshold whose false-positive rate on these normal
            windows is at most ``target_fpr``).
        target_fpr: false-positive budget of ``target_fpr``.

    Returns:
        A threshold: flag when ``score >= threshold``. With one class only,
        0.0 (the argmax boundary of the logits).
    """
    labels, scores = _check(labels, scores)
    if rule not in THRESHOLD_RULES:
        raise ValueError(f"threshold rule {rule!r}: expected one of "
                         f"{', '.join(THRESHOLD_RULES)}")
    if not _both_classes(labels):
        return 0.0
    if rule == "best_f1":
        precision, recall, thresholds = skm.precision_recall_curve(labels, scores)
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        # The last precision/recall pair has no threshold.
        return float(thresholds[int(np.argmax(f1[:-1]))])
    normal_scores = np.sort(scores[labels == 0])
    allowed = int(np.floor(target_fpr * normal_scores.size))
    if allowed == 0:
        return float(np.nextafter(normal_scores[-1], np.inf))
    # Flag at most ``allowed`` normals: strictly above the next one down.
    return float(np.nextafter(normal_scores[-allowed - 1], np.inf))


def detection_metrics(labels: np.ndarray, scores: np.ndarray,
                      threshold: float) -> dict[str, object]:
    """Test metrics at a threshold fixed beforehand (on validation).

    Returns:
        accuracy, precision, recall, f1, roc_auc, pr_auc (average precision),
        tpr_at_fpr_1pct, tpr_at_fpr_0_1pct, false_positive_rate,
        confusion_matrix (``[[tn, fp], [fn, tp]]``), threshold, count,
        attacks.
    """
    labels, scores = _check(labels, scores)
    predicted = (scores >= threshold).astype(np.int64)
    matrix = skm.confusion_matrix(labels, predicted, labels=[0, 1])
    negatives = int(matrix[0].sum())
    both = _both_classes(labels)
    return {
        "accuracy": float(skm.accuracy_score(labels, predicted)),
        "precision": float(skm.precision_score(labels, predicted, zero_division=0)),
        "recall": float(skm.recall_score(labels, predicted, zero_division=0)),
        "f1": float(skm.f1_score(labels, predicted, zero_division=0)),
        "roc_auc": roc_auc(labels, scores),
        "pr_auc": (float(skm.average_precision_score(labels, scores))
                   if both else float("nan")),
        "tpr_at_fpr_1pct": tpr_at_fpr(labels, scores, 0.01),
        "tpr_at_fpr_0_1pct": tpr_at_fpr(labels, scores, 0.001),
        "false_positive_rate": float(matrix[0, 1] / negatives) if negatives else 0.0,
        "confusion_matrix": matrix.astype(int).tolist(),
        "threshold": float(threshold),
        "count": int(labels.size),
        "attacks": int(labels.sum()),
    }


def per_family_metrics(families: np.ndarray, family_names: Sequence[str],
                       scores: np.ndarray, threshold: float
                       ) -> dict[str, dict[str, float]]:
    """Recall and AUC of each attack family against the normal rows.

    Args:
        families: ``int [rows]`` index into ``family_names``; 0 is normal.
        family_names: ``family_names[0] == "normal"``.
        scores: ``[rows]`` anomaly scores.
        threshold: the validation threshold.

    Returns:
        family -> {recall, roc_auc, count}, for families present in ``rows``.
    """
    families = np.asarray(families).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    normal = scores[families == 0]
    result = {}
    for code, name in enumerate(family_names):
        if code == 0 or not (families == code).any():
            continue
        attack = scores[families == code]
        labels = np.concatenate([np.zeros(normal.size), np.ones(attack.size)])
        result[name] = {
            "recall": float(np.mean(attack >= threshold)),
            "roc_auc": roc_auc(labels, np.concatenate([normal, attack])),
            "count": int(attack.size),
        }
    return result


def trace_scores(trace_index: np.ndarray, scores: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """A trace's score is the maximum over its windows.

    Args:
        trace_index: ``int [windows]`` trace of each window.
        scores: ``[windows]`` window scores.

    Returns:
        ``(traces, trace_scores)``: the distinct trace indices, sorted, and
        the maximum window score of each.
    """
    trace_index = np.asarray(trace_index).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    traces, inverse = np.unique(trace_index, return_inverse=True)
    maxima = np.full(traces.size, -np.inf)
    np.maximum.at(maxima, inverse, scores)
    return traces, maxima
