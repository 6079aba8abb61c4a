"""``report.md``: the run's tables, plots, config, data summary and commands."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from sentinel_jax.atomic import write_text_atomic

_COLUMNS = (("accuracy", "accuracy"), ("precision", "precision"),
            ("recall", "recall"), ("f1", "F1"), ("roc_auc", "ROC AUC"),
            ("pr_auc", "PR AUC"), ("tpr_at_fpr_1pct", "TPR@1%FPR"),
            ("tpr_at_fpr_0_1pct", "TPR@0.1%FPR"))


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def metrics_table(models: Mapping[str, Mapping[str, Any]], level: str) -> str:
    """One row per model of the ``level`` block (``test`` or ``trace``)."""
    header = "| model | " + " | ".join(title for _, title in _COLUMNS) + " |"
    rule = "|---" * (len(_COLUMNS) + 1) + "|"
    rows = [f"| {name} | " + " | ".join(_number(block[level][key])
                                         for key, _ in _COLUMNS) + " |"
            for name, block in models.items()]
    return "\n".join([header, rule, *rows])


def family_table(models: Mapping[str, Mapping[str, Any]], level: str) -> str:
    """Recall / AUC of each attack family (rows) for each model (columns)."""
    names = list(models)
    families = sorted({family for block in models.values()
                       for family in block[level]["per_family"]})
    header = "| family | count | " + " | ".join(
        f"{name} recall / AUC" for name in names) + " |"
    rule = "|---" * (len(names) + 2) + "|"
    rows = []
    for family in families:
        cells, count = [], "n/a"
        for name in names:
            entry = models[name][level]["per_family"].get(family)
            if entry is None:
                cells.append("n/a")
                continue
            count = str(entry["count"])
            cells.append(f"{_number(entry['recall'])} / {_number(entry['roc_auc'])}")
        rows.append(f"| {family} | {count} | " + " | ".join(cells) + " |")
    return "\n".join([header, rule, *rows])


def write_report(path: str | os.PathLike[str], *,
                 models: Mapping[str, Mapping[str, Any]],
                 plots: Mapping[str, str], config: Mapping[str, Any],
                 data_summary: Mapping[str, Any], commands: Sequence[str],
                 notes: Sequence[str] = ()) -> Path:
    """Writes the markdown report.

    Args:
        path: where ``report.md`` goes; plot paths are relative to its folder.
        models: model name -> metric block (``test``, ``trace``, ``threshold``).
        plots: caption -> PNG path relative to the report.
        config: the resolved config as nested dicts.
        data_summary: windows per split and family, source.
        commands: the commands that produced the run.
        notes: free sentences shown under the title.
    """
    hybrid = next(iter(models))
    block = models[hybrid]["test"]
    parts = [
        "# Evaluation report", "",
        *notes, "",
        "Thresholds are chosen on the validation split only (window level and "
        "trace level separately) and applied unchanged to the test split. A "
        "trace's score is the maximum over its windows.", "",
        "## Window level (test)", "", metrics_table(models, "test"), "",
        "## Trace level (test)", "", metrics_table(models, "trace"), "",
        "## Per attack family, window level (recall at threshold / ROC AUC "
        "against normal windows)", "", family_table(models, "test"), "",
        "## Per attack family, trace level", "", family_table(models, "trace"), "",
        f"## Confusion matrix of {hybrid} (test windows)", "",
        "| | predicted normal | predicted attack |", "|---|---|---|",
        f"| normal | {block['confusion_matrix'][0][0]} | "
        f"{block['confusion_matrix'][0][1]} |",
        f"| attack | {block['confusion_matrix'][1][0]} | "
        f"{block['confusion_matrix'][1][1]} |", "",
        "## Plots", "",
    ]
    for caption, plot in plots.items():
        parts += [f"### {caption}", "", f"![{caption}]({plot})", ""]
    parts += ["## Data", "", "```yaml",
              yaml.safe_dump(dict(data_summary), sort_keys=False).rstrip(), "```", "",
              "## Commands", "", "```sh", *commands, "```", "",
              "## Config", "", "```yaml",
              yaml.safe_dump(dict(config), sort_keys=False).rstrip(), "```", ""]
    return write_text_atomic(path, "\n".join(parts))
