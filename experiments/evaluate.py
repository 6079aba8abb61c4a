"""Evaluate a trained run against baselines on the same test split.

Models: the hybrid (the run), its SNN branch alone and its KAN branch alone
(trained here into RUN/ablation/ with the run's config unless already there),
STIDE (n-gram lookup) and a logistic regression on hist. Every threshold is
chosen on the validation split and applied unchanged to the test split.

Writes OUT/metrics.json (``test``: the hybrid's window-level metrics;
``trace``: its trace-level ones; ``models``: one block per model), PNG plots
and OUT/report.md. OUT defaults to the run folder.

Example:
  python experiments/evaluate.py --run runs/train --data runs/data
"""

from __future__ import annotations

import logging
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sentinel_jax.atomic import write_json_atomic
from sentinel_jax.baselines import Stide, fit_logistic, logistic_scores
from sentinel_jax.cli import UsageError, make_parser, run_main, setup_logging
from sentinel_jax.config import apply_overrides, config_to_dict
from sentinel_jax.data.store import load_dataset
from sentinel_jax.evaluation import plots
from sentinel_jax.evaluation.compare import ModelScores, evaluate_model
from sentinel_jax.evaluation.report import write_report
from sentinel_jax.training import (
    CheckpointError,
    TrainedRun,
    TrainingError,
    load_run,
    train,
)

logger = logging.getLogger("evaluate")
HYBRID = "hybrid (SNN+KAN)"


def _ablation_run(run: TrainedRun, config, dataset, branch: str,
                  mode: str) -> TrainedRun | None:
    folder = run.run_dir / "ablation" / branch
    if mode == "skip":
        return None
    try:
        return load_run(folder)
    except CheckpointError:
        if mode == "reuse":
            logger.warning("no finished %s-only run in %s; skipped", branch, folder)
            return None
    logger.info("training the %s branch alone into %s", branch, folder)
    train(config, dataset, folder, resume=True, branches=(branch,))
    return load_run(folder)


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__, out_default="")
    parser.add_argument("--run", required=True, metavar="DIR",
                        help="run folder written by train.py")
    parser.add_argument("--data", required=True, metavar="DIR",
                        help="the dataset folder the run was trained on")
    parser.add_argument("--ablation", choices=("train", "reuse", "skip"),
                        default="train",
                        help="single-branch models: train if missing (default), "
                             "reuse only, or skip")
    parser.add_argument("--stide-n", type=int, default=6, metavar="N",
                        help="STIDE n-gram length (default 6)")
    args = parser.parse_args(argv)
    setup_logging(args.quiet)
    out = Path(args.out or args.run)
    try:
        run = load_run(args.run)
    except CheckpointError as error:
        raise UsageError(str(error)) from None
    overrides = list(args.overrides) + (["training.progress=false"]
                                        if args.quiet else [])
    config = apply_overrides(run.config, overrides)
    dataset = load_dataset(args.data)
    if dataset.vocabulary != run.vocabulary:
        raise UsageError(f"{args.data}: its vocabulary differs from the run's; "
                         f"evaluate on the dataset the run was trained on")
    train_split, val, test = (dataset.subset(s) for s in ("train", "val", "test"))
    if not len(test) or not len(val):
        raise UsageError(f"{args.data}: needs validation and test windows")

    scores = {HYBRID: ModelScores(HYBRID, run.score(val.ids, val.tags, val.hist),
                                  run.score(test.ids, test.tags, test.hist))}
    for branch in ("snn", "kan"):
        try:
            ablation = _ablation_run(run, config, dataset, branch, args.ablation)
        except (CheckpointError, TrainingError) as error:
            raise UsageError(str(error)) from None
        if ablation is not None:
            name = f"{branch.upper()} branch alone"
            scores[name] = ModelScores(
                name, ablation.score(val.ids, val.tags, val.hist),
                ablation.score(test.ids, test.tags, test.hist))
    stide = Stide.fit(train_split.ids, train_split.labels, dataset.name_channels,
                      n=min(args.stide_n, dataset.time))
    scores[f"STIDE (n={stide.n})"] = ModelScores(
        f"STIDE (n={stide.n})", stide.score(val.ids), stide.score(test.ids))
    logistic = fit_logistic(train_split.hist, train_split.labels,
                            seed=config.training.seed)
    scores["logistic regression (hist)"] = ModelScores(
        "logistic regression (hist)", logistic_scores(logistic, val.hist),
        logistic_scores(logistic, test.hist))

    rule, target = config.training.threshold_rule, config.training.target_fpr
    models = {name: evaluate_model(s, val, test, rule=rule, target_fpr=target)
              for name, s in scores.items()}

    figures = _plots(out, run, models, scores, test)
    hybrid = models[HYBRID]
    write_json_atomic(out / "metrics.json", {
        "test": hybrid["test"], "trace": hybrid["trace"],
        "threshold": hybrid["threshold"], "threshold_rule": rule,
        "models": models, "counts": dataset.counts()})
    command = "python experiments/evaluate.py " + shlex.join(
        sys.argv[1:] if argv is None else list(argv))
    write_report(
        out / "report.md", models=models, plots=figures,
        config=config_to_dict(run.config),
        data_summary={"folder": str(args.data), "source": dataset.info.get(
            "source", "unknown"), "counts": dataset.counts()},
        commands=[f"python experiments/train.py --data {args.data} "
                  f"--out {args.run}", command],
        notes=[f"Run: `{args.run}`; data: `{args.data}`; best epoch "
               f"{run.meta.get('epoch')} of training."])
    block = hybrid["test"]
    print(f"hybrid test: accuracy {block['accuracy']:.4f}  f1 {block['f1']:.4f}  "
          f"roc_auc {block['roc_auc']:.4f}  pr_auc {block['pr_auc']:.4f}  "
          f"tpr@1%fpr {block['tpr_at_fpr_1pct']:.4f}; report in {out / 'report.md'}")
    return 0


def _plots(out: Path, run: TrainedRun, models, scores, test) -> dict[str, str]:
    import json

    figures: dict[str, str] = {}
    metrics_file = run.run_dir / "metrics.jsonl"
    if metrics_file.exists():
        history = [json.loads(line) for line in
                   metrics_file.read_text(encoding="utf-8").splitlines() if line]
        if history:
            plots.plot_training_curves(history, out / "training_curves.png")
            figures["Training curves"] = "training_curves.png"
    hybrid = models[HYBRID]
    plots.plot_confusion_matrix(hybrid["test"]["confusion_matrix"],
                                "hybrid, test windows", out / "confusion_matrix.png")
    figures["Confusion matrix (hybrid, test windows)"] = "confusion_matrix.png"
    if 0 < test.labels.sum() < len(test):
        plots.plot_roc_pr(test.labels, {n: s.test for n, s in scores.items()},
                          out / "roc_pr.png")
        figures["ROC and precision-recall, all models"] = "roc_pr.png"
    plots.plot_family_recall({n: b["test"]["per_family"] for n, b in models.items()},
                             out / "family_recall.png")
    figures["Recall per attack family"] = "family_recall.png"
    plots.plot_score_histogram(test.labels, np.asarray(scores[HYBRID].test),
                               hybrid["threshold"], "hybrid scores, test windows",
                               out / "score_histogram.png")
    figures["Score histogram (hybrid)"] = "score_histogram.png"
    return figures


if __name__ == "__main__":
    sys.exit(run_main(main))
