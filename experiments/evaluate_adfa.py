"""Evaluate every detector on ADFA-LD under three leak-free protocols.

Protocols (each with and without removing duplicate traces; thresholds for
detection rates are always chosen on the protocol's validation part):
  supervised  attack runs dealt into folds, never split; normal traces by file
  lofo        leave one attack family out: train without it, test on it
  anomaly     fit on Training_Data_Master (normal only), tune on part of
              Validation_Data_Master, test on the rest plus every attack

Models: hybrid, snn, kan (trained windows models; a trace's score is its
highest window score), equation (the hybrid distilled by genetic
programming), stide and logistic_hist (window baselines), tfidf_lr, count_rf
and lm (n-gram models over whole traces), and snn_surprise (the spiking
network as a next-call predictor fitted on normal traces only, a trace scored
by its mean surprise per call). Normal-only protocols run only the
normal-only models (stide, lm, snn_surprise).

Writes DIR/metrics.json (one block per protocol, variant and model: ROC AUC
and detection at 1%, 5% and 10% false alarms, mean and spread over rounds,
per-family detection), DIR/roc_<protocol>_<variant>.png and DIR/report.md.

Example:
  python experiments/evaluate_adfa.py --config configs/adfa.yaml \\
      --adfa-dir ../shared/datasets/adfa-ld --out runs/adfa
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from sentinel_jax.atomic import write_json_atomic, write_text_atomic
from sentinel_jax.baselines.logistic import fit_logistic, logistic_scores
from sentinel_jax.baselines.ngram import CountForest, NgramLanguageModel, TfidfLogistic
from sentinel_jax.baselines.stide import Stide
from sentinel_jax.cli import UsageError, make_parser, resolve_config, run_main
from sentinel_jax.config import Config, save_config
from sentinel_jax.data.adfa import (
    ATTACK,
    AdfaTrace,
    default_adfa_dir,
    drop_duplicates,
    load_adfa,
)
from sentinel_jax.data.store import Dataset, build_dataset
from sentinel_jax.evaluation.adfa_protocols import (
    ProtocolSplit,
    anomaly_protocol,
    leave_one_family_out,
    supervised_folds,
)
from sentinel_jax.evaluation.metrics import roc_auc, trace_scores

logger = logging.getLogger("evaluate_adfa")

WINDOW_MODELS = ("hybrid", "snn", "kan", "equation", "stide", "logistic_hist")
TRACE_MODELS = ("tfidf_lr", "count_rf", "lm", "snn_surprise")
NORMAL_ONLY = ("stide", "lm", "snn_surprise")
ALL_MODELS = WINDOW_MODELS + TRACE_MODELS
PROTOCOLS = ("supervised", "lofo", "anomaly")
FALSE_ALARM_RATES = {"1pct": 0.01, "5pct": 0.05, "10pct": 0.10}
BRANCHES = {"hybrid": ("snn", "kan"), "snn": ("snn",), "kan": ("kan",)}


def threshold_at_fpr(normal_scores: np.ndarray, rate: float) -> float:
    """The lowest threshold that flags at most ``rate`` of ``normal_scores``
    (flag when ``score > threshold``)."""
    if normal_scores.size == 0:
        raise UsageError("no normal traces in the validation part")
    return float(np.quantile(normal_scores, 1.0 - rate, method="higher"))


def round_metrics(
    val: dict[str, np.ndarray], test: dict[str, np.ndarray]
) -> dict[str, Any]:
    """ROC AUC on test, and detection at false-alarm rates fixed on val.

    Args:
        val: ``labels``, ``scores`` and ``families`` of validation traces.
        test: the same for test traces.
    """
    labels, scores = test["labels"], test["scores"]
    result: dict[str, Any] = {
        "roc_auc": roc_auc(labels, scores),
        "detection": {},
        "test_false_alarms": {},
    }
    val_normal = val["scores"][val["labels"] == 0]
    per_family: dict[str, float] = {}
    for name, rate in FALSE_ALARM_RATES.items():
        threshold = threshold_at_fpr(val_normal, rate)
        flagged = scores > threshold
        result["detection"][name] = float(flagged[labels == 1].mean())
        result["test_false_alarms"][name] = float(flagged[labels == 0].mean())
        if name == "1pct":
            for family in sorted(set(test["families"][labels == 1])):
                rows = test["families"] == family
                per_family[family] = float(flagged[rows].mean())
    result["per_family_detection_1pct"] = per_family
    return result


def _window_dataset(
    config: Config, traces: Sequence[AdfaTrace], split: ProtocolSplit
) -> tuple[Dataset, np.ndarray]:
    """Windows of the round's traces, with the protocol's sides as splits.

    Returns the dataset and the original index of each of its traces.
    """
    order = np.concatenate([split.train, split.val, split.test])
    sides = np.concatenate(
        [
            np.zeros(len(split.train)),
            np.ones(len(split.val)),
            np.full(len(split.test), 2),
        ]
    ).astype(np.int8)
    dataset = build_dataset(
        [traces[i].trace for i in order],
        **config.data.dataset_layout(),
        splits=sides,
        info={"source": "adfa", "round": split.name},
    )
    return dataset, order


def _trace_sides(
    dataset: Dataset,
    order: np.ndarray,
    window_scores: np.ndarray,
    traces: Sequence[AdfaTrace],
) -> dict[str, dict[str, np.ndarray]]:
    """Window scores -> trace scores per side (trace score = max window)."""
    index, maxima = trace_scores(dataset.trace_index, window_scores)
    sides = np.array([dataset.traces[i]["split"] for i in index])
    result = {}
    for side in ("val", "test"):
        rows = sides == side
        originals = order[index[rows]]
        result[side] = {
            "scores": maxima[rows],
            "labels": np.array([traces[i].trace.label for i in originals]),
            "families": np.array([traces[i].trace.family for i in originals]),
        }
    return result


def _names_sides(
    traces: Sequence[AdfaTrace],
    split: ProtocolSplit,
    scorer: Callable[[list[list[str]]], np.ndarray],
) -> dict[str, dict[str, np.ndarray]]:
    result = {}
    for side, indices in (("val", split.val), ("test", split.test)):
        result[side] = {
            "scores": scorer([list(traces[i].trace.names) for i in indices]),
            "labels": np.array([traces[i].trace.label for i in indices]),
            "families": np.array([traces[i].trace.family for i in indices]),
        }
    return result


def score_round(
    config: Config,
    traces: Sequence[AdfaTrace],
    split: ProtocolSplit,
    models: Sequence[str],
    run_dir: Path,
) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """Fits every model on the round's training part and scores val and test
    traces. Returns ``{model: {"val"|"test": {scores, labels, families}}}``."""
    from sentinel_jax.symbolic import NeuralToSymbolic
    from sentinel_jax.training import predict_scores, train
    from sentinel_jax.training.next_call import NextCallSettings, SpikingSurpriseModel

    scored: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    window_models = [m for m in models if m in WINDOW_MODELS]
    if window_models:
        dataset, order = _window_dataset(config, traces, split)
        train_rows = dataset.splits == 0
        hybrid_scores = None
        for name in window_models:
            started = time.perf_counter()
            if name in BRANCHES:
                result = train(config, dataset, run_dir / name, branches=BRANCHES[name])
                scores = predict_scores(
                    result.params, result.spec, dataset.ids, dataset.tags, dataset.hist
                )
                if name == "hybrid":
                    hybrid_scores = scores
            elif name == "equation":
                if hybrid_scores is None:
                    raise UsageError("--models equation needs hybrid before it")
                symbolic = config.symbolic
                rng = np.random.default_rng(symbolic.seed)
                rows = np.flatnonzero(train_rows)
                sample = rng.choice(
                    rows, min(symbolic.sr_samples, rows.size), replace=False
                )
                compressed = NeuralToSymbolic(
                    symbolic.sr_max_complexity,
                    population=symbolic.sr_population,
                    generations=symbolic.sr_generations,
                    seed=symbolic.seed,
                    processes=symbolic.sr_processes,
                ).compress_model(None, dataset.hist[sample], hybrid_scores[sample])
                scores = compressed.equation.score(dataset.hist)
            elif name == "stide":
                scores = Stide.fit(
                    dataset.ids[train_rows],
                    dataset.labels[train_rows],
                    dataset.name_channels,
                ).score(dataset.ids)
            else:  # logistic_hist
                model = fit_logistic(
                    dataset.hist[train_rows], dataset.labels[train_rows]
                )
                scores = logistic_scores(model, dataset.hist)
            scored[name] = _trace_sides(dataset, order, np.asarray(scores), traces)
            logger.info("%s %s: %.1fs", split.name, name, time.perf_counter() - started)
    names = [list(traces[i].trace.names) for i in split.train]
    labels = np.array([traces[i].trace.label for i in split.train])
    trace_models: dict[str, Callable[[], Any]] = {
        "tfidf_lr": lambda: TfidfLogistic(seed=config.data.seed),
        "count_rf": lambda: CountForest(seed=config.data.seed),
        "lm": lambda: NgramLanguageModel(order=5),
        "snn_surprise": lambda: SpikingSurpriseModel(
            NextCallSettings.from_config(config)),
    }
    for name in (m for m in models if m in TRACE_MODELS):
        model = trace_models[name]().fit(names, labels)
        scored[name] = _names_sides(traces, split, model.score)
    return scored


def summarise(rounds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean and spread over the rounds of one protocol, per model."""

    def stats(values: Sequence[float]) -> dict[str, float]:
        array = np.asarray(values, dtype=np.float64)
        return {
            "mean": float(np.nanmean(array)),
            "std": float(np.nanstd(array)),
            "rounds": [float(v) for v in array],
        }

    summary: dict[str, Any] = {}
    for model in rounds[0]:
        results = [r[model] for r in rounds]
        families = sorted({f for r in results for f in r["per_family_detection_1pct"]})
        summary[model] = {
            "roc_auc": stats([r["roc_auc"] for r in results]),
            "detection": {
                k: stats([r["detection"][k] for r in results])
                for k in FALSE_ALARM_RATES
            },
            "test_false_alarms": {
                k: stats([r["test_false_alarms"][k] for r in results])
                for k in FALSE_ALARM_RATES
            },
            "per_family_detection_1pct": {
                f: float(
                    np.mean(
                        [
                            r["per_family_detection_1pct"][f]
                            for r in results
                            if f in r["per_family_detection_1pct"]
                        ]
                    )
                )
                for f in families
            },
        }
    return summary


def protocol_splits(
    protocol: str, traces: Sequence[AdfaTrace], folds: int, seed: int
) -> list[ProtocolSplit]:
    if protocol == "supervised":
        return supervised_folds(traces, folds=folds, seed=seed)
    if protocol == "lofo":
        return leave_one_family_out(traces, seed=seed)
    return [anomaly_protocol(traces, seed=seed)]


def subset(traces: list[AdfaTrace], limit: int, seed: int) -> list[AdfaTrace]:
    """At most ``limit`` normal traces and the attack runs, thinned alike."""
    rng = np.random.default_rng(seed)
    normal = [t for t in traces if t.part != ATTACK]
    attack = [t for t in traces if t.part == ATTACK]
    keep_normal = sorted(
        rng.choice(len(normal), min(limit, len(normal)), replace=False)
    )
    # keep every run, but at most a few traces of each
    per_run: dict[str, int] = {}
    kept_attack = []
    for item in attack:
        per_run[item.run] = per_run.get(item.run, 0) + 1
        if per_run[item.run] <= max(1, limit // 60):
            kept_attack.append(item)
    return [normal[i] for i in keep_normal] + kept_attack


def _plot_roc(path: Path, title: str, pooled: dict[str, dict[str, np.ndarray]]) -> None:
    from sentinel_jax.evaluation.plots import plot_roc_pr

    del title  # the file name says which protocol it is
    labels = next(iter(pooled.values()))["labels"]
    # Every model scores the same test traces in the same order.
    same = {
        m: p["scores"] for m, p in pooled.items() if np.array_equal(p["labels"], labels)
    }
    plot_roc_pr(labels, same, path)


def render_report(results: dict[str, Any], command: str) -> str:
    lines = [
        "# ADFA-LD evaluation",
        "",
        f"Command: `{command}`",
        "",
        "Trace level (a trace's score is its highest window score). "
        "Detection rates use thresholds fixed on each round's validation "
        "part; ROC AUC and detection are on test traces; mean ± spread "
        "over rounds.",
        "",
    ]
    for protocol, variants in results["protocols"].items():
        for variant, block in variants.items():
            lines += [
                f"## {protocol}, {variant}",
                "",
                f"{block['rounds']} round(s), {block['traces']} traces. "
                f"![ROC]({block['plot']})",
                "",
                "| model | ROC AUC | det. @1% FA | det. @5% FA | det. @10% FA |",
                "| --- | --- | --- | --- | --- |",
            ]
            for model, summary in block["models"].items():
                auc = summary["roc_auc"]
                detection = summary["detection"]
                cells = [f"{auc['mean']:.4f} ± {auc['std']:.4f}"] + [
                    f"{detection[k]['mean']:.3f}" for k in FALSE_ALARM_RATES
                ]
                lines.append(f"| {model} | " + " | ".join(cells) + " |")
            lines.append("")
            families = sorted(
                {
                    f
                    for s in block["models"].values()
                    for f in s["per_family_detection_1pct"]
                }
            )
            lines += [
                "Per-family detection at 1% false alarms:",
                "",
                "| model | " + " | ".join(families) + " |",
                "| --- |" + " --- |" * len(families),
            ]
            for model, summary in block["models"].items():
                per = summary["per_family_detection_1pct"]
                lines.append(
                    f"| {model} | "
                    + " | ".join(f"{per[f]:.2f}" if f in per else "-" for f in families)
                    + " |"
                )
            lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument(
        "--adfa-dir",
        metavar="PATH",
        help="ADFA-LD folder (default: SENTINEL_ADFA_DIR or "
        "../shared/datasets/adfa-ld)",
    )
    parser.add_argument(
        "--protocols",
        default=",".join(PROTOCOLS),
        help="comma-separated subset of " + ",".join(PROTOCOLS),
    )
    parser.add_argument(
        "--models",
        default=",".join(ALL_MODELS),
        help="comma-separated subset of " + ",".join(ALL_MODELS),
    )
    parser.add_argument(
        "--dedupe",
        choices=("both", "yes", "no"),
        default="both",
        help="remove duplicate traces, keep them, or both",
    )
    parser.add_argument(
        "--folds", type=int, default=5, help="supervised protocol folds"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=0,
        metavar="N",
        help="run only the first N rounds of each protocol (0: all)",
    )
    parser.add_argument(
        "--max-traces",
        type=int,
        default=0,
        metavar="N",
        help="use a subset of about N normal traces (tests)",
    )
    args = parser.parse_args(argv)
    config = resolve_config(args)
    protocols = [p for p in args.protocols.split(",") if p]
    models = [m for m in args.models.split(",") if m]
    for name, chosen, known in (
        ("protocol", protocols, PROTOCOLS),
        ("model", models, ALL_MODELS),
    ):
        unknown = sorted(set(chosen) - set(known))
        if unknown:
            raise UsageError(
                f"unknown {name} {unknown[0]!r}; expected one of {', '.join(known)}"
            )
    if args.folds < 2:
        raise UsageError(f"--folds must be >= 2, got {args.folds}")
    root = Path(args.adfa_dir) if args.adfa_dir else default_adfa_dir()
    if root is None:
        raise UsageError("no ADFA-LD folder: pass --adfa-dir or set SENTINEL_ADFA_DIR")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "config.yaml")
    everything = load_adfa(root)
    if args.max_traces:
        everything = subset(everything, args.max_traces, config.data.seed)
    variants = {
        "both": ("all", "deduplicated"),
        "yes": ("deduplicated",),
        "no": ("all",),
    }[args.dedupe]
    command = "python experiments/evaluate_adfa.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    results: dict[str, Any] = {"command": command, "protocols": {}}
    began = time.perf_counter()
    for protocol in protocols:
        chosen = [m for m in models if protocol != "anomaly" or m in NORMAL_ONLY]
        if not chosen:
            continue
        for variant in variants:
            traces = (
                drop_duplicates(everything) if variant == "deduplicated" else everything
            )
            splits = protocol_splits(protocol, traces, args.folds, config.data.seed)
            if args.rounds:
                splits = splits[: args.rounds]
            rounds, pooled = [], {}
            for split in tqdm(splits, desc=f"{protocol}/{variant}", disable=args.quiet):
                split.check_disjoint(traces)
                scored = score_round(
                    config,
                    traces,
                    split,
                    chosen,
                    out / "runs" / protocol / variant / split.name.replace("/", "_"),
                )
                rounds.append(
                    {m: round_metrics(s["val"], s["test"]) for m, s in scored.items()}
                )
                for model, sides in scored.items():
                    bucket = pooled.setdefault(model, {"scores": [], "labels": []})
                    bucket["scores"].append(sides["test"]["scores"])
                    bucket["labels"].append(sides["test"]["labels"])
            pooled = {
                m: {k: np.concatenate(v) for k, v in p.items()}
                for m, p in pooled.items()
            }
            plot = f"roc_{protocol}_{variant}.png"
            _plot_roc(out / plot, f"ADFA-LD {protocol} ({variant})", pooled)
            results["protocols"].setdefault(protocol, {})[variant] = {
                "rounds": len(rounds),
                "traces": len(traces),
                "plot": plot,
                "models": summarise(rounds),
            }
            write_json_atomic(out / "metrics.json", results)
    results["seconds"] = time.perf_counter() - began
    write_json_atomic(out / "metrics.json", results)
    write_text_atomic(out / "report.md", render_report(results, command))
    for protocol, variants_block in results["protocols"].items():
        for variant, block in variants_block.items():
            best = max(
                block["models"].items(), key=lambda item: item[1]["roc_auc"]["mean"]
            )
            print(
                f"{protocol:10s} {variant:12s} best {best[0]}: ROC AUC "
                f"{best[1]['roc_auc']['mean']:.4f}"
            )
    print(f"report: {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
