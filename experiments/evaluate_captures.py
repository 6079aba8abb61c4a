"""Score a folder of labelled real strace captures with a trained run.

CAPTURES/labels.csv lists the logs: columns ``file`` (relative to CAPTURES),
``label`` (benign or attack) and ``family``; ``variant`` and ``program`` are
used when present, further columns ignored. scripts/build_captures.py makes
such a folder. Each log is scored at trace level: every process of the log
is read by the strace reader, cut into windows and scored by the run's
InferenceEngine; the log's score is its highest window score, and it raises
an alarm when that reaches the run's own threshold. The training stage's
threshold is chosen on validation *windows*; with ``--data`` (the dataset the
run was trained on) the alarm threshold is instead chosen at trace level on
that dataset's synthetic validation traces (see :func:`trace_threshold`), the
level at which captures are judged. Neither looks at the captures.

Writes OUT/metrics.json (roc_auc, detection per family, false_alarms at the
run's threshold and per 50 benign programs), OUT/scores.csv (file, label,
family, score, ...), OUT/roc.png and OUT/report.md, which also names the
events that drove every false alarm and the score of every missed attack.

Example:
  python scripts/build_captures.py --out cache/captures
  python experiments/evaluate_captures.py --captures cache/captures \\
      --run runs/train --data runs/data --out runs/captures
"""

from __future__ import annotations

import csv
import io
import logging
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sentinel_jax.atomic import write_json_atomic, write_text_atomic
from sentinel_jax.cli import UsageError, make_parser, run_main, setup_logging
from sentinel_jax.data.store import DatasetError, load_dataset
from sentinel_jax.data.strace import read_strace_traces
from sentinel_jax.evaluation import plots
from sentinel_jax.evaluation.metrics import choose_threshold, roc_auc, tpr_at_fpr
from sentinel_jax.inference import SCORERS, InferenceEngine
from sentinel_jax.training import CheckpointError

logger = logging.getLogger("evaluate_captures")

LABELS = {"benign": 0, "attack": 1}
REQUIRED = ("file", "label", "family")
GOAL_AUC, GOAL_FALSE_ALARMS_PER_50 = 0.90, 1.0


@dataclass(frozen=True)
class Capture:
    """One labelled log of the capture folder."""

    file: str
    path: Path
    label: int
    family: str
    variant: str
    program: str


@dataclass(frozen=True)
class CaptureScore:
    """A log's verdict: its highest window score and where it came from."""

    capture: Capture
    score: float
    processes: int
    events: int
    top_process: str
    top_events: str


def read_labels(folder: Path) -> list[Capture]:
    """The captures listed in ``folder/labels.csv``.

    Raises:
        UsageError: a missing file or column, an unknown label, a listed log
            that does not exist.
    """
    labels_file = folder / "labels.csv"
    if not labels_file.is_file():
        raise UsageError(f"{labels_file}: missing; expected a capture folder "
                         f"with labels.csv (scripts/build_captures.py makes one)")
    with labels_file.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise UsageError(f"{labels_file}: missing columns {missing}; expected "
                             f"at least {list(REQUIRED)}")
        captures = []
        for line, row in enumerate(reader, start=2):
            label = (row["label"] or "").strip().lower()
            if label not in LABELS:
                raise UsageError(f"{labels_file}:{line}: label {row['label']!r}; "
                                 f"expected benign or attack")
            path = folder / row["file"]
            if not path.is_file():
                raise UsageError(f"{labels_file}:{line}: {path} does not exist")
            captures.append(Capture(
                file=row["file"], path=path, label=LABELS[label],
                family=(row["family"] or "normal").strip(),
                variant=(row.get("variant") or "").strip(),
                program=(row.get("program") or Path(row["file"]).stem).strip()))
    if not captures:
        raise UsageError(f"{labels_file}: lists no captures")
    return captures


def trace_threshold(engine: InferenceEngine, data_dir: Path,
                    false_alarm_rate: float = GOAL_FALSE_ALARMS_PER_50 / 50,
                    batch: int = 1024) -> dict:
    """A trace-level threshold chosen on the run's synthetic validation traces.

    The training stage picks its threshold on validation *windows*; a log is
    judged by its highest window score, and the maximum over many windows of
    a benign process sits well above a typical benign window. This scores
    every validation window of the run's own dataset, takes each trace's
    highest window score, and picks the lowest threshold at which at most
    ``false_alarm_rate`` of the benign validation traces alarm (the goal's
    budget, 1 per 50). Nothing of the captures is looked at.

    Returns:
        ``{"threshold", "false_alarm_rate", "benign_traces", "attack_traces",
        "roc_auc"}`` on the validation traces.

    Raises:
        UsageError: when the dataset cannot be read, has no validation
            windows, or was encoded with other name channels than the run.
    """
    try:
        dataset = load_dataset(data_dir)
    except DatasetError as error:
        raise UsageError(f"--data {data_dir}: {error}") from None
    if tuple(dataset.vocabulary.names) != tuple(engine.vocabulary.names):
        raise UsageError(f"--data {data_dir}: its name channels differ from the "
                         f"run's; expected the dataset the run was trained on")
    val = dataset.subset("val")
    if not len(val):
        raise UsageError(f"--data {data_dir}: no validation windows")
    scores = np.concatenate([
        np.asarray(engine.score_windows(val.ids[i:i + batch], val.tags[i:i + batch],
                                        val.hist[i:i + batch]), np.float64)
        for i in range(0, len(val), batch)])
    traces, rows = np.unique(val.trace_index, return_inverse=True)
    best = np.full(len(traces), -np.inf)
    np.maximum.at(best, rows, scores)
    labels = np.zeros(len(traces), np.int64)
    np.maximum.at(labels, rows, val.labels.astype(np.int64))
    threshold = choose_threshold(labels, best, "target_fpr", false_alarm_rate)
    return {"threshold": float(threshold), "false_alarm_rate": false_alarm_rate,
            "benign_traces": int((labels == 0).sum()),
            "attack_traces": int(labels.sum()),
            "roc_auc": roc_auc(labels, best), "chosen_on": str(data_dir)}


def score_capture(engine: InferenceEngine, capture: Capture,
                  explain: bool = False) -> CaptureScore:
    """Scores every process of one log; the log's score is the highest."""
    traces = [trace for trace in read_strace_traces(capture.path) if len(trace)]
    if not traces:
        logger.warning("%s: no system calls; scored -inf", capture.path)
        return CaptureScore(capture, float("-inf"), 0, 0, "", "")
    results = engine.detect_batch(traces, [t.trace_id for t in traces],
                                  explain=False)
    top = int(np.argmax([result.anomaly_score for result in results]))
    drivers = ""
    if explain:
        detail = engine.detect(traces[top], traces[top].trace_id, explain=True)
        drivers = " ".join(f"{event.name}" + "".join(f"+{t}" for t in event.tags)
                           + f"({event.contribution:+.2f})"
                           for event in detail.top_events)
    return CaptureScore(capture, float(results[top].anomaly_score), len(traces),
                        sum(len(trace) for trace in traces),
                        traces[top].trace_id, drivers)


def capture_metrics(scored: Sequence[CaptureScore], threshold: float) -> dict:
    """ROC AUC, detection per family and variant, and false alarms."""
    labels = np.array([s.capture.label for s in scored])
    scores = np.array([s.score for s in scored], dtype=np.float64)
    finite = np.where(np.isfinite(scores), scores, np.nanmin(
        scores[np.isfinite(scores)], initial=0.0) - 1.0)
    alarms = scores >= threshold
    benign = labels == 0
    false_alarms = int(alarms[benign].sum())
    per_family: dict[str, dict] = {}
    groups: dict[str, list[int]] = defaultdict(list)
    for index, item in enumerate(scored):
        if item.capture.label:
            groups[item.capture.family].append(index)
    for family, rows in sorted(groups.items()):
        subset = np.concatenate([np.flatnonzero(benign), rows])
        per_family[family] = {
            "captures": len(rows), "detected": int(alarms[rows].sum()),
            "detection_rate": float(alarms[rows].mean()),
            "roc_auc_vs_benign": roc_auc(labels[subset], finite[subset]),
            "missed": [scored[i].capture.program for i in rows if not alarms[i]]}
    per_variant: dict[str, dict] = defaultdict(lambda: {"captures": 0,
                                                         "detected": 0})
    for index, item in enumerate(scored):
        key = f"{'attack' if item.capture.label else 'benign'}/" \
              f"{item.capture.variant or 'unknown'}"
        per_variant[key]["captures"] += 1
        per_variant[key]["detected"] += int(alarms[index])
    by_origin = {}
    origins = np.array([s.capture.variant or "unknown" for s in scored])
    for origin in sorted(set(origins[benign])):
        rows = ~benign | (origins == origin)
        by_origin[origin] = {
            "benign": int((benign & (origins == origin)).sum()),
            "roc_auc": roc_auc(labels[rows], finite[rows]),
            "false_alarms": int((alarms & benign & (origins == origin)).sum())}
    return {
        "captures": len(scored), "benign": int(benign.sum()),
        "attack": int((~benign).sum()), "threshold": float(threshold),
        "roc_auc": roc_auc(labels, finite),
        "tpr_at_fpr_2pct": tpr_at_fpr(labels, finite, 0.02),
        "detection_rate": float(alarms[~benign].mean()) if (~benign).any()
        else float("nan"),
        "false_alarms": false_alarms,
        "false_alarm_rate": float(alarms[benign].mean()) if benign.any()
        else float("nan"),
        "false_alarms_per_50_benign": 50.0 * false_alarms / max(int(benign.sum()),
                                                                  1),
        "false_alarm_programs": [s.capture.program for s, a, b in
                                 zip(scored, alarms, benign, strict=True) if a and b],
        "per_family": per_family,
        "alarms_by_origin": dict(sorted(per_variant.items())),
        "benign_origin": by_origin,
    }


def _scores_csv(scored: Sequence[CaptureScore], threshold: float) -> str:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["file", "label", "family", "score", "alarm", "variant",
                     "program", "processes", "events", "top_process"])
    for s in scored:
        writer.writerow([s.capture.file, "attack" if s.capture.label else "benign",
                         s.capture.family, f"{s.score:.6f}",
                         int(s.score >= threshold), s.capture.variant,
                         s.capture.program, s.processes, s.events, s.top_process])
    return text.getvalue()


def _threshold_origin(metrics: dict) -> str:
    calibration = metrics.get("trace_calibration")
    window = metrics.get("window_threshold", {})
    if not calibration:
        return "chosen by training on synthetic validation windows"
    return (f"chosen on {calibration['benign_traces']} benign synthetic "
            f"validation traces for at most "
            f"{50 * calibration['false_alarm_rate']:g} false alarm per 50; the "
            f"training stage's window threshold "
            f"{window.get('threshold', float('nan')):.4f} gives "
            f"{window.get('false_alarms', '?')} false alarms")


def _report(metrics: dict, scored: Sequence[CaptureScore], run: str,
            captures: str, figure: str | None) -> str:
    goal = (metrics["roc_auc"] >= GOAL_AUC
            and metrics["false_alarms_per_50_benign"] <= GOAL_FALSE_ALARMS_PER_50)
    lines = [
        "# Real strace captures", "",
        f"Run `{run}` scoring `{captures}` ({metrics['benign']} benign and "
        f"{metrics['attack']} attack logs) at trace level: a log's score is its "
        f"highest window score over all its processes; alarm at the run's "
        f"threshold {metrics['threshold']:.4f} ({_threshold_origin(metrics)}).",
        "",
        "| measure | value |", "| --- | --- |",
        f"| ROC AUC | {metrics['roc_auc']:.4f} |",
        f"| detection rate at the threshold | {metrics['detection_rate']:.3f} |",
        f"| detection at 2% false alarms | {metrics['tpr_at_fpr_2pct']:.3f} |",
        f"| false alarms | {metrics['false_alarms']} of {metrics['benign']} |",
        f"| false alarms per 50 benign programs | "
        f"{metrics['false_alarms_per_50_benign']:.2f} |",
        f"| goal (AUC >= {GOAL_AUC}, <= {GOAL_FALSE_ALARMS_PER_50:g} per 50) | "
        f"{'met' if goal else 'not met'} |", "",
        "## Per family", "",
        "| family | detected | ROC AUC vs benign | missed |",
        "| --- | --- | --- | --- |"]
    for family, block in metrics["per_family"].items():
        lines.append(f"| {family} | {block['detected']}/{block['captures']} | "
                     f"{block['roc_auc_vs_benign']:.3f} | "
                     f"{', '.join(block['missed']) or '-'} |")
    lines += ["", "## Alarms by origin", "",
              "`profile`: benign programs the synthetic profiles were fitted on; "
              "`unseen`: programs they never saw.", "",
              "| origin | alarms |", "| --- | --- |"]
    lines += [f"| {key} | {block['detected']}/{block['captures']} |"
              for key, block in metrics["alarms_by_origin"].items()]
    lines += ["", "| benign origin | ROC AUC (all attacks vs these) | false alarms |",
              "| --- | --- | --- |"]
    lines += [f"| {origin} | {block['roc_auc']:.4f} | "
              f"{block['false_alarms']}/{block['benign']} |"
              for origin, block in metrics["benign_origin"].items()]
    alarms = [s for s in scored if s.capture.label == 0
              and s.score >= metrics["threshold"]]
    lines += ["", "## False alarms and the events that drove them", ""]
    lines += [f"- `{s.capture.file}` score {s.score:.3f} (process "
              f"`{s.top_process}`): {s.top_events}" for s in alarms] or ["none"]
    missed = [s for s in scored if s.capture.label == 1
              and s.score < metrics["threshold"]]
    lines += ["", "## Missed attacks", ""]
    lines += [f"- `{s.capture.file}` ({s.capture.family}) score {s.score:.3f}: "
              f"{s.top_events}" for s in missed] or ["none"]
    if figure:
        lines += ["", "## ROC", "", f"![ROC]({figure})"]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--captures", required=True, metavar="DIR",
                        help="capture folder with labels.csv")
    parser.add_argument("--run", required=True, metavar="DIR",
                        help="run folder written by train.py")
    parser.add_argument("--scorer", choices=SCORERS, default="network",
                        help="the trained network (default) or the distilled "
                             "equation")
    parser.add_argument("--data", metavar="DIR",
                        help="the dataset the run was trained on: alarm at a "
                             "trace-level threshold chosen on its validation "
                             "traces instead of the run's window threshold")
    args = parser.parse_args(argv)
    setup_logging(args.quiet)
    if args.overrides:
        logger.warning("--set is ignored: captures are scored with the run's "
                       "own config")
    captures_dir, out = Path(args.captures), Path(args.out)
    captures = read_labels(captures_dir)
    try:
        engine = InferenceEngine(args.run, scorer=args.scorer)
    except CheckpointError as error:
        raise UsageError(str(error)) from None
    threshold = window_threshold = engine.threshold
    calibration = None
    if args.data:
        calibration = trace_threshold(engine, Path(args.data))
        threshold = calibration["threshold"]

    from tqdm import tqdm

    scored = []
    for capture in tqdm(captures, desc="captures", disable=args.quiet):
        first = score_capture(engine, capture)
        # Name the driving events only where someone will read them.
        alarm_or_miss = (first.score >= threshold) != bool(capture.label)
        scored.append(score_capture(engine, capture, explain=True)
                      if alarm_or_miss else first)

    metrics = capture_metrics(scored, threshold)
    at_window = capture_metrics(scored, window_threshold)
    metrics.update(run=str(args.run), captures_dir=str(captures_dir),
                   scorer=args.scorer,
                   threshold_rule="trace" if calibration else "window",
                   trace_calibration=calibration,
                   window_threshold={
                       "threshold": float(window_threshold),
                       "false_alarms": at_window["false_alarms"],
                       "false_alarms_per_50_benign":
                           at_window["false_alarms_per_50_benign"],
                       "detection_rate": at_window["detection_rate"]})
    out.mkdir(parents=True, exist_ok=True)
    figure = None
    labels = np.array([s.capture.label for s in scored])
    if 0 < labels.sum() < len(labels):
        scores = np.array([s.score for s in scored])
        scores = np.where(np.isfinite(scores), scores, scores[np.isfinite(
            scores)].min(initial=0.0) - 1.0)
        plots.plot_roc_pr(labels, {f"hybrid ({args.scorer})": scores},
                          out / "roc.png")
        figure = "roc.png"
    write_json_atomic(out / "metrics.json", metrics)
    write_text_atomic(out / "scores.csv", _scores_csv(scored, threshold))
    write_text_atomic(out / "report.md", _report(metrics, scored, str(args.run),
                                                 str(captures_dir), figure))
    print(f"{len(scored)} captures: roc_auc {metrics['roc_auc']:.4f}, detected "
          f"{metrics['detection_rate']:.3f} of attacks, "
          f"{metrics['false_alarms']} false alarms of {metrics['benign']} benign "
          f"({metrics['false_alarms_per_50_benign']:.2f} per 50); report in "
          f"{out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
