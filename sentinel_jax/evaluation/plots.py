"""Evaluation plots as PNG files.

Each function draws one figure, writes it atomically and returns its path.
Figures are made without pyplot, so importing this module never changes the
global matplotlib backend (a notebook keeps its inline figures) and no
display is needed.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from sklearn import metrics as skm

from sentinel_jax.atomic import write_bytes_atomic


def _subplots(*grid: int, figsize: tuple[float, float]) -> tuple[Figure, Any]:
    """A figure of its own (no pyplot state) and its axes."""
    figure = Figure(figsize=figsize)
    return figure, figure.subplots(*grid)


def _save(figure, path: str | os.PathLike[str]) -> Path:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=120)
    return write_bytes_atomic(path, buffer.getvalue())


def plot_training_curves(history: Sequence[Mapping[str, Any]],
                         path: str | os.PathLike[str]) -> Path:
    """Training and validation loss, and validation ROC AUC, per epoch."""
    epochs = [entry["epoch"] for entry in history]
    figure, (left, right) = _subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, [e["train_loss"] for e in history], label="train loss")
    left.plot(epochs, [e["val_loss"] for e in history], label="validation loss")
    left.set_xlabel("epoch")
    left.set_ylabel("loss")
    left.legend()
    right.plot(epochs, [e["val_roc_auc"] for e in history], color="tab:green")
    right.set_xlabel("epoch")
    right.set_ylabel("validation ROC AUC")
    return _save(figure, path)


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], title: str,
                          path: str | os.PathLike[str]) -> Path:
    """A 2x2 confusion matrix ``[[tn, fp], [fn, tp]]`` with counts."""
    matrix = np.asarray(matrix)
    figure, axis = _subplots(figsize=(4, 3.6))
    axis.imshow(matrix, cmap="Blues")
    for (row, column), count in np.ndenumerate(matrix):
        axis.text(column, row, str(count), ha="center", va="center",
                  color="white" if count > matrix.max() / 2 else "black")
    axis.set_xticks([0, 1], ["normal", "attack"])
    axis.set_yticks([0, 1], ["normal", "attack"])
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title)
    return _save(figure, path)


def plot_roc_pr(labels: np.ndarray, scores: Mapping[str, np.ndarray],
                path: str | os.PathLike[str]) -> Path:
    """ROC (log false-positive axis) and precision-recall curves, all models."""
    figure, (roc_axis, pr_axis) = _subplots(1, 2, figsize=(11, 4.5))
    for name, model_scores in scores.items():
        fpr, tpr, _ = skm.roc_curve(labels, model_scores)
        auc = skm.roc_auc_score(labels, model_scores)
        roc_axis.plot(np.maximum(fpr, 1e-4), tpr, label=f"{name} ({auc:.3f})")
        precision, recall, _ = skm.precision_recall_curve(labels, model_scores)
        average = skm.average_precision_score(labels, model_scores)
        pr_axis.plot(recall, precision, label=f"{name} ({average:.3f})")
    roc_axis.set_xscale("log")
    roc_axis.set_xlim(1e-4, 1)
    roc_axis.set_xlabel("false-positive rate")
    roc_axis.set_ylabel("detection rate")
    roc_axis.set_title("ROC (test windows)")
    roc_axis.legend(fontsize=8)
    pr_axis.set_xlabel("recall")
    pr_axis.set_ylabel("precision")
    pr_axis.set_title("precision-recall (test windows)")
    pr_axis.legend(fontsize=8)
    return _save(figure, path)


def plot_family_recall(per_family: Mapping[str, Mapping[str, Mapping[str, float]]],
                       path: str | os.PathLike[str]) -> Path:
    """Grouped bars: recall of each attack family, one bar per model.

    Args:
        per_family: model -> family -> {recall, ...}.
        path: the PNG to write.
    """
    models = list(per_family)
    families = sorted({f for blocks in per_family.values() for f in blocks})
    width = 0.8 / max(len(models), 1)
    figure, axis = _subplots(figsize=(max(6, 1.1 * len(families) + 2), 4.5))
    positions = np.arange(len(families))
    for index, model in enumerate(models):
        recalls = [per_family[model].get(f, {}).get("recall", np.nan)
                   for f in families]
        axis.bar(positions + index * width, recalls, width, label=model)
    axis.set_xticks(positions + width * (len(models) - 1) / 2, families,
                    rotation=30, ha="right")
    axis.set_ylim(0, 1.05)
    axis.set_ylabel("recall at the validation threshold")
    axis.legend(fontsize=8)
    return _save(figure, path)


def plot_score_histogram(labels: np.ndarray, scores: np.ndarray, threshold: float,
                         title: str, path: str | os.PathLike[str]) -> Path:
    """Score distributions of normal and attack windows, and the threshold."""
    figure, axis = _subplots(figsize=(6, 4))
    bins = np.histogram_bin_edges(scores, bins=50)
    axis.hist(scores[labels == 0], bins=bins, alpha=0.6, label="normal",
              density=True)
    axis.hist(scores[labels == 1], bins=bins, alpha=0.6, label="attack",
              density=True)
    axis.axvline(threshold, color="black", linestyle="--", label="threshold")
    axis.set_xlabel("anomaly score")
    axis.set_ylabel("density")
    axis.set_title(title)
    axis.legend()
    return _save(figure, path)
