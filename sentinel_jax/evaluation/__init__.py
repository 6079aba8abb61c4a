"""Evaluation: metrics at validation thresholds, model comparison, plots, report."""
